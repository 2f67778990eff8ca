//! Softmax: GPU vs f64 reference (any rank, awkward row lengths, large offsets and magnitudes),
//! backward vs finite differences, the 2-D grid for many rows, and shape errors.

use proptest::prelude::*;
use vpt_wgsl::kernels::softmax::*;
use vpt_wgsl::reference::softmax as cpu;
use vpt_wgsl::Tensor;

use crate::common::*;

// Tolerances, relative to the output scale with assert_close's floor of 1 (softmax outputs are in
// [0, 1], so these are absolute errors). Forward: x − max is exact or rounds by ~|x − max|·2^-24,
// exp adds a few ulp (the Vulkan spec allows 3 + 2|x| ulp; lavapipe is closer to 1), and the
// denominator is a sum of ≤ n terms in (0, 1] rounded ~log2(256) + n/256 times, so each y carries
// ~1e-6 relative error at most. Backward: ⟨dy, y⟩ adds a similar sum of ≤ n products. Measured
// here: ≤ 1.3e-7 forward, ≤ 2.5e-7 backward. 1e-5 leaves room for a less accurate exp on other
// drivers and still fails any wrong term by orders of magnitude.
const FWD_TOL: f64 = 1e-5;
const BWD_TOL: f64 = 1e-5;

proptest! {
    #![proptest_config(cases(12))]

    /// x: [a, b, n], rank 3, so rows = a·b; n covers 1, tiny rows, and lengths that are not a
    /// multiple of a row's 8 or 64 threads. Scale 80 gives inputs in ±80, where a naive
    /// exp(x) would overflow f32; offset 50 shifts every logit of a row.
    #[test]
    fn softmax_matches_reference(a in dim(4), b in dim(8), n in dim(700), seed in any::<u64>(),
                                 scale in prop_oneof![Just(1.0), Just(10.0), Just(80.0)],
                                 offset in prop_oneof![Just(0.0), Just(50.0)]) {
        for gpu in row_gpus() {
            let shape = [a, b, n];
            let x: Vec<f64> = random_vec(seed, a * b * n, scale).iter().map(|v| v + offset).collect();
            let x = as_f64(&as_f32(&x)); // exactly the values the GPU sees
            let xt = Tensor::from_slice(gpu, &shape, &as_f32(&x)).unwrap();
            let y = softmax_forward(&xt).unwrap();
            prop_assert_eq!(y.shape(), &shape[..]);
            let want_y = cpu::softmax_forward(&x, n);
            assert_close("softmax_forward", gpu, &y.to_vec().unwrap(), &want_y, FWD_TOL);

            // The backward gets the reference y (rounded to f32), so it is judged on its own error.
            let y_in = Tensor::from_slice(gpu, &shape, &as_f32(&want_y)).unwrap();
            let (dy, dyt) = random_tensor(gpu, &shape, seed ^ 1, 1.0);
            let dx = softmax_backward(&y_in, &dyt).unwrap();
            prop_assert_eq!(dx.shape(), &shape[..]);
            assert_close("softmax_backward", gpu, &dx.to_vec().unwrap(), &cpu::softmax_backward(&as_f64(&as_f32(&want_y)), &dy, n), BWD_TOL);
        }
    }

    /// ⟨dx, v⟩ must equal the directional derivative of ⟨softmax(x), dy⟩ along v.
    #[test]
    fn softmax_backward_matches_finite_differences(rows in dim(6), n in dim(100), seed in any::<u64>()) {
        for gpu in row_gpus() {
            let (x, xt) = random_tensor(gpu, &[rows, n], seed, 3.0);
            let (dy, dyt) = random_tensor(gpu, &[rows, n], seed ^ 2, 1.0);
            let v = random_vec(seed ^ 3, rows * n, 1.0);
            let y = softmax_forward(&xt).unwrap();
            let g = softmax_backward(&y, &dyt).unwrap().to_vec().unwrap();
            let fd = directional_fd(|x| cpu::softmax_forward(x, n), &x, &v, &dy);
            assert_grad_matches_fd("softmax_backward", gpu, &g, fd, &v, GRAD_TOL);
        }
    }
}

proptest! {
    #![proptest_config(cases(12))]

    /// softmax(s·x) in one kernel equals softmax of the scaled input, and its backward (which
    /// carries the factor s) matches finite differences of that composition. Negative and
    /// attention-like scales (1/√hd) included. |x| ≤ 1.5 keeps |s·x| ≤ 3.75, the regime of the
    /// unscaled test above: far larger logits make the softmax one-hot and its gradient a
    /// cancellation (dy − ⟨y, dy⟩) in f32, which would test f32 rather than the kernel.
    #[test]
    fn scaled_softmax_matches_reference_and_finite_differences(rows in dim(6), n in dim(90), seed in any::<u64>(),
                                                               s in prop_oneof![Just(0.125f32), Just(1.0 / 12f32.sqrt()), Just(2.5), Just(-0.7)]) {
        for gpu in row_gpus() {
            let (x, xt) = random_tensor(gpu, &[rows, n], seed, 1.5);
            let scaled = |x: &[f64]| -> Vec<f64> { cpu::softmax_forward(&x.iter().map(|v| s as f64 * v).collect::<Vec<_>>(), n) };
            let y = softmax_scaled_forward(&xt, s).unwrap();
            assert_close("softmax_scaled_forward", gpu, &y.to_vec().unwrap(), &scaled(&x), FWD_TOL);
            let (dy, dyt) = random_tensor(gpu, &[rows, n], seed ^ 2, 1.0);
            let v = random_vec(seed ^ 3, rows * n, 1.0);
            let g = softmax_scaled_backward(&y, &dyt, s).unwrap().to_vec().unwrap();
            assert_grad_matches_fd("softmax_scaled_backward", gpu, &g, directional_fd(scaled, &x, &v, &dy), &v, GRAD_TOL);
        }
    }
}

