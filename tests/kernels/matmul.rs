//! Matmul: every kernel vs the f64 reference over every transpose and batching layout, the
//! composed backward vs the reference and finite differences, the fused GELU epilogues, dispatch
//! counts, shape errors.

use proptest::prelude::*;
use vpt_wgsl::kernels::matmul::*;
use vpt_wgsl::reference::gelu as gelu_ref;
use vpt_wgsl::reference::matmul::{self as cpu, MatmulDims};
use vpt_wgsl::{Gpu, Tensor};

use crate::common::*;

// Tolerances, relative to the output scale (`assert_close`, floor 1; inputs in [-1, 1]).
//
// Every output is an f32 dot product: of length K for C, N for dA, batch·M for dB, and the number
// of rows of dC for dbias. Summing L products in f32 can err by up to L·2^-24 of Σ|terms| in the
// worst case (every rounding in the same direction), but with random signs the roundings cancel
// like a random walk and the error is ~√L·2^-24 of the typical partial sum. Here L ≤ 280 (576 would
// change nothing): we measure at most ~6e-7 of the output scale on lavapipe and llvmpipe's GL, so
// 1e-5 leaves a wide margin, while any wrong index, stride or transpose errs by order 1.
const FWD_TOL: f64 = 1e-5;
const BWD_TOL: f64 = 1e-5;

/// How the operands carry the batch.
#[derive(Clone, Copy, Debug)]
enum Batching {
    /// Both plain matrices: A [M, K] · B [K, N].
    None,
    /// Both with the same batch dims.
    Both,
    /// A batched, B one matrix shared by every batch (a weight).
    SharedB,
    /// A one matrix shared by every batch of B.
    SharedA,
}

#[derive(Clone, Debug)]
struct Case {
    batching: Batching,
    batch_dims: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    opts: MatmulOptions,
    bias: bool,
    seed: u64,
}

impl Case {
    fn a_batched(&self) -> bool {
        matches!(self.batching, Batching::Both | Batching::SharedB)
    }
    fn b_batched(&self) -> bool {
        matches!(self.batching, Batching::Both | Batching::SharedA)
    }
    fn batch(&self) -> usize {
        if matches!(self.batching, Batching::None) {
            1
        } else {
            self.batch_dims.iter().product()
        }
    }
    /// [batch..., M, K], or [batch..., K, M] transposed.
    fn a_shape(&self) -> Vec<usize> {
        shape(self.a_batched(), &self.batch_dims, self.m, self.k, self.opts.trans_a)
    }
    /// [batch..., K, N], or [batch..., N, K] transposed.
    fn b_shape(&self) -> Vec<usize> {
        shape(self.b_batched(), &self.batch_dims, self.k, self.n, self.opts.trans_b)
    }
    fn c_shape(&self) -> Vec<usize> {
        shape(!matches!(self.batching, Batching::None), &self.batch_dims, self.m, self.n, false)
    }
    fn dims(&self) -> MatmulDims {
        MatmulDims { batch: self.batch(), m: self.m, k: self.k, n: self.n, trans_a: self.opts.trans_a, trans_b: self.opts.trans_b, a_batched: self.a_batched(), b_batched: self.b_batched() }
    }
}

/// A matrix of op-shape [rows, cols], stored transposed when `trans`, behind optional batch dims.
fn shape(batched: bool, batch_dims: &[usize], rows: usize, cols: usize, trans: bool) -> Vec<usize> {
    let mut s = if batched { batch_dims.to_vec() } else { vec![] };
    s.extend(if trans { [cols, rows] } else { [rows, cols] });
    s
}

/// A matrix dimension: 1, primes, sizes around the 16 and 64 tile edges, or anything up to 70.
fn mm_dim(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(1usize),
        1 => prop::sample::select(vec![2usize, 3, 5, 7, 13, 31, 61, 67]).prop_map(move |d| d.min(max)),
        1 => prop::sample::select(vec![4usize, 15, 16, 17, 63, 64, 65, 68]).prop_map(move |d| d.min(max)),
        2 => 1usize..=max,
    ]
}

