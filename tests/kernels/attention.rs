//! Fused attention: forward and backward against the f64 reference (which forms P explicitly) on
//! random B, H, T (1, primes, past the 16-row tile), Tq (T, 1, about half of T, past T) and hd
//! (1 to 128, ViT-H's 80 included; 1 and 6 are read by the build for widths not a multiple of
//! 4, with a partial last quad);
//! with dQ both ways (`DqPath`); against finite differences; against the unfused path (matmul → softmax → matmul) on the same
//! GPU; the subgroup build and any workgroup size to the bit; more than 65535 workgroups; and the
//! shape errors.

use proptest::prelude::*;
use vpt_wgsl::gpu::KernelChoices;
use vpt_wgsl::kernels::attention::*;
use vpt_wgsl::kernels::matmul::{matmul_forward, MatmulOptions};
use vpt_wgsl::kernels::softmax::softmax_scaled_forward;
use vpt_wgsl::reference::attention as cpu;
use vpt_wgsl::reference::attention::Heads;
use vpt_wgsl::Tensor;

use crate::common::*;

// Tolerances, relative to each output's largest magnitude with assert_close's floor of 1.
// Forward: each o is a convex combination of v rows (|v| ≤ 1), its weights rounded through
// exp and a sum of ≤ T terms, and rescaled once per key tile; L is m + log l. Backward: dS sums
// ≤ T products of dO·V and is scaled into dQ and dK by sums of ≤ T more; the f32 roundings of
// the recomputed P (from L rather than from the row's own sum) add ~1 ulp of exp. Measured here
// (lavapipe and llvmpipe GL, 30 cases each, T ≤ 41, hd ≤ 128): ≤ 1.8e-6 forward, ≤ 1.7e-6
// backward. 2e-5 leaves room for a driver with a looser exp and still fails any wrong term by
// orders of magnitude (dropping the online rescale gives errors of ~2).
const FWD_TOL: f64 = 2e-5;
const BWD_TOL: f64 = 2e-5;

fn tokens() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1), Just(2), Just(13), Just(16), Just(17), Just(41)]
}

/// Tq from T and a pick: T (self-attention), 1 (CLS alone), about half, or past T.
fn queries_of(t: usize, pick: usize) -> usize {
    [t, 1, t / 2 + 1, t + 5][pick % 4]
}

fn head_dims() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1), Just(6), Just(32), Just(64), Just(80), Just(128)]
}

