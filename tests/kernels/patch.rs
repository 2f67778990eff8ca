//! im2col: an exact permutation, so GPU and reference must agree exactly.

use proptest::prelude::*;
use vpt_wgsl::kernels::patch::*;
use vpt_wgsl::reference::patch as cpu;
use vpt_wgsl::Tensor;

use crate::common::*;

proptest! {
    #![proptest_config(cases(16))]

    #[test]
    fn im2col_matches_reference_and_finite_differences(batch in dim(3), channels in dim(3), gh in dim(5), gw in dim(6), p in dim(7), seed in any::<u64>()) {
        let shape = [batch, channels, gh * p, gw * p];
        for gpu in gpus() {
            let (x, xt) = random_tensor(gpu, &shape, seed, 1.0);
            let patches = im2col_forward(&xt, p).unwrap();
            prop_assert_eq!(patches.shape(), &[batch, gh * gw, channels * p * p][..]);
            assert_close("im2col_forward", gpu, &patches.to_vec().unwrap(), &cpu::im2col_forward(&x, shape, p), 0.0);
            let (w, wt) = random_tensor(gpu, patches.shape(), seed ^ 1, 1.0);
            let dx = im2col_backward(&wt, &shape, p).unwrap();
            let v = random_vec(seed ^ 2, x.len(), 1.0);
            let fd = directional_fd(|x| cpu::im2col_forward(x, shape, p), &x, &v, &w);
            assert_grad_matches_fd("im2col_backward", gpu, &dx.to_vec().unwrap(), fd, &v, GRAD_TOL);
        }
    }
}

#[test]
fn im2col_rejects_sizes_not_divisible_by_patch() {
    let gpu = &gpus()[0];
    let msg = im2col_forward(&Tensor::zeros(gpu, &[1, 3, 10, 12]).unwrap(), 4).unwrap_err().to_string();
    assert!(msg.contains("im2col_forward") && msg.contains("[1, 3, 10, 12]") && msg.contains("patch size 4"), "{msg}");
}