fn case(max_dim: usize) -> impl Strategy<Value = Case> {
    let batching = prop_oneof![Just(Batching::None), Just(Batching::Both), Just(Batching::SharedB), Just(Batching::SharedA)];
    // Mostly one batch dim of 1..3; sometimes two, to check they flatten into one count.
    let batch_dims = prop_oneof![3 => (1usize..=3).prop_map(|b| vec![b]), 1 => Just(vec![2usize, 2])];
    (batching, batch_dims, mm_dim(max_dim), mm_dim(max_dim), mm_dim(max_dim), any::<(bool, bool, bool)>(), any::<u64>())
        .prop_map(|(batching, batch_dims, m, k, n, (trans_a, trans_b, bias), seed)| Case { batching, batch_dims, m, k, n, opts: MatmulOptions { trans_a, trans_b }, bias, seed })
}

/// The case's random operands, as f64 for the reference and as tensors on `gpu`.
struct Inputs {
    a: Vec<f64>,
    b: Vec<f64>,
    bias: Vec<f64>,
    at: Tensor,
    bt: Tensor,
    biast: Tensor,
}

fn inputs(gpu: &Gpu, c: &Case) -> Inputs {
    let (a, at) = random_tensor(gpu, &c.a_shape(), c.seed, 1.0);
    let (b, bt) = random_tensor(gpu, &c.b_shape(), c.seed ^ 1, 1.0);
    let (bias, biast) = random_tensor(gpu, &[c.n], c.seed ^ 2, 1.0);
    Inputs { a, b, bias, at, bt, biast }
}

fn download(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

const ALL_GRADS: MatmulNeed = MatmulNeed { a: true, b: true, bias: true };

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn forward_matches_reference(c in case(70)) {
        for gpu in gpus() {
            let x = inputs(gpu, &c);
            let bias = c.bias.then_some(&x.biast);
            let want = cpu::matmul_forward(&x.a, &x.b, c.bias.then_some(&x.bias[..]), c.dims());
            for kernel in MatmulKernel::all_on(gpu) {
                let got = matmul_forward_with(kernel, &x.at, &x.bt, bias, c.opts).unwrap();
                prop_assert_eq!(got.shape(), &c.c_shape()[..]);
                assert_close(&format!("matmul_{} {c:?}", kernel.name()), gpu, &download(&got), &want, FWD_TOL);
            }
        }
    }

    #[test]
    fn backward_matches_reference(c in case(70)) {
        for gpu in gpus() {
            let x = inputs(gpu, &c);
            let (dc, dct) = random_tensor(gpu, &c.c_shape(), c.seed ^ 3, 1.0);
            let (da, db, dbias) = cpu::matmul_backward(&x.a, &x.b, &dc, c.dims());
            let g = matmul_backward(&x.at, &x.bt, &dct, c.opts, ALL_GRADS).unwrap();
            let (ga, gb, gbias) = (g.da.unwrap(), g.db.unwrap(), g.dbias.unwrap());
            prop_assert_eq!(ga.shape(), x.at.shape());
            prop_assert_eq!(gb.shape(), x.bt.shape());
            prop_assert_eq!(gbias.shape(), &[c.n][..]);
            assert_close(&format!("matmul da {c:?}"), gpu, &download(&ga), &da, BWD_TOL);
            assert_close(&format!("matmul db {c:?}"), gpu, &download(&gb), &db, BWD_TOL);
            assert_close(&format!("matmul dbias {c:?}"), gpu, &download(&gbias), &dbias, BWD_TOL);
        }
    }
}