proptest! {
    #![proptest_config(cases(10))]

    /// o and L against the reference, then dq, dk, dv (from the GPU's own o and L).
    #[test]
    fn attention_matches_reference(b in dim(2), h in dim(3), t in tokens(), pick in 0usize..4, hd in head_dims(), seed in any::<u64>(),
                                   spread in prop_oneof![Just(1.0), Just(4.0)]) {
        for gpu in gpus() {
            let tq = queries_of(t, pick);
            let (q_shape, k_shape) = ([b, h, tq, hd], [b, h, t, hd]);
            let heads = Heads { queries: tq, tokens: t, head_dim: hd };
            let scale = 1.0 / (hd as f32).sqrt();
            // spread 4 gives scores up to ~16·√hd·s: near one-hot rows, where the online max matters.
            let (q, qt) = random_tensor(gpu, &q_shape, seed, spread);
            let (k, kt) = random_tensor(gpu, &k_shape, seed ^ 1, spread);
            let (v, vt) = random_tensor(gpu, &k_shape, seed ^ 2, 1.0);
            let (d_o, dot) = random_tensor(gpu, &q_shape, seed ^ 3, 1.0);
            let out = attention_forward(&qt, &kt, &vt, scale).unwrap();
            prop_assert_eq!(out.o.shape(), &q_shape[..]);
            prop_assert_eq!(out.lse.shape(), &q_shape[..3]);
            let (want_o, want_lse) = cpu::attention_forward(&q, &k, &v, heads, scale as f64);
            assert_close("attention_forward o", gpu, &out.o.to_vec().unwrap(), &want_o, FWD_TOL);
            assert_close("attention_forward lse", gpu, &out.lse.to_vec().unwrap(), &want_lse, FWD_TOL);

            let [dq, dk, dv] = cpu::attention_backward(&q, &k, &v, &d_o, heads, scale as f64);
            // dQ both ways: the matmul on the stored s·dS (what fits), and the recomputing kernel.
            for path in [DqPath::Matmul, DqPath::Kernel] {
                let g = attention_backward_with(path, &qt, &kt, &vt, &out, &dot, scale).unwrap();
                assert_close(&format!("attention_backward dq ({path:?})"), gpu, &g.dq.to_vec().unwrap(), &dq, BWD_TOL);
                assert_close(&format!("attention_backward dk ({path:?})"), gpu, &g.dk.to_vec().unwrap(), &dk, BWD_TOL);
                assert_close(&format!("attention_backward dv ({path:?})"), gpu, &g.dv.to_vec().unwrap(), &dv, BWD_TOL);
            }
        }
    }

    /// ⟨(dq, dk, dv), u⟩ must equal the directional derivative of ⟨o, dO⟩ along u = (uq, uk, uv).
    #[test]
    fn attention_backward_matches_finite_differences(h in dim(2), t in prop_oneof![Just(3), Just(19)], pick in 0usize..4,
                                                     hd in prop_oneof![Just(1), Just(8), Just(80)], seed in any::<u64>()) {
        for gpu in gpus() {
            let tq = queries_of(t, pick);
            let heads = Heads { queries: tq, tokens: t, head_dim: hd };
            let (nq, nk) = (h * tq * hd, h * t * hd);
            let scale = 1.0 / (hd as f32).sqrt();
            // q, k, v side by side in one vector, the point the derivative is taken at.
            let (qkv, _) = random_tensor(gpu, &[nq + 2 * nk], seed, 1.0);
            let (at_k, at_v) = (nq, nq + nk);
            let qt = Tensor::from_slice(gpu, &[1, h, tq, hd], &as_f32(&qkv[..at_k])).unwrap();
            let kt = Tensor::from_slice(gpu, &[1, h, t, hd], &as_f32(&qkv[at_k..at_v])).unwrap();
            let vt = Tensor::from_slice(gpu, &[1, h, t, hd], &as_f32(&qkv[at_v..])).unwrap();
            let (d_o, dot) = random_tensor(gpu, &[1, h, tq, hd], seed ^ 1, 1.0);
            let u = random_vec(seed ^ 2, nq + 2 * nk, 1.0);
            let out = attention_forward(&qt, &kt, &vt, scale).unwrap();
            let g = attention_backward(&qt, &kt, &vt, &out, &dot, scale).unwrap();
            let grad: Vec<f32> = [g.dq, g.dk, g.dv].iter().flat_map(|t| t.to_vec().unwrap()).collect();
            let f = |x: &[f64]| cpu::attention_forward(&x[..at_k], &x[at_k..at_v], &x[at_v..], heads, scale as f64).0;
            assert_grad_matches_fd("attention_backward", gpu, &grad, directional_fd(f, &qkv, &u, &d_o), &u, GRAD_TOL);
        }
    }
}

/// The fused kernel and the unfused path it replaces (q·kᵀ, softmax_scaled, ·v) agree at a
/// ViT-like shape (T = 67 tokens, hd = 64) on each GPU.
#[test]
fn fused_attention_matches_unfused_path() {
    for gpu in gpus() {
        let shape = [2, 3, 67, 64];
        let scale = 0.125;
        let (_, q) = random_tensor(gpu, &shape, 11, 2.0);
        let (_, k) = random_tensor(gpu, &shape, 12, 2.0);
        let (_, v) = random_tensor(gpu, &shape, 13, 1.0);
        let scores = matmul_forward(&q, &k, None, MatmulOptions { trans_a: false, trans_b: true }).unwrap();
        let p = softmax_scaled_forward(&scores, scale).unwrap();
        let unfused = matmul_forward(&p, &v, None, MatmulOptions::default()).unwrap().to_vec().unwrap();
        let fused = attention_forward(&q, &k, &v, scale).unwrap().o.to_vec().unwrap();
        assert_close("fused vs unfused attention", gpu, &fused, &as_f64(&unfused), 2e-6);
    }
}

