//! Reductions: GPU vs f64 reference, backward vs finite differences.

use proptest::prelude::*;
use vpt_wgsl::kernels::reduce::*;
use vpt_wgsl::reference::reduce as cpu;

use crate::common::*;

// A sum of R f32 values has rounding error ~ R·2^-24 of Σ|x| in the worst case and ~√R typically;
// for R ≤ 3000 and |x| ≤ 1 that is below 2e-5 of the output scale.
const SUM_TOL: f64 = 2e-5;

proptest! {
    #![proptest_config(cases(16))]

    #[test]
    fn sum_rows_matches_reference(rows in dim(3000), cols in dim(300), seed in any::<u64>()) {
        for gpu in gpus() {
            let (x, xt) = random_tensor(gpu, &[rows, cols], seed, 1.0);
            let (dy, dyt) = random_tensor(gpu, &[cols], seed ^ 1, 1.0);
            let y = sum_rows_forward(&xt).unwrap();
            prop_assert_eq!(y.shape(), &[cols][..]);
            assert_close("sum_rows_forward", gpu, &y.to_vec().unwrap(), &cpu::sum_rows_forward(&x, rows, cols), SUM_TOL);
            let dx = sum_rows_backward(&dyt, rows).unwrap();
            prop_assert_eq!(dx.shape(), &[rows, cols][..]);
            assert_close("sum_rows_backward", gpu, &dx.to_vec().unwrap(), &cpu::sum_rows_backward(&dy, rows), 0.0);
        }
    }

    #[test]
    fn mean_matches_reference(n in dim(20000), seed in any::<u64>()) {
        for gpu in gpus() {
            let (x, xt) = random_tensor(gpu, &[n], seed, 1.0);
            let y = mean_forward(&xt).unwrap().to_scalar().unwrap();
            let want = cpu::mean_forward(&x);
            // 256 partial sums of ≤ n/256 terms each, then a tree: error ≲ 1e-6 of mean |x|.
            prop_assert!((y as f64 - want).abs() <= 1e-6, "mean {y} vs {want} on {}", gpu.describe());
            let dy = vpt_wgsl::Tensor::from_slice(gpu, &[1], &[0.75]).unwrap();
            assert_close("mean_backward", gpu, &mean_backward(&dy, &[n]).unwrap().to_vec().unwrap(), &cpu::mean_backward(0.75, n), 1e-7);
        }
    }

    #[test]
    fn reductions_backward_match_finite_differences(rows in dim(50), cols in dim(40), seed in any::<u64>()) {
        for gpu in gpus() {
            let x = random_vec(seed, rows * cols, 1.0);
            let v = random_vec(seed ^ 2, rows * cols, 1.0);
            let (w, wt) = random_tensor(gpu, &[cols], seed ^ 3, 1.0);
            let g = sum_rows_backward(&wt, rows).unwrap().to_vec().unwrap();
            let fd = directional_fd(|x| cpu::sum_rows_forward(x, rows, cols), &x, &v, &w);
            assert_grad_matches_fd("sum_rows_backward", gpu, &g, fd, &v, GRAD_TOL);
            let dy = vpt_wgsl::Tensor::from_slice(gpu, &[1], &[1.0]).unwrap();
            let g = mean_backward(&dy, &[rows * cols]).unwrap().to_vec().unwrap();
            let fd = directional_fd(|x| vec![cpu::mean_forward(x)], &x, &v, &[1.0]);
            assert_grad_matches_fd("mean_backward", gpu, &g, fd, &v, GRAD_TOL);
        }
    }
}