proptest! {
    #![proptest_config(cases(16))]

    /// The gradients are those of the forward itself, not just of the reference backward:
    /// ⟨dX, v⟩ against the directional derivative of L = ⟨C, dC⟩ for each of A, B and bias.
    #[test]
    fn backward_matches_finite_differences(c in case(24)) {
        for gpu in gpus() {
            let x = inputs(gpu, &c);
            let d = c.dims();
            let (w, wt) = random_tensor(gpu, &c.c_shape(), c.seed ^ 3, 1.0);
            let g = matmul_backward(&x.at, &x.bt, &wt, c.opts, ALL_GRADS).unwrap();

            let v = random_vec(c.seed ^ 4, x.a.len(), 1.0);
            let fd = directional_fd(|a| cpu::matmul_forward(a, &x.b, Some(&x.bias), d), &x.a, &v, &w);
            assert_grad_matches_fd("matmul da", gpu, &download(g.da.as_ref().unwrap()), fd, &v, GRAD_TOL);

            let v = random_vec(c.seed ^ 5, x.b.len(), 1.0);
            let fd = directional_fd(|b| cpu::matmul_forward(&x.a, b, Some(&x.bias), d), &x.b, &v, &w);
            assert_grad_matches_fd("matmul db", gpu, &download(g.db.as_ref().unwrap()), fd, &v, GRAD_TOL);

            let v = random_vec(c.seed ^ 6, c.n, 1.0);
            let fd = directional_fd(|bias| cpu::matmul_forward(&x.a, &x.b, Some(bias), d), &x.bias, &v, &w);
            assert_grad_matches_fd("matmul dbias", gpu, &download(g.dbias.as_ref().unwrap()), fd, &v, GRAD_TOL);
        }
    }
}

proptest! {
    // Fewer cases than the plain forward: each new layout compiles two more pipelines per kernel,
    // and the GELU epilogue, inlined at all 128 stores of reg16x8, makes them slow to compile.
    #![proptest_config(cases(16))]

    /// The GELU epilogues give what the separate kernels would: pre = op(A)·op(B) + bias and
    /// y = gelu(pre) from `matmul_gelu_forward`; (op(A)·op(B)) ⊙ gelu'(pre) for a given pre from
    /// `matmul_gelu_grad`. Every kernel, every layout.
    #[test]
    fn gelu_epilogues_match_reference(c in case(70)) {
        for gpu in gpus() {
            let x = inputs(gpu, &c);
            let pre_want = cpu::matmul_forward(&x.a, &x.b, c.bias.then_some(&x.bias[..]), c.dims());
            let y_want = gelu_ref::gelu_forward(&pre_want);
            // A pre-activation of typical size (|x| ≤ 3: GELU's curved part) for the grad epilogue.
            let (pre, pre_t) = random_tensor(gpu, &c.c_shape(), c.seed ^ 7, 3.0);
            let dot = cpu::matmul_forward(&x.a, &x.b, None, c.dims());
            let grad_want = gelu_ref::gelu_backward(&pre, &dot);
            for kernel in MatmulKernel::all_on(gpu) {
                let what = format!("matmul_{} {c:?}", kernel.name());
                let out = matmul_gelu_forward_with(kernel, &x.at, &x.bt, c.bias.then_some(&x.biast), c.opts).unwrap();
                prop_assert_eq!(out.pre.shape(), &c.c_shape()[..]);
                prop_assert_eq!(out.y.shape(), &c.c_shape()[..]);
                assert_close(&format!("{what}: gelu epilogue, pre"), gpu, &download(&out.pre), &pre_want, FWD_TOL);
                assert_close(&format!("{what}: gelu epilogue, y"), gpu, &download(&out.y), &y_want, FWD_TOL);
                let grad = matmul_gelu_grad_with(kernel, &x.at, &x.bt, c.opts, &pre_t).unwrap();
                assert_close(&format!("{what}: gelu-grad epilogue"), gpu, &download(&grad), &grad_want, FWD_TOL);
            }
        }
    }
}