/// Where a device has SUBGROUP, the forward, dK/dV and dQ kernels that share the streamed rows
/// by subgroup shuffles (`_sg`) compute the same sums in the same order as the plain kernels: the
/// same bits, checked against the same adapter opened without SUBGROUP. And the invocations per
/// workgroup (`row_workgroup_threads`: a CPU adapter's 8, a GPU's 64) change only which invocations idle,
/// never a sum: both builds at both sizes give the bits of the plain build at 64. Shapes: hd 64
/// (16 quads, two or more chunks of lanes), hd 20 (5 quads, fewer than a subgroup's lanes) and
/// hd 8, T past the tiles with idle invocations at the end: dkdv_sg streams 16 queries a step,
/// two of the plain kernel's steps of 8, and T = 29 ends on a step with both, T = 37 and 19 on a
/// step with one; Tq = 1 (CLS alone: every invocation of its workgroup but one past Tq) and 21
/// (dkdv's last step of queries with both groups of 8, against T = 37) with fewer queries than
/// keys.
///
/// Where the subgroup kernels read the heads from texels (lavapipe's default, `heads_from_texels`),
/// the same device told by its tune choices to read their buffers gives those bits too; the
/// heads of the first case (9472 values) fill one texture row and part of a second.
#[test]
fn subgroup_attention_and_every_workgroup_size_give_the_plain_kernels_bits() {
    for gpu in gpus() {
        let plain = gpu.reopen_without(wgpu::Features::SUBGROUP).unwrap();
        let from_buffers = gpu.reopen_without(wgpu::Features::empty()).unwrap();
        let mut choices = KernelChoices::for_gpu(&from_buffers, "test");
        choices.choices.insert(HEADS_KEY.to_string(), HEADS_BUFFERS.to_string());
        from_buffers.use_choices(choices);
        let cases = [([2, 2, 37, 64], 37), ([2, 1, 19, 20], 19), ([1, 1, 29, 8], 29), ([1, 2, 1, 64], 37), ([2, 1, 21, 20], 37)];
        for (i, (q_shape, tokens)) in cases.into_iter().enumerate() {
            let k_shape = [q_shape[0], q_shape[1], tokens, q_shape[3]];
            let scale = 1.0 / (q_shape[3] as f32).sqrt();
            let run = |device: &vpt_wgsl::Gpu, threads: u32| {
                let seed = 40 + 4 * i as u64;
                let [q, k, v, d_o] = [(0, q_shape), (1, k_shape), (2, k_shape), (3, q_shape)].map(|(n, s)| random_tensor(device, &s, seed + n, 2.0).1);
                let out = attention_forward_with_threads(threads, &q, &k, &v, scale).unwrap();
                let mut all = vec![out.o.to_vec().unwrap(), out.lse.to_vec().unwrap()];
                for path in [DqPath::Matmul, DqPath::Kernel] {
                    let g = attention_backward_with_threads(threads, path, &q, &k, &v, &out, &d_o, scale).unwrap();
                    all.extend([g.dq.to_vec().unwrap(), g.dk.to_vec().unwrap(), g.dv.to_vec().unwrap()]);
                }
                all
            };
            let want = run(&plain, 64);
            for (device, threads) in [(gpu, 8), (gpu, 64), (&plain, 8), (&from_buffers, 8)] {
                let got = run(device, threads);
                for (n, name) in ["o", "lse", "dq (matmul)", "dk", "dv", "dq (kernel)", "dk", "dv"].iter().enumerate() {
                    assert!(got[n] == want[n], "{name} at q {q_shape:?}, T = {tokens}, {threads} invocations a workgroup: differs from the plain kernels at 64 on {}", device.describe());
                }
            }
        }
        if gpu.has_subgroups() && gpu.texels_pay() {
            let ran = |device: &vpt_wgsl::Gpu, op: &str| device.dispatch_counts().get(op).copied().unwrap_or(0) > 0;
            for entry in ["attention_forward_sg", "attention_backward_dkdv_sg", "attention_backward_dq_sg"] {
                assert!(ran(gpu, &format!("attention_texels_subgroup::{entry}")) && !ran(gpu, &format!("attention_subgroup::{entry}")), "{entry} reads texels on {}", gpu.describe());
                assert!(ran(&from_buffers, &format!("attention_subgroup::{entry}")) && !ran(&from_buffers, &format!("attention_texels_subgroup::{entry}")), "{entry} reads buffers where told to");
            }
        }
    }
}

