//! Token concatenation, slicing and dropping: GPU vs f64 reference, backward vs finite differences.
//! These only move values, so GPU and reference must agree exactly.

use proptest::prelude::*;
use vpt_wgsl::kernels::tokens::*;
use vpt_wgsl::reference::tokens as cpu;
use vpt_wgsl::Tensor;

use crate::common::*;

proptest! {
    #![proptest_config(cases(16))]

    // The VPT layout: [CLS (broadcast), prompts (broadcast), patches (per image)].
    #[test]
    fn concat_matches_reference(batch in dim(4), p in dim(12), n in dim(40), width in dim(33), seed in any::<u64>()) {
        for gpu in gpus() {
            let shapes = [[1, 1, width], [1, p, width], [batch, n, width]];
            let parts: Vec<(Vec<f64>, Tensor)> = shapes.iter().enumerate().map(|(i, s)| random_tensor(gpu, s, seed ^ i as u64, 1.0)).collect();
            let y = concat_tokens_forward(&parts.iter().map(|(_, t)| t).collect::<Vec<_>>()).unwrap();
            prop_assert_eq!(y.shape(), &[batch, 1 + p + n, width][..]);
            let want = cpu::concat_tokens_forward(&[(&parts[0].0, shapes[0]), (&parts[1].0, shapes[1]), (&parts[2].0, shapes[2])], batch);
            assert_close("concat_tokens_forward", gpu, &y.to_vec().unwrap(), &want, 0.0);
        }
    }

    #[test]
    fn concat_backward_matches_finite_differences(batch in dim(3), p in dim(6), n in dim(9), width in dim(8), seed in any::<u64>()) {
        for gpu in gpus() {
            let shapes = [[1, 1, width], [1, p, width], [batch, n, width]];
            let sizes: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
            let x = random_vec(seed, sizes.iter().sum(), 1.0); // all parts, one after another
            let forward = |x: &[f64]| {
                let (cls, rest) = x.split_at(sizes[0]);
                let (prompts, patches) = rest.split_at(sizes[1]);
                cpu::concat_tokens_forward(&[(cls, shapes[0]), (prompts, shapes[1]), (patches, shapes[2])], batch)
            };
            let (w, wt) = random_tensor(gpu, &[batch, 1 + p + n, width], seed ^ 7, 1.0);
            let grads = concat_tokens_backward(&wt, &shapes.iter().map(|s| s.to_vec()).collect::<Vec<_>>()).unwrap();
            for (g, s) in grads.iter().zip(&shapes) {
                prop_assert_eq!(g.shape(), &s[..]);
            }
            let grad: Vec<f32> = grads.iter().flat_map(|g| g.to_vec().unwrap()).collect();
            let v = random_vec(seed ^ 8, x.len(), 1.0);
            assert_grad_matches_fd("concat_tokens_backward", gpu, &grad, directional_fd(forward, &x, &v, &w), &v, GRAD_TOL);
        }
    }

    #[test]
    fn slice_matches_reference_and_finite_differences(batch in dim(3), tokens in dim(20), width in dim(17), seed in any::<u64>(), a in 0usize..20, b in 0usize..20) {
        let start = a % tokens;
        let count = 1 + b % (tokens - start);
        for gpu in gpus() {
            let (x, xt) = random_tensor(gpu, &[batch, tokens, width], seed, 1.0);
            let y = slice_tokens_forward(&xt, start, count).unwrap();
            assert_close("slice_tokens_forward", gpu, &y.to_vec().unwrap(), &cpu::slice_tokens_forward(&x, [batch, tokens, width], start, count), 0.0);
            let (w, wt) = random_tensor(gpu, &[batch, count, width], seed ^ 1, 1.0);
            let dx = slice_tokens_backward(&wt, tokens, start).unwrap();
            let v = random_vec(seed ^ 2, x.len(), 1.0);
            let fd = directional_fd(|x| cpu::slice_tokens_forward(x, [batch, tokens, width], start, count), &x, &v, &w);
            assert_grad_matches_fd("slice_tokens_backward", gpu, &dx.to_vec().unwrap(), fd, &v, GRAD_TOL);
        }
    }

    // What a block leaves out of its output (`RowsRead::AllBut`): any run of tokens, at the start,
    // inside or at the end, never all of them.
    #[test]
    fn drop_matches_reference_and_finite_differences(batch in dim(3), tokens in 2usize..20, width in dim(17), seed in any::<u64>(), a in 0usize..20, b in 0usize..20) {
        let start = a % tokens;
        let count = 1 + b % (tokens - start).min(tokens - 1);
        for gpu in gpus() {
            let (x, xt) = random_tensor(gpu, &[batch, tokens, width], seed, 1.0);
            let y = drop_tokens_forward(&xt, start, count).unwrap();
            prop_assert_eq!(y.shape(), &[batch, tokens - count, width][..]);
            assert_close("drop_tokens_forward", gpu, &y.to_vec().unwrap(), &cpu::drop_tokens_forward(&x, [batch, tokens, width], start, count), 0.0);
            let (w, wt) = random_tensor(gpu, &[batch, tokens - count, width], seed ^ 1, 1.0);
            let dx = drop_tokens_backward(&wt, start, count).unwrap();
            prop_assert_eq!(dx.shape(), &[batch, tokens, width][..]);
            let v = random_vec(seed ^ 2, x.len(), 1.0);
            let fd = directional_fd(|x| cpu::drop_tokens_forward(x, [batch, tokens, width], start, count), &x, &v, &w);
            assert_grad_matches_fd("drop_tokens_backward", gpu, &dx.to_vec().unwrap(), fd, &v, GRAD_TOL);
        }
    }
}

#[test]
fn token_shape_errors_name_op_and_shapes() {
    let gpu = &gpus()[0];
    let a = Tensor::zeros(gpu, &[2, 3, 4]).unwrap();
    let b = Tensor::zeros(gpu, &[3, 3, 4]).unwrap();
    let msg = concat_tokens_forward(&[&a, &b]).unwrap_err().to_string();
    assert!(msg.contains("concat_tokens_forward") && msg.contains("[2, 3, 4]") && msg.contains("[3, 3, 4]"), "{msg}");
    let msg = slice_tokens_forward(&a, 2, 2).unwrap_err().to_string();
    assert!(msg.contains("slice_tokens_forward") && msg.contains("[2, 3, 4]"), "{msg}");
    for (start, count) in [(0, 3), (2, 2)] {
        let msg = drop_tokens_forward(&a, start, count).unwrap_err().to_string();
        assert!(msg.contains("drop_tokens_forward") && msg.contains("[2, 3, 4]"), "{msg}");
    }
}