/// A ViT-S/16 qkv projection: 197 tokens × 192 features → 576, weight [576, 192] used transposed,
/// with bias. Large enough to span several tiles of every kernel with ragged edges on M and K.
#[test]
fn every_kernel_matches_reference_at_vit_shape() {
    let c = Case { batching: Batching::SharedB, batch_dims: vec![1], m: 197, k: 192, n: 576, opts: MatmulOptions { trans_a: false, trans_b: true }, bias: true, seed: 197 };
    for gpu in gpus() {
        let x = inputs(gpu, &c);
        let want = cpu::matmul_forward(&x.a, &x.b, Some(&x.bias), c.dims());
        for kernel in MatmulKernel::all_on(gpu) {
            let got = matmul_forward_with(kernel, &x.at, &x.bt, Some(&x.biast), c.opts).unwrap();
            assert_eq!(got.shape(), &[1, 197, 576]);
            assert_close(&format!("matmul_{} 197×192·192×576", kernel.name()), gpu, &download(&got), &want, FWD_TOL);
        }
    }
}

/// Past the edges of the largest tile (Reg32x8's 256×64, and every smaller one) in M and N, in
/// every layout: with every stored row a multiple of 4 long (vec4 loads) and with none (scalar
/// loads, a partial K step).
#[test]
fn every_kernel_matches_reference_across_tile_edges() {
    for (m, k, n) in [(260, 68, 68), (257, 67, 65)] {
        for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
            let opts = MatmulOptions { trans_a, trans_b };
            let c = Case { batching: Batching::SharedB, batch_dims: vec![2], m, k, n, opts, bias: true, seed: (m * n) as u64 };
            for gpu in gpus() {
                let x = inputs(gpu, &c);
                let want = cpu::matmul_forward(&x.a, &x.b, Some(&x.bias), c.dims());
                for kernel in MatmulKernel::all_on(gpu) {
                    let got = matmul_forward_with(kernel, &x.at, &x.bt, Some(&x.biast), c.opts).unwrap();
                    assert_close(&format!("matmul_{} {c:?}", kernel.name()), gpu, &download(&got), &want, FWD_TOL);
                }
            }
        }
    }
}

/// `matmul_forward` launches the kernel `MatmulKernel::best_for` names for the shape.
#[test]
fn matmul_forward_uses_the_best_kernel_for_the_shape() {
    for shared in gpus() {
        // A private device, so launches by tests running in parallel don't count.
        let gpu = &Gpu::from_adapter(shared.adapter().clone()).unwrap();
        for (m, n) in [(247, 96), (20, 40)] {
            let (a, b) = (Tensor::zeros(gpu, &[m, 8]).unwrap(), Tensor::zeros(gpu, &[8, n]).unwrap());
            let before = gpu.dispatch_counts();
            matmul_forward(&a, &b, None, MatmulOptions::default()).unwrap();
            let key = format!("matmul::{}", MatmulKernel::best_for(gpu, m, n, 8, MatmulOptions::default()).entry());
            assert_eq!(gpu.dispatch_counts()[&key], before.get(&key).unwrap_or(&0) + 1, "{m}×{n} on {}", gpu.describe());
        }
        if gpu.info().device_type == wgpu::DeviceType::Cpu {
            let (nn, tn, nt) = (MatmulOptions::default(), MatmulOptions { trans_a: false, trans_b: true }, MatmulOptions { trans_a: true, trans_b: false });
            // (`tn` here is A as stored, B transposed: a linear layer's forward.) With subgroups,
            // the shuffling kernel takes that layout at every size (its tile is 16 rows), and the
            // dX layout (`nn`) where A's rows take vec4 loads.
            let subgroups = gpu.has_subgroups();
            let linear = |register_kernel| if subgroups { MatmulKernel::Sg16x8 } else { register_kernel };
            // The ViT's linear layers and their dX: A read with vec4 loads.
            assert_eq!(MatmulKernel::best_for(gpu, 247, 3072, 768, tn), linear(MatmulKernel::Reg32x8));
            assert_eq!(MatmulKernel::best_for(gpu, 247, 768, 3072, nn), linear(MatmulKernel::Reg32x8));
            // A [247, 247] attention probabilities, as stored or transposed: A's loads are scalar.
            assert_eq!(MatmulKernel::best_for(gpu, 247, 64, 247, nn), MatmulKernel::Reg16x8);
            assert_eq!(MatmulKernel::best_for(gpu, 247, 64, 247, nt), MatmulKernel::Reg16x8);
            // Small M: the 256-row tiles would be mostly padding.
            assert_eq!(MatmulKernel::best_for(gpu, 100, 768, 768, tn), linear(MatmulKernel::Reg16x8));
            assert_eq!(MatmulKernel::best_for(gpu, 20, 768, 768, tn), linear(MatmulKernel::Reg4x4Vec4));
        }
    }
}