/// Invocations per workgroup that are no power of 2, or more than WebGPU promises: an error
/// naming the op, not a hang.
#[test]
fn attention_rejects_workgroup_sizes_it_cannot_take() {
    let gpu = &gpus()[0];
    let (_, q) = random_tensor(gpu, &[1, 1, 4, 8], 1, 1.0);
    for threads in [0, 24, 512] {
        let err = attention_forward_with_threads(threads, &q, &q, &q, 0.5).expect_err("rejected").to_string();
        assert!(err.contains("attention_forward") && err.contains("power of 2"), "{err}");
    }
}

/// B·H = 70000 heads of one token each: 70000 workgroups, folded into a 2-D grid (and past the
/// matmul's batch axis, so dQ takes the recomputing kernel). With T = 1 every row's softmax is
/// exactly 1, so o = v, L = s·⟨q, k⟩, dv = dO and dq = dk = 0.
#[test]
fn attention_covers_more_than_65535_workgroups() {
    for gpu in gpus() {
        let shape = [7, 10000, 1, 1];
        let n = 70000;
        let (q, qt) = random_tensor(gpu, &shape, 1, 1.0);
        let (k, kt) = random_tensor(gpu, &shape, 2, 1.0);
        let (v, vt) = random_tensor(gpu, &shape, 3, 1.0);
        let (d_o, dot) = random_tensor(gpu, &shape, 4, 1.0);
        let out = attention_forward(&qt, &kt, &vt, 0.5).unwrap();
        assert_eq!(out.o.to_vec().unwrap(), as_f32(&v), "o = v on {}", gpu.describe());
        let want_lse: Vec<f64> = (0..n).map(|i| 0.5 * q[i] * k[i]).collect();
        assert_close("lse", gpu, &out.lse.to_vec().unwrap(), &want_lse, 1e-6);
        assert_eq!(DqPath::for_shape(gpu, n, 1, 1), DqPath::Kernel);
        let g = attention_backward(&qt, &kt, &vt, &out, &dot, 0.5).unwrap();
        assert_eq!(g.dv.to_vec().unwrap(), as_f32(&d_o), "dv = dO on {}", gpu.describe());
        assert!(g.dq.to_vec().unwrap().iter().chain(&g.dk.to_vec().unwrap()).all(|x| x.abs() < 1e-6));
    }
}

#[test]
fn attention_shape_errors_name_the_op_and_shapes() {
    let gpu = &gpus()[0];
    let t = |shape: &[usize]| Tensor::zeros(gpu, shape).unwrap();
    let err = attention_forward(&t(&[2, 3, 4]), &t(&[2, 3, 4]), &t(&[2, 3, 4]), 1.0).unwrap_err().to_string();
    assert!(err.contains("attention_forward") && err.contains("[B, H, Tq, hd]"), "{err}");
    // Tq may differ from T; B, H and hd may not, and v must be k's shape.
    let err = attention_forward(&t(&[1, 2, 5, 8]), &t(&[1, 3, 6, 8]), &t(&[1, 3, 6, 8]), 1.0).unwrap_err().to_string();
    assert!(err.contains("[1, 3, 6, 8]") && err.contains("B, H and hd"), "{err}");
    let err = attention_forward(&t(&[1, 2, 5, 8]), &t(&[1, 2, 6, 8]), &t(&[1, 2, 5, 8]), 1.0).unwrap_err().to_string();
    assert!(err.contains("[1, 2, 5, 8]") && err.contains('v'), "{err}");
    let err = attention_forward(&t(&[1, 1, 2, 129]), &t(&[1, 1, 2, 129]), &t(&[1, 1, 2, 129]), 1.0).unwrap_err().to_string();
    assert!(err.contains("hd ≤ 128") && err.contains("`attention` unfused"), "{err}");
}
