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

/// qkv [B, T, 3·W] from its token parts (host values, each [B or 1, Tᵢ, 3·W]), a shared part's
/// rows repeated for every image: the concatenation the split of parts never makes.
fn concatenated(parts: &[(Vec<f64>, usize, bool)], batch: usize, width: usize) -> Vec<f64> {
    let row = 3 * width;
    let mut qkv = Vec::new();
    for b in 0..batch {
        for (values, tokens, shared) in parts {
            let image = if *shared { 0 } else { b };
            qkv.extend_from_slice(&values[image * tokens * row..(image + 1) * tokens * row]);
        }
    }
    qkv
}

/// Rows `queries` of each head of x [B, H, T, hd] (host values).
fn query_slice(x: &[f64], batch_heads: usize, tokens: usize, head_dim: usize, queries: &std::ops::Range<usize>) -> Vec<f64> {
    (0..batch_heads).flat_map(|bh| x[(bh * tokens + queries.start) * head_dim..(bh * tokens + queries.end) * head_dim].to_vec()).collect()
}

proptest! {
    #![proptest_config(cases(12))]

    /// qkv given as token parts (some shared by the batch), q kept for a range of query rows:
    /// the values of concatenating, splitting and slicing, exactly; and the backward is the
    /// adjoint of that, each shared part's gradient summed over the batch.
    #[test]
    fn split_of_parts_is_concatenating_splitting_and_slicing(batch in dim(3), part_specs in prop::collection::vec((1usize..=6, any::<bool>()), 1..=3), heads in dim(3), head_dim in dim(9), q_from in 0usize..18, q_len in 1usize..18, seed in any::<u64>()) {
        let width = heads * head_dim;
        // The first part has every image (as the model's do: a batch of shared parts alone is 1).
        let part_specs: Vec<(usize, bool)> = part_specs.iter().enumerate().map(|(i, &(t, shared))| (t, shared && i > 0)).collect();
        let tokens: usize = part_specs.iter().map(|(t, _)| t).sum();
        let queries = (q_from % tokens)..(q_from % tokens + q_len).min(tokens);
        for gpu in gpus() {
            let made: Vec<(Vec<f64>, Tensor)> = part_specs.iter().enumerate().map(|(i, &(t, shared))| random_tensor(gpu, &[if shared { 1 } else { batch }, t, 3 * width], seed ^ i as u64, 1.0)).collect();
            let host: Vec<(Vec<f64>, usize, bool)> = made.iter().zip(&part_specs).map(|((v, _), &(t, shared))| (v.clone(), t, shared)).collect();
            let parts: Vec<&Tensor> = made.iter().map(|(_, t)| t).collect();
            let out = split_heads_of_parts_forward(&parts, heads, queries.clone()).unwrap();
            let [q, k, v] = cpu::split_heads_forward(&concatenated(&host, batch, width), batch, tokens, heads, head_dim);
            prop_assert_eq!(out.q.shape(), &[batch, heads, queries.len(), head_dim][..]);
            assert_close("split of parts, q", gpu, &out.q.to_vec().unwrap(), &query_slice(&q, batch * heads, tokens, head_dim, &queries), 0.0);
            assert_close("split of parts, k", gpu, &out.k.to_vec().unwrap(), &k, 0.0);
            assert_close("split of parts, v", gpu, &out.v.to_vec().unwrap(), &v, 0.0);

            // Backward: ⟨split(x), (dq, dk, dv)⟩ is linear in x, so its gradient is exact: each
            // element of the parts gets the one element of dq, dk or dv it went to (0 where a
            // token asked nothing), summed over the images for a shared part.
            let head_shape = [batch, heads, tokens, head_dim];
            let (dq, dqt) = random_tensor(gpu, &[batch, heads, queries.len(), head_dim], seed ^ 7, 1.0);
            let (dk, dkt) = random_tensor(gpu, &head_shape, seed ^ 8, 1.0);
            let (dv, dvt) = random_tensor(gpu, &head_shape, seed ^ 9, 1.0);
            let shapes: Vec<Vec<usize>> = parts.iter().map(|p| p.shape().to_vec()).collect();
            let grads = split_heads_of_parts_backward(&dqt, &dkt, &dvt, &shapes, queries.clone()).unwrap();
            let mut full_dq = vec![0.0; batch * heads * tokens * head_dim];
            for bh in 0..batch * heads {
                let rows = (bh * tokens + queries.start) * head_dim..(bh * tokens + queries.end) * head_dim;
                full_dq[rows].copy_from_slice(&dq[bh * queries.len() * head_dim..(bh + 1) * queries.len() * head_dim]);
            }
            let want_full = split_adjoint(&[full_dq, dk, dv], batch, tokens, heads, head_dim);
            let mut first = 0;
            for ((grad, shape), &(t, shared)) in grads.iter().zip(&shapes).zip(&part_specs) {
                prop_assert_eq!(grad.shape(), &shape[..]);
                let row = 3 * width;
                let mut want = vec![0.0; shape.iter().product()];
                for b in 0..batch {
                    let image = if shared { 0 } else { b };
                    for (i, w) in want[image * t * row..(image + 1) * t * row].iter_mut().enumerate() {
                        *w += want_full[(b * tokens + first) * row + i];
                    }
                }
                assert_close("split of parts, backward", gpu, &grad.to_vec().unwrap(), &want, 1e-6);
                first += t;
            }
        }
    }
}