/// The subgroup kernel on a device without SUBGROUP (GL, or Vulkan opened without it) is an error
/// that names the kernel and the feature, never a launch that fails to compile.
#[test]
fn the_subgroup_kernel_without_subgroups_is_an_error_naming_the_feature() {
    let gpu = &gpus()[0];
    let plain = if gpu.has_subgroups() { gpu.reopen_without(wgpu::Features::SUBGROUP).unwrap() } else { gpu.clone() };
    assert!(!MatmulKernel::Sg16x8.available(&plain) && !MatmulKernel::all_on(&plain).contains(&MatmulKernel::Sg16x8));
    let (a, b) = (Tensor::zeros(&plain, &[4, 8]).unwrap(), Tensor::zeros(&plain, &[8, 4]).unwrap());
    let err = matmul_forward_with(MatmulKernel::Sg16x8, &a, &b, None, MatmulOptions::default()).unwrap_err().to_string();
    assert!(err.contains("sg16x8") && err.contains("SUBGROUP"), "{err}");
    assert_ne!(MatmulKernel::best_for(&plain, 247, 3072, 768, MatmulOptions { trans_a: false, trans_b: true }), MatmulKernel::Sg16x8);
}

/// A frozen weight asks for dA only, and gets exactly one kernel launch: nothing for dB or dbias.
/// A weight shared across the batch, used untransposed by A, gets dB from one launch too: the
/// batches stacked as rows, with no per-batch intermediate to sum.
#[test]
fn backward_dispatches_only_what_is_needed() {
    for shared in gpus() {
        // A private device, so launches by tests running in parallel on the shared one don't count.
        let gpu = &Gpu::from_adapter(shared.adapter().clone()).unwrap();
        for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
            for batching in [Batching::Both, Batching::SharedB] {
                let c = Case { batching, batch_dims: vec![2], m: 5, k: 7, n: 3, opts: MatmulOptions { trans_a, trans_b }, bias: false, seed: 0 };
                let x = inputs(gpu, &c);
                let dc = Tensor::zeros(gpu, &c.c_shape()).unwrap();

                let before = gpu.dispatch_count();
                let g = matmul_backward(&x.at, &x.bt, &dc, c.opts, MatmulNeed { a: true, b: false, bias: false }).unwrap();
                assert_eq!(gpu.dispatch_count() - before, 1, "dA only, {c:?}");
                assert!(g.db.is_none() && g.dbias.is_none(), "{c:?}");
                assert_eq!(g.da.unwrap().shape(), x.at.shape());

                if matches!(batching, Batching::SharedB) && !trans_a {
                    let before = gpu.dispatch_count();
                    let g = matmul_backward(&x.at, &x.bt, &dc, c.opts, MatmulNeed { a: false, b: true, bias: false }).unwrap();
                    assert_eq!(gpu.dispatch_count() - before, 1, "dB of a shared weight, {c:?}");
                    assert!(g.da.is_none() && g.dbias.is_none(), "{c:?}");
                    assert_eq!(g.db.unwrap().shape(), x.bt.shape());
                }
            }
        }
        let (a, dc) = (Tensor::zeros(gpu, &[2, 3]).unwrap(), Tensor::zeros(gpu, &[2, 2]).unwrap());
        let before = gpu.dispatch_count();
        let g = matmul_backward(&a, &a, &dc, MatmulOptions { trans_a: false, trans_b: true }, MatmulNeed { a: false, b: false, bias: false }).unwrap();
        assert!(g.da.is_none() && g.db.is_none() && g.dbias.is_none());
        assert_eq!(gpu.dispatch_count(), before, "nothing needed, nothing launched");
    }
}