/// A GPU's 64 threads per row (`row_workgroup_threads` gives a CPU adapter 8, so the other tests
/// here run those), on both reductions, at rows shorter and longer than either: forward and
/// backward against the reference.
#[test]
fn softmax_runs_with_a_gpus_threads_per_row() {
    for gpu in row_gpus() {
        for (rows, n) in [(3, 1), (5, 7), (2, 247), (3, 300)] {
            let (x, xt) = random_tensor(gpu, &[rows, n], n as u64, 4.0);
            let s = 0.125f32;
            let want = cpu::softmax_forward(&x.iter().map(|v| s as f64 * v).collect::<Vec<_>>(), n);
            let y = softmax_scaled_forward_with_threads(64, &xt, s).unwrap();
            assert_close("softmax_scaled_forward at 64 threads", gpu, &y.to_vec().unwrap(), &want, FWD_TOL);
            let y_in = Tensor::from_slice(gpu, &[rows, n], &as_f32(&want)).unwrap();
            let (dy, dyt) = random_tensor(gpu, &[rows, n], n as u64 ^ 1, 1.0);
            let dx = softmax_scaled_backward_with_threads(64, &y_in, &dyt, s).unwrap();
            let want_dx: Vec<f64> = cpu::softmax_backward(&as_f64(&as_f32(&want)), &dy, n).iter().map(|g| s as f64 * g).collect();
            assert_close("softmax_scaled_backward at 64 threads", gpu, &dx.to_vec().unwrap(), &want_dx, BWD_TOL);
        }
    }
}

/// Extreme rows: ±80, inputs near 10000 (exp(10000) is inf in f32, so only the max-subtracted
/// form survives), and rows of length 1 (softmax of one value is exactly 1). Nothing may
/// overflow to inf or NaN.
#[test]
fn softmax_extreme_inputs_stay_finite() {
    let x = [-80.0, 80.0, 0.0, 80.0, 80.0, 80.0, 80.0, 79.0, 10000.0, 9999.0, 9998.0, 10000.0];
    let want = cpu::softmax_forward(&x, 4);
    for gpu in row_gpus() {
        let xt = Tensor::from_slice(gpu, &[3, 4], &as_f32(&x)).unwrap();
        let y = softmax_forward(&xt).unwrap().to_vec().unwrap();
        assert_close("softmax_forward ±80 and 10000", gpu, &y, &want, FWD_TOL);
        assert!(y.iter().all(|v| v.is_finite()), "{}: {y:?}", gpu.describe());

        let single = Tensor::from_slice(gpu, &[3, 1], &[-80.0, 0.0, 1e30]).unwrap();
        assert_eq!(softmax_forward(&single).unwrap().to_vec().unwrap(), vec![1.0; 3], "{}", gpu.describe());
    }
}

/// More rows than one grid dimension holds (65535): the grid is 32769 × 2 workgroups, the rows
/// past the first 32769 come from wid.y, and the one spare workgroup has no row. Each row
/// is [r mod 5, 0], so a row mapped to the wrong workgroup shows up as a wrong value.
#[test]
fn softmax_covers_more_than_65535_rows() {
    let rows = 65_537;
    let x: Vec<f64> = (0..rows).flat_map(|r| [(r % 5) as f64, 0.0]).collect();
    let want = cpu::softmax_forward(&x, 2);
    for gpu in row_gpus() {
        let xt = Tensor::from_slice(gpu, &[rows, 2], &as_f32(&x)).unwrap();
        let y = softmax_forward(&xt).unwrap();
        assert_close("softmax_forward, 65537 rows", gpu, &y.to_vec().unwrap(), &want, FWD_TOL);
        // y doubles as dy: both bindings are read-only, so passing one tensor twice is allowed.
        let dx = softmax_backward(&y, &y).unwrap();
        let dx_want = cpu::softmax_backward(&want, &want, 2);
        assert_close("softmax_backward, 65537 rows", gpu, &dx.to_vec().unwrap(), &dx_want, BWD_TOL);
    }
}

/// Mismatched shapes are an error that names the op and both shapes.
#[test]
fn softmax_backward_rejects_mismatched_shapes() {
    let gpu = &row_gpus()[0];
    let y = Tensor::zeros(gpu, &[2, 3]).unwrap();
    let dy = Tensor::zeros(gpu, &[3, 2]).unwrap();
    let msg = softmax_backward(&y, &dy).unwrap_err().to_string();
    assert!(msg.contains("softmax_backward") && msg.contains("[2, 3]") && msg.contains("[3, 2]"), "{msg}");
}
