//! GELU (exact and tanh): GPU vs f64 reference, and backward vs finite differences.

use proptest::prelude::*;
use vpt_wgsl::kernels::gelu::*;
use vpt_wgsl::reference::gelu as cpu;
use vpt_wgsl::Tensor;

use crate::common::*;

// Tolerances. Forward: the erfc fit is within 1.2e-7 relative and f32 adds ~1 ulp, so 1e-6 of the
// output scale is honest. Backward: same plus the exp(-x²/2) term, also ~1e-6.
const FWD_TOL: f64 = 1e-6;
const BWD_TOL: f64 = 2e-6;

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn gelu_matches_reference(n in dim(5000), seed in any::<u64>(), scale in prop_oneof![Just(1.0), Just(4.0), Just(12.0)]) {
        for gpu in gpus() {
            let (x, xt) = random_tensor(gpu, &[n], seed, scale);
            let (dy, dyt) = random_tensor(gpu, &[n], seed ^ 1, 1.0);
            assert_close("gelu_forward", gpu, &gelu_forward(&xt).unwrap().to_vec().unwrap(), &cpu::gelu_forward(&x), FWD_TOL);
            assert_close("gelu_backward", gpu, &gelu_backward(&xt, &dyt).unwrap().to_vec().unwrap(), &cpu::gelu_backward(&x, &dy), BWD_TOL);
            assert_close("gelu_tanh_forward", gpu, &gelu_tanh_forward(&xt).unwrap().to_vec().unwrap(), &cpu::gelu_tanh_forward(&x), FWD_TOL);
            assert_close("gelu_tanh_backward", gpu, &gelu_tanh_backward(&xt, &dyt).unwrap().to_vec().unwrap(), &cpu::gelu_tanh_backward(&x, &dy), BWD_TOL);
        }
    }

    #[test]
    fn gelu_backward_matches_finite_differences(n in dim(300), seed in any::<u64>()) {
        for gpu in gpus() {
            let (x, xt) = random_tensor(gpu, &[n], seed, 3.0);
            let (w, wt) = random_tensor(gpu, &[n], seed ^ 2, 1.0);
            let v = random_vec(seed ^ 3, n, 1.0);
            let g = gelu_backward(&xt, &wt).unwrap().to_vec().unwrap();
            assert_grad_matches_fd("gelu_backward", gpu, &g, directional_fd(cpu::gelu_forward, &x, &v, &w), &v, GRAD_TOL);
            let g = gelu_tanh_backward(&xt, &wt).unwrap().to_vec().unwrap();
            assert_grad_matches_fd("gelu_tanh_backward", gpu, &g, directional_fd(cpu::gelu_tanh_forward, &x, &v, &w), &v, GRAD_TOL);
        }
    }
}

/// The erf used by the f64 reference must itself be right: spot values from tables.
#[test]
fn reference_erf_matches_tables() {
    for (x, want) in [(0.0, 0.0), (0.5, 0.520_499_877_813_046_5), (1.0, 0.842_700_792_949_714_9), (2.0, 0.995_322_265_018_952_7), (3.0, 0.999_977_909_503_001_4), (-1.5, -0.966_105_146_475_310_7)] {
        assert!((cpu::erf(x) - want).abs() < 1e-14, "erf({x}) = {} want {want}", cpu::erf(x));
    }
}

/// Mismatched shapes are an error that names the op and both shapes.
#[test]
fn gelu_backward_rejects_mismatched_shapes() {
    let gpu = &gpus()[0];
    let x = Tensor::zeros(gpu, &[2, 3]).unwrap();
    let dy = Tensor::zeros(gpu, &[3, 2]).unwrap();
    let msg = gelu_backward(&x, &dy).unwrap_err().to_string();
    assert!(msg.contains("gelu_backward") && msg.contains("[2, 3]") && msg.contains("[3, 2]"), "{msg}");
}

/// Far outside the fitted range the kernel must still saturate exactly: GELU(x) = x for large x,
/// 0 for very negative x, and no NaN.
#[test]
fn gelu_saturates_without_nan() {
    for gpu in gpus() {
        let x = Tensor::from_slice(gpu, &[4], &[-80.0, -10.0, 10.0, 80.0]).unwrap();
        let y = gelu_forward(&x).unwrap().to_vec().unwrap();
        assert!(y[0] == 0.0 && y[1].abs() < 1e-20 && y[2] == 10.0 && y[3] == 80.0, "{}: {y:?}", gpu.describe());
    }
}