/// Expect a shape error whose message names the op and contains every one of `parts`.
fn assert_shape_error<T: std::fmt::Debug>(result: vpt_wgsl::Result<T>, op: &str, parts: &[&str]) {
    let err = result.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, vpt_wgsl::Error::Shape { .. }), "not a shape error: {msg}");
    assert!(msg.starts_with(op), "{msg:?} does not name {op}");
    for part in parts {
        assert!(msg.contains(part), "{msg:?} does not mention {part}");
    }
}

#[test]
fn mismatched_shapes_are_errors_naming_both() {
    let gpu = &gpus()[0];
    let t = |shape: &[usize]| Tensor::zeros(gpu, shape).unwrap();
    let plain = MatmulOptions::default();
    for kernel in MatmulKernel::all_on(gpu) {
        let fwd = |a: &Tensor, b: &Tensor, bias: Option<&Tensor>, opts| matmul_forward_with(kernel, a, b, bias, opts);
        // Inner dimensions: K = 4 against K = 5.
        assert_shape_error(fwd(&t(&[2, 3, 4]), &t(&[5, 6]), None, plain), "matmul_forward", &["[2, 3, 4]", "[5, 6]"]);
        // Transposing B makes [6, 4] fit [2, 3, 4]; transposing A instead breaks it (op(A) is 4×3).
        assert!(fwd(&t(&[2, 3, 4]), &t(&[6, 4]), None, MatmulOptions { trans_a: false, trans_b: true }).is_ok());
        assert_shape_error(fwd(&t(&[2, 3, 4]), &t(&[4, 6]), None, MatmulOptions { trans_a: true, trans_b: false }), "matmul_forward", &["[2, 3, 4]", "[4, 6]"]);
        // Batch dims [2] against [3].
        assert_shape_error(fwd(&t(&[2, 3, 4]), &t(&[3, 4, 5]), None, plain), "matmul_forward", &["[2, 3, 4]", "[3, 4, 5]"]);
        // Same batch count, different dims: [2, 3] is not [6].
        assert_shape_error(fwd(&t(&[2, 3, 1, 4]), &t(&[6, 4, 5]), None, plain), "matmul_forward", &["[2, 3, 1, 4]", "[6, 4, 5]"]);
        // Bias of length 6 for N = 5, and a bias that is not a vector.
        assert_shape_error(fwd(&t(&[3, 4]), &t(&[4, 5]), Some(&t(&[6])), plain), "matmul_forward", &["[6]", "[3, 5]"]);
        assert_shape_error(fwd(&t(&[3, 4]), &t(&[4, 5]), Some(&t(&[1, 5])), plain), "matmul_forward", &["[1, 5]", "[3, 5]"]);
        // A vector is not a matrix.
        assert_shape_error(fwd(&t(&[4]), &t(&[4, 5]), None, plain), "matmul_forward", &["[4]", "[4, 5]"]);
    }
    // The pre-activation of the GELU-grad epilogue must have C's shape [2, 3, 5].
    assert_shape_error(matmul_gelu_grad(&t(&[2, 3, 4]), &t(&[4, 5]), plain, &t(&[3, 5])), "matmul_gelu_grad", &["[3, 5]", "[2, 3, 5]"]);
    assert_shape_error(matmul_gelu_forward(&t(&[2, 3, 4]), &t(&[5, 6]), None, plain).map(|o| o.y), "matmul_gelu_forward", &["[2, 3, 4]", "[5, 6]"]);
    let all = ALL_GRADS;
    assert_shape_error(matmul_backward(&t(&[3, 4]), &t(&[5, 6]), &t(&[3, 6]), plain, all), "matmul_backward", &["[3, 4]", "[5, 6]"]);
    // dC must be C's shape [2, 3, 5].
    assert_shape_error(matmul_backward(&t(&[2, 3, 4]), &t(&[4, 5]), &t(&[3, 5]), plain, all), "matmul_backward", &["[3, 5]", "[2, 3, 5]"]);
}

