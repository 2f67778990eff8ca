//! Attention head split/merge: exact permutations, so GPU and reference must agree exactly.

use proptest::prelude::*;
use vpt_wgsl::kernels::heads::*;
use vpt_wgsl::reference::heads as cpu;
use vpt_wgsl::Tensor;

use crate::common::*;

proptest! {
    #![proptest_config(cases(16))]

    #[test]
    fn split_and_merge_match_reference(batch in dim(3), tokens in dim(30), heads in dim(5), head_dim in dim(13), seed in any::<u64>()) {
        let width = heads * head_dim;
        for gpu in gpus() {
            let (qkv, qkvt) = random_tensor(gpu, &[batch, tokens, 3 * width], seed, 1.0);
            let out = split_heads_forward(&qkvt, heads).unwrap();
            let want = cpu::split_heads_forward(&qkv, batch, tokens, heads, head_dim);
            for (name, got, want) in [("q", &out.q, &want[0]), ("k", &out.k, &want[1]), ("v", &out.v, &want[2])] {
                prop_assert_eq!(got.shape(), &[batch, heads, tokens, head_dim][..]);
                assert_close(&format!("split_heads_forward {name}"), gpu, &got.to_vec().unwrap(), want, 0.0);
            }
            let (x, xt) = random_tensor(gpu, &[batch, heads, tokens, head_dim], seed ^ 1, 1.0);
            let y = merge_heads_forward(&xt).unwrap();
            prop_assert_eq!(y.shape(), &[batch, tokens, width][..]);
            assert_close("merge_heads_forward", gpu, &y.to_vec().unwrap(), &cpu::merge_heads_forward(&x, batch, heads, tokens, head_dim), 0.0);
        }
    }

    #[test]
    fn backwards_match_finite_differences(batch in dim(2), tokens in dim(7), heads in dim(3), head_dim in dim(5), seed in any::<u64>()) {
        let width = heads * head_dim;
        let qkv_len = batch * tokens * 3 * width;
        for gpu in gpus() {
            let x = random_vec(seed, qkv_len, 1.0);
            let v = random_vec(seed ^ 1, qkv_len, 1.0);
            let head_shape = [batch, heads, tokens, head_dim];
            let ws: Vec<(Vec<f64>, Tensor)> = (0..3).map(|i| random_tensor(gpu, &head_shape, seed ^ (10 + i), 1.0)).collect();
            let w_all: Vec<f64> = ws.iter().flat_map(|(w, _)| w.iter().copied()).collect();
            let dqkv = split_heads_backward(&ws[0].1, &ws[1].1, &ws[2].1).unwrap();
            let fd = directional_fd(|x| cpu::split_heads_forward(x, batch, tokens, heads, head_dim).concat(), &x, &v, &w_all);
            assert_grad_matches_fd("split_heads_backward", gpu, &dqkv.to_vec().unwrap(), fd, &v, GRAD_TOL);

            let xm = random_vec(seed ^ 2, batch * tokens * width, 1.0);
            let vm = random_vec(seed ^ 3, xm.len(), 1.0);
            let (w, wt) = random_tensor(gpu, &[batch, tokens, width], seed ^ 4, 1.0);
            let dx = merge_heads_backward(&wt, heads).unwrap();
            prop_assert_eq!(dx.shape(), &head_shape[..]);
            let fd = directional_fd(|x| cpu::merge_heads_forward(x, batch, heads, tokens, head_dim), &xm, &vm, &w);
            assert_grad_matches_fd("merge_heads_backward", gpu, &dx.to_vec().unwrap(), fd, &vm, GRAD_TOL);
        }
    }
}

#[test]
fn head_shape_errors_name_op_and_shapes() {
    let gpu = &gpus()[0];
    let msg = split_heads_forward(&Tensor::zeros(gpu, &[2, 5, 20]).unwrap(), 3).unwrap_err().to_string();
    assert!(msg.contains("split_heads_forward") && msg.contains("[2, 5, 20]") && msg.contains("H = 3"), "{msg}");
    let dq = Tensor::zeros(gpu, &[1, 2, 3, 4]).unwrap();
    let dk = Tensor::zeros(gpu, &[1, 2, 3, 5]).unwrap();
    let msg = split_heads_backward(&dq, &dk, &dq).unwrap_err().to_string();
    assert!(msg.contains("split_heads_backward") && msg.contains("[1, 2, 3, 4]") && msg.contains("[1, 2, 3, 5]"), "{msg}");
}