/// The adjoint of the reference split: dq, dk, dv [B, H, T, hd] → dqkv [B, T, 3·H·hd].
fn split_adjoint(d: &[Vec<f64>; 3], batch: usize, tokens: usize, heads: usize, head_dim: usize) -> Vec<f64> {
    let width = heads * head_dim;
    let mut dqkv = vec![0.0; batch * tokens * 3 * width];
    for b in 0..batch {
        for t in 0..tokens {
            for (s, part) in d.iter().enumerate() {
                for h in 0..heads {
                    for e in 0..head_dim {
                        dqkv[(b * tokens + t) * 3 * width + s * width + h * head_dim + e] = part[((b * heads + h) * tokens + t) * head_dim + e];
                    }
                }
            }
        }
    }
    dqkv
}

#[test]
fn split_of_parts_rejects_what_does_not_fit() {
    let gpu = &gpus()[0];
    let (a, shared) = (Tensor::zeros(gpu, &[2, 3, 12]).unwrap(), Tensor::zeros(gpu, &[1, 2, 12]).unwrap());
    let msg = split_heads_of_parts_forward(&[&a, &shared], 2, 3..6).unwrap_err().to_string();
    assert!(msg.contains("split_heads_forward") && msg.contains("3..6") && msg.contains("5 tokens"), "{msg}");
    let msg = split_heads_of_parts_forward(&[&a, &shared], 2, 2..2).unwrap_err().to_string();
    assert!(msg.contains("split_heads_forward") && msg.contains("2..2"), "{msg}");
    let wide = Tensor::zeros(gpu, &[2, 2, 18]).unwrap();
    let msg = split_heads_of_parts_forward(&[&a, &wide], 2, 0..5).unwrap_err().to_string();
    assert!(msg.contains("split_heads_forward") && msg.contains("[2, 3, 12]") && msg.contains("[2, 2, 18]"), "{msg}");
    let out = split_heads_of_parts_forward(&[&a, &shared], 2, 1..4).unwrap();
    let msg = split_heads_of_parts_backward(&out.k, &out.k, &out.v, &[vec![2, 3, 12], vec![1, 2, 12]], 1..4).unwrap_err().to_string();
    assert!(msg.contains("split_heads_backward") && msg.contains("dq") && msg.contains("1..4"), "{msg}");
    let msg = split_heads_of_parts_backward(&out.q, &out.k, &out.v, &[vec![2, 3, 12]], 1..4).unwrap_err().to_string();
    assert!(msg.contains("split_heads_backward") && msg.contains("[[2, 3, 12]]"), "{msg}");
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