/// A grid the adapter cannot launch is a clear error, not a GPU validation failure.
#[test]
fn too_many_workgroups_is_an_error() {
    let gpu = &gpus()[0];
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    let plain = MatmulOptions::default();
    // One more matrix in the batch than workgroups along z.
    let a = Tensor::zeros(gpu, &[max + 1, 1, 1]).unwrap();
    let b = Tensor::zeros(gpu, &[1, 1]).unwrap();
    for kernel in MatmulKernel::all_on(gpu) {
        assert_shape_error(matmul_forward_with(kernel, &a, &b, None, plain), "matmul_forward", &[&format!("{}", max + 1), &format!("{max}")]);
    }
    // More columns than the naive kernel's 16-wide workgroups can cover along x.
    let a = Tensor::zeros(gpu, &[1, 1]).unwrap();
    let b = Tensor::zeros(gpu, &[1, 16 * max + 1]).unwrap();
    assert_shape_error(matmul_forward_with(MatmulKernel::Naive, &a, &b, None, plain), "matmul_forward", &[&format!("N = {}", 16 * max + 1)]);
}

/// B stored as f16 (a frozen weight under `--precision f16`), every kernel, B stored [N, K] (a
/// linear layer's forward) and [K, N] (its dX), with vec4 rows (K, N multiples of 4) and without,
/// A batched over a shared B. The reference multiplies the f16-rounded B in f64, so the only
/// error left is the f32 accumulation's: the same tolerance as f32. Where the adapter lacks
/// SHADER_F16 (llvmpipe's GL), storing f16 is an error that says so.
#[test]
fn every_kernel_takes_f16_weights() {
    for gpu in gpus() {
        let has_f16 = gpu.features().contains(wgpu::Features::SHADER_F16);
        for (k, n) in [(32, 48), (29, 45)] {
            for trans_b in [true, false] {
                let (batch, m) = (2, 37);
                let d = MatmulDims { batch, m, k, n, trans_a: false, trans_b, a_batched: true, b_batched: false };
                let b_shape = if trans_b { [n, k] } else { [k, n] };
                let (a, at) = random_tensor(gpu, &[batch, m, k], 71, 1.0);
                let b32 = as_f32(&random_vec(72, n * k, 1.0));
                let stored = Tensor::from_f16_stored(gpu, &b_shape, &b32);
                if !has_f16 {
                    let err = stored.unwrap_err().to_string();
                    assert!(err.contains("SHADER_F16") && err.contains("`precision` f32"), "{err}");
                    continue;
                }
                let bt = stored.unwrap();
                assert_eq!(bt.dtype(), vpt_wgsl::DType::F16);
                let b_rounded: Vec<f64> = b32.iter().map(|&v| half::f16::from_f32(v).to_f64()).collect();
                assert_eq!(download(&bt), as_f32(&b_rounded), "an f16 tensor reads back as its rounded values");
                let want = cpu::matmul_forward(&a, &b_rounded, None, d);
                let opts = MatmulOptions { trans_a: false, trans_b };
                for kernel in MatmulKernel::all_on(gpu) {
                    let got = matmul_forward_with(kernel, &at, &bt, None, opts).unwrap();
                    assert_close(&format!("matmul_{} f16 B {m}×{k}·{k}×{n} trans_b={trans_b}", kernel.name()), gpu, &download(&got), &want, FWD_TOL);
                }
                // An f16 tensor where a kernel reads f32 is an error naming the binding, not garbage.
                let err = matmul_forward_with(MatmulKernel::Tiled, &bt, &bt, None, MatmulOptions { trans_a: false, trans_b: true }).unwrap_err().to_string();
                assert!(err.contains("binding 1 holds f16"), "{err}");
            }
        }
    }
}
