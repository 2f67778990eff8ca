//! LayerNorm: GPU vs f64 reference (offsets, D = 1, variance far below eps), dx/dweight/dbias vs
//! finite differences, frozen parameters skipping their kernel, and shape errors. The same for
//! the fused residual add + LayerNorm (`add_layernorm_*`), which must also be one launch each way.

use proptest::prelude::*;
use vpt_wgsl::kernels::layernorm::*;
use vpt_wgsl::kernels::row_workgroup_threads;
use vpt_wgsl::reference::layernorm as cpu;
use vpt_wgsl::{Gpu, Tensor};

use crate::common::*;

// Tolerances, relative to the output scale (floor 1). Forward: the kernel centres each row on its
// first element before summing, so the mean and x − mean carry rounding of ~(D/32 + 8)·2^-24
// ≈ 2e-6 (≤ 25 quads per thread at D = 800 on a CPU adapter's 8 threads, then the reduction)
// of the row's spread, not of its offset; rstd adds ~2 ulp (inverseSqrt) and y one
// multiply-add: ~3e-6 in all. Backward: x̂ is rebuilt from the saved f32 mean, whose rounding
// (≤ ½ulp(30) ≈ 1e-6, ~2e-6 of these rows' std) shifts every x̂ of a row, and the row sums of g
// and g·x̂ add ~7e-7; dweight/dbias add ≤ 24 rows in order. Measured here (8 threads a row,
// quads where D allows): ≤ 4e-7 forward, ≤ 2e-6 backward. 1e-5 leaves room for other drivers'
// rounding and still fails any wrong term by orders of magnitude.
const FWD_TOL: f64 = 1e-5;
const BWD_TOL: f64 = 1e-5;

/// The eps timm's ViT uses.
const EPS: f32 = 1e-6;

/// Runs forward and backward on the GPU and checks every output against the f64 reference.
fn check_against_reference(gpu: &Gpu, x: &[f64], shape: &[usize], seed: u64, eps: f32) {
    let d = *shape.last().unwrap();
    let rows = x.len() / d;
    let xt = Tensor::from_slice(gpu, shape, &as_f32(x)).unwrap();
    let (w, wt) = random_tensor(gpu, &[d], seed ^ 1, 1.0);
    let (b, bt) = random_tensor(gpu, &[d], seed ^ 2, 1.0);
    let (dy, dyt) = random_tensor(gpu, shape, seed ^ 3, 1.0);

    let out = layernorm_forward(&xt, &wt, &bt, eps).unwrap();
    assert_eq!((out.y.shape(), out.mean.shape(), out.rstd.shape()), (shape, &[rows][..], &[rows][..]));
    let want = cpu::layernorm_forward(x, &w, &b, eps as f64);
    assert_close("layernorm_forward y", gpu, &out.y.to_vec().unwrap(), &want.y, FWD_TOL);
    assert_close("layernorm_forward mean", gpu, &out.mean.to_vec().unwrap(), &want.mean, FWD_TOL);
    assert_close("layernorm_forward rstd", gpu, &out.rstd.to_vec().unwrap(), &want.rstd, FWD_TOL);

    let grads = layernorm_backward(&xt, &wt, &out.mean, &out.rstd, &dyt, true).unwrap();
    let want = cpu::layernorm_backward(x, &w, &dy, eps as f64);
    assert_close("layernorm_backward dx", gpu, &grads.dx.to_vec().unwrap(), &want.dx, BWD_TOL);
    assert_close("layernorm_backward dweight", gpu, &grads.dweight.unwrap().to_vec().unwrap(), &want.dweight, BWD_TOL);
    assert_close("layernorm_backward dbias", gpu, &grads.dbias.unwrap().to_vec().unwrap(), &want.dbias, BWD_TOL);
}

/// The fused add + LayerNorm on the GPU against the f64 reference, forward and backward. x is
/// `spread_rows`-like; r adds a smaller residual, so every row of s keeps a spread of at least 1.5.
///
/// The GPU's s is x + r rounded to f32 (WGSL's add is correctly rounded), so it must equal that
/// exactly, and the LayerNorm reference runs on that rounded s: the f64 sum differs from it by up
/// to ½ulp(32) ≈ 2e-6 at offset 30, which would take a third of the tolerance away from what the
/// test is about, the kernel's LayerNorm.
/// `threads`: per row, as the launcher takes them (`row_workgroup_threads`) or another adapter's choice.
fn check_fused_against_reference(gpu: &Gpu, threads: u32, x: &[f64], shape: &[usize], seed: u64, eps: f32) {
    let d = *shape.last().unwrap();
    let rows = x.len() / d;
    let xt = Tensor::from_slice(gpu, shape, &as_f32(x)).unwrap();
    let (r, rt) = random_tensor(gpu, shape, seed ^ 5, 0.25);
    let (w, wt) = random_tensor(gpu, &[d], seed ^ 1, 1.0);
    let (b, bt) = random_tensor(gpu, &[d], seed ^ 2, 1.0);
    let (dy, dyt) = random_tensor(gpu, shape, seed ^ 3, 1.0);
    let (dsum, dsumt) = random_tensor(gpu, shape, seed ^ 6, 1.0);

    let out = add_layernorm_forward_with_threads(threads, &xt, &rt, &wt, &bt, eps).unwrap();
    let shapes = (out.sum.shape(), out.y.shape(), out.mean.shape(), out.rstd.shape());
    assert_eq!(shapes, (shape, shape, &[rows][..], &[rows][..]));
    let sum = as_f64(&x.iter().zip(&r).map(|(a, b)| *a as f32 + *b as f32).collect::<Vec<_>>());
    assert_eq!(as_f64(&out.sum.to_vec().unwrap()), sum, "add_layernorm_forward sum on {}", gpu.describe());
    let want = cpu::layernorm_forward(&sum, &w, &b, eps as f64);
    assert_close("add_layernorm_forward y", gpu, &out.y.to_vec().unwrap(), &want.y, FWD_TOL);
    assert_close("add_layernorm_forward mean", gpu, &out.mean.to_vec().unwrap(), &want.mean, FWD_TOL);
    assert_close("add_layernorm_forward rstd", gpu, &out.rstd.to_vec().unwrap(), &want.rstd, FWD_TOL);

    let grads = add_layernorm_backward_with_threads(threads, &out.sum, &wt, &out.mean, &out.rstd, &dyt, &dsumt, true).unwrap();
    let want = cpu::add_layernorm_backward(&sum, &w, &dy, &dsum, eps as f64);
    assert_close("add_layernorm_backward dx", gpu, &grads.dx.to_vec().unwrap(), &want.dx, BWD_TOL);
    assert_close("add_layernorm_backward dweight", gpu, &grads.dweight.unwrap().to_vec().unwrap(), &want.dweight, BWD_TOL);
    assert_close("add_layernorm_backward dbias", gpu, &grads.dbias.unwrap().to_vec().unwrap(), &want.dbias, BWD_TOL);
}

/// x: [rows, D] = offset + values in [−1, 1], every row (D ≥ 2) holding both −1 and +1.
///
/// The fixed spread matters for the backward, which rebuilds x̂ = (x − mean)·rstd from the saved
/// f32 mean: that mean is off by up to ½ulp(mean), an error rstd carries into every x̂ of the row,
/// so for a row whose spread is tiny next to its mean (say [30.001, 30.002]) no f32 backward that
/// works from the saved mean (PyTorch's included) reaches 1e-5. Random rows of 2 or 3 values
/// would produce such rows now and then.
fn spread_rows(seed: u64, rows: usize, d: usize, offset: f64) -> Vec<f64> {
    let mut x = random_vec(seed, rows * d, 1.0);
    if d >= 2 {
        for row in x.chunks_mut(d) {
            row[0] = -1.0;
            row[d - 1] = 1.0;
        }
    }
    as_f64(&as_f32(&x.iter().map(|v| v + offset).collect::<Vec<_>>()))
}

proptest! {
    #![proptest_config(cases(12))]

    /// x: [rows, D] with D from 1 (variance exactly 0, so y = bias) past the workgroup size.
    /// At offset 30, E[x²] − E[x]² would keep only ~3 of f32's 7 digits of the variance.
    #[test]
    fn layernorm_matches_reference(rows in dim(24), d in dim(800), seed in any::<u64>(),
                                   offset in prop_oneof![Just(0.0), Just(30.0)],
                                   eps in prop_oneof![Just(EPS), Just(1e-5f32)]) {
        for gpu in row_gpus() {
            check_against_reference(gpu, &spread_rows(seed, rows, d, offset), &[rows, d], seed, eps);
        }
    }

    /// dx, dweight and dbias each against the directional derivative of ⟨y, dy⟩. D = 2 is left
    /// out: x̂ is then ±1 whatever x is, so the true dx is O(eps/var), the cancellation of terms of
    /// size rstd·|g|, and ⟨dx, v⟩ is pure f32 noise. (D = 1 is exact: dx = 0.)
    #[test]
    fn layernorm_backward_matches_finite_differences(rows in dim(6), d in dim(64).prop_filter("D = 2", |&d| d != 2),
                                                     seed in any::<u64>()) {
        for gpu in row_gpus() {
            let (x, xt) = random_tensor(gpu, &[rows, d], seed, 2.0);
            let (w, wt) = random_tensor(gpu, &[d], seed ^ 1, 1.0);
            let (b, bt) = random_tensor(gpu, &[d], seed ^ 2, 1.0);
            let (dy, dyt) = random_tensor(gpu, &[rows, d], seed ^ 3, 1.0);
            let eps = EPS as f64;
            let out = layernorm_forward(&xt, &wt, &bt, EPS).unwrap();
            let grads = layernorm_backward(&xt, &wt, &out.mean, &out.rstd, &dyt, true).unwrap();

            let v = random_vec(seed ^ 4, rows * d, 1.0);
            let fd = directional_fd(|x| cpu::layernorm_forward(x, &w, &b, eps).y, &x, &v, &dy);
            assert_grad_matches_fd("layernorm_backward dx", gpu, &grads.dx.to_vec().unwrap(), fd, &v, GRAD_TOL);
            let v = random_vec(seed ^ 5, d, 1.0);
            let fd = directional_fd(|w| cpu::layernorm_forward(&x, w, &b, eps).y, &w, &v, &dy);
            assert_grad_matches_fd("layernorm_backward dweight", gpu, &grads.dweight.unwrap().to_vec().unwrap(), fd, &v, GRAD_TOL);
            let fd = directional_fd(|b| cpu::layernorm_forward(&x, &w, b, eps).y, &b, &v, &dy);
            assert_grad_matches_fd("layernorm_backward dbias", gpu, &grads.dbias.unwrap().to_vec().unwrap(), fd, &v, GRAD_TOL);
        }
    }

    /// The fused op on random shapes, D from 1 past the workgroup size (primes included).
    #[test]
    fn add_layernorm_matches_reference(rows in dim(24), d in dim(800), seed in any::<u64>(),
                                       offset in prop_oneof![Just(0.0), Just(30.0)],
                                       eps in prop_oneof![Just(EPS), Just(1e-5f32)]) {
        for gpu in row_gpus() {
            check_fused_against_reference(gpu, row_workgroup_threads(gpu), &spread_rows(seed, rows, d, offset), &[rows, d], seed, eps);
        }
    }

    /// The fused backward against the directional derivative of L = ⟨s, dsum⟩ + ⟨y, dy⟩, the loss
    /// whose gradient reaches s both directly (dsum) and through the norm (dy): dx along x and,
    /// the same tensor, along r; dweight and dbias. D = 2 is left out as above.
    #[test]
    fn add_layernorm_backward_matches_finite_differences(rows in dim(6), d in dim(64).prop_filter("D = 2", |&d| d != 2),
                                                         seed in any::<u64>()) {
        for gpu in row_gpus() {
            let (x, xt) = random_tensor(gpu, &[rows, d], seed, 2.0);
            let (r, rt) = random_tensor(gpu, &[rows, d], seed ^ 6, 1.0);
            let (w, wt) = random_tensor(gpu, &[d], seed ^ 1, 1.0);
            let (b, bt) = random_tensor(gpu, &[d], seed ^ 2, 1.0);
            let (dy, dyt) = random_tensor(gpu, &[rows, d], seed ^ 3, 1.0);
            let (dsum, dsumt) = random_tensor(gpu, &[rows, d], seed ^ 7, 1.0);
            let eps = EPS as f64;
            let out = add_layernorm_forward(&xt, &rt, &wt, &bt, EPS).unwrap();
            let grads = add_layernorm_backward(&out.sum, &wt, &out.mean, &out.rstd, &dyt, &dsumt, true).unwrap();

            // [s, y] against [dsum, dy]: one weighted sum covers both outputs.
            let weights: Vec<f64> = dsum.iter().chain(&dy).copied().collect();
            let both = |x: &[f64], r: &[f64], w: &[f64], b: &[f64]| {
                let (s, ln) = cpu::add_layernorm_forward(x, r, w, b, eps);
                s.into_iter().chain(ln.y).collect::<Vec<f64>>()
            };
            let dx = grads.dx.to_vec().unwrap();
            let v = random_vec(seed ^ 4, rows * d, 1.0);
            let fd = directional_fd(|x| both(x, &r, &w, &b), &x, &v, &weights);
            assert_grad_matches_fd("add_layernorm_backward dx (along x)", gpu, &dx, fd, &v, GRAD_TOL);
            let v = random_vec(seed ^ 8, rows * d, 1.0);
            let fd = directional_fd(|r| both(&x, r, &w, &b), &r, &v, &weights);
            assert_grad_matches_fd("add_layernorm_backward dx (along r)", gpu, &dx, fd, &v, GRAD_TOL);
            let v = random_vec(seed ^ 5, d, 1.0);
            let fd = directional_fd(|w| both(&x, &r, w, &b), &w, &v, &weights);
            assert_grad_matches_fd("add_layernorm_backward dweight", gpu, &grads.dweight.unwrap().to_vec().unwrap(), fd, &v, GRAD_TOL);
            let fd = directional_fd(|b| both(&x, &r, &w, b), &b, &v, &weights);
            assert_grad_matches_fd("add_layernorm_backward dbias", gpu, &grads.dbias.unwrap().to_vec().unwrap(), fd, &v, GRAD_TOL);
        }
    }
}

/// The fused op at the widths the proptest reaches only by chance: D = 1 (ŝ = 0, y = bias, LN's
/// dx = 0, so dx = dsum), primes below and above a GPU's 64 threads of a row, quads fewer (28)
/// and more (36) than a CPU adapter's 8 threads, and ViT-B's 768.
#[test]
fn add_layernorm_handles_rows_of_one_and_odd_widths() {
    for gpu in row_gpus() {
        for (rows, d) in [(5, 1), (3, 61), (2, 67), (2, 769), (3, 768), (4, 28), (2, 36)] {
            check_fused_against_reference(gpu, row_workgroup_threads(gpu), &spread_rows(d as u64, rows, d, 30.0), &[rows, d], 9 + d as u64, EPS);
        }
    }
}

/// A GPU's 64 threads per row (`row_workgroup_threads` gives a CPU adapter 8, so the other tests here run
/// those), on both reductions and both builds (quads at 768 and 28, f32s at 67 and 1).
#[test]
fn add_layernorm_runs_with_a_gpus_threads_per_row() {
    for gpu in row_gpus() {
        for (rows, d) in [(5, 1), (2, 67), (3, 768), (4, 28)] {
            check_fused_against_reference(gpu, 64, &spread_rows(d as u64, rows, d, 30.0), &[rows, d], 19 + d as u64, EPS);
        }
    }
}

/// Threads per row that the reductions cannot take are an error naming the op, not a hang.
#[test]
fn layernorm_rejects_threads_per_row_that_are_not_a_power_of_two() {
    let gpu = &gpus()[0];
    let (_, xt) = random_tensor(gpu, &[2, 8], 1, 1.0);
    let (_, wt) = random_tensor(gpu, &[8], 2, 1.0);
    for threads in [0, 12, 512] {
        let err = add_layernorm_forward_with_threads(threads, &xt, &xt, &wt, &wt, EPS).err().expect("rejected").to_string();
        assert!(err.contains("add_layernorm_forward") && err.contains("power of 2"), "{err}");
    }
}

/// The point of the fusion: one launch forward (not an add and a LayerNorm) and one backward with
/// frozen parameters (not a LayerNorm dx and an add of the two gradients of s), whose dx is the
/// plain backward's dx + dsum.
#[test]
fn add_layernorm_is_one_launch_each_way() {
    for shared in row_gpus() {
        let gpu = &Gpu::from_adapter(shared.adapter().clone()).unwrap();
        let (_, xt) = random_tensor(gpu, &[4, 16], 1, 1.0);
        let (_, rt) = random_tensor(gpu, &[4, 16], 5, 1.0);
        let (_, wt) = random_tensor(gpu, &[16], 2, 1.0);
        let (_, bt) = random_tensor(gpu, &[16], 3, 1.0);
        let (_, dyt) = random_tensor(gpu, &[4, 16], 4, 1.0);
        let (dsum, dsumt) = random_tensor(gpu, &[4, 16], 6, 1.0);

        let before = gpu.dispatch_count();
        let out = add_layernorm_forward(&xt, &rt, &wt, &bt, EPS).unwrap();
        assert_eq!(gpu.dispatch_count() - before, 1, "{}", gpu.describe());

        let before = gpu.dispatch_count();
        let fused = add_layernorm_backward(&out.sum, &wt, &out.mean, &out.rstd, &dyt, &dsumt, false).unwrap();
        assert_eq!(gpu.dispatch_count() - before, 1, "{}", gpu.describe());
        assert!(fused.dweight.is_none() && fused.dbias.is_none());

        let plain = layernorm_backward(&out.sum, &wt, &out.mean, &out.rstd, &dyt, false).unwrap().dx.to_vec().unwrap();
        let want: Vec<f64> = plain.iter().zip(&dsum).map(|(&p, &s)| p as f64 + s).collect();
        assert_close("add_layernorm_backward dx vs layernorm_backward dx + dsum", gpu, &fused.dx.to_vec().unwrap(), &want, 1e-6);
    }
}

/// Rows whose variance (~3e-9) is far below eps (1e-6): rstd ≈ 1/sqrt(eps) rather than 1/std, so
/// y is small instead of unit-scale. A kernel that drops eps or adds it outside the square root
/// fails here by orders of magnitude. One row is constant (variance exactly 0). Rank 3, so the
/// leading axes flatten into rows.
///
/// The rows are centred near 0 on purpose: with mean m ≠ 0, the saved f32 mean is off by up to
/// ½ulp(m), which rstd ≈ 1000 turns into an error in x̂ that no f32 kernel (PyTorch's included)
/// avoids in the backward.
#[test]
fn layernorm_handles_variance_far_below_eps() {
    let (shape, d) = ([2, 3, 40], 40);
    let mut x = random_vec(7, 6 * d, 1e-4);
    x[5 * d..].fill(0.25);
    let x = as_f64(&as_f32(&x));
    for gpu in row_gpus() {
        check_against_reference(gpu, &x, &shape, 11, EPS);
        let xt = Tensor::from_slice(gpu, &shape, &as_f32(&x)).unwrap();
        let ones = Tensor::full(gpu, &[d], 1.0).unwrap();
        let zeros = Tensor::zeros(gpu, &[d]).unwrap();
        let rstd = layernorm_forward(&xt, &ones, &zeros, EPS).unwrap().rstd.to_vec().unwrap();
        // 1/sqrt(var + eps) is within 0.5% of 1/sqrt(eps) = 1000 here; 1/std would be ~17000.
        assert!(rstd.iter().all(|&r| (r - 1000.0).abs() < 5.0), "{}: rstd {rstd:?}, want ≈ 1/sqrt(eps) = 1000", gpu.describe());
    }
}

/// D = 1: each value is its row's mean, so x̂ = 0, y = bias, dx = 0, dweight = 0, dbias = Σ_rows dy.
#[test]
fn layernorm_handles_rows_of_one() {
    let x = as_f64(&as_f32(&random_vec(3, 5, 10.0)));
    for gpu in row_gpus() {
        check_against_reference(gpu, &x, &[5, 1], 4, EPS);
    }
}

/// Rows at 1000 ± 1: the mean's f32 rounding (ulp(1000) ≈ 6e-5) is far above the 1e-5 target, so
/// only a forward that centres the row before summing (here, on its first element) gets y right;
/// the one-pass E[x²] − E[x]² would leave nothing of the variance (ulp(1e6) = 0.0625 ≫ 0.33).
/// Forward only: the backward rebuilds x̂ from the saved f32 mean (see `spread_rows`).
#[test]
fn layernorm_forward_is_accurate_far_from_zero() {
    let (rows, d) = (4, 300);
    let x = spread_rows(5, rows, d, 1000.0);
    let for_gpu = |v: Vec<f64>| as_f64(&as_f32(&v));
    let (w, b) = (for_gpu(random_vec(6, d, 1.0)), for_gpu(random_vec(7, d, 1.0)));
    let want = cpu::layernorm_forward(&x, &w, &b, EPS as f64);
    for gpu in row_gpus() {
        let upload = |v: &[f64], shape: &[usize]| Tensor::from_slice(gpu, shape, &as_f32(v)).unwrap();
        let out = layernorm_forward(&upload(&x, &[rows, d]), &upload(&w, &[d]), &upload(&b, &[d]), EPS).unwrap();
        assert_close("layernorm_forward y at 1000", gpu, &out.y.to_vec().unwrap(), &want.y, FWD_TOL);
        assert_close("layernorm_forward rstd at 1000", gpu, &out.rstd.to_vec().unwrap(), &want.rstd, FWD_TOL);
    }
}

/// need_params = false launches only the dx kernel and returns no parameter gradients.
#[test]
fn layernorm_frozen_params_skip_their_kernel() {
    for shared in row_gpus() {
        // A device of our own: tests run in parallel, and the shared one counts their dispatches too.
        let gpu = &Gpu::from_adapter(shared.adapter().clone()).unwrap();
        let (_, xt) = random_tensor(gpu, &[4, 16], 1, 1.0);
        let (_, wt) = random_tensor(gpu, &[16], 2, 1.0);
        let (_, bt) = random_tensor(gpu, &[16], 3, 1.0);
        let (_, dyt) = random_tensor(gpu, &[4, 16], 4, 1.0);
        let out = layernorm_forward(&xt, &wt, &bt, EPS).unwrap();

        let before = gpu.dispatch_count();
        let frozen = layernorm_backward(&xt, &wt, &out.mean, &out.rstd, &dyt, false).unwrap();
        assert_eq!(gpu.dispatch_count() - before, 1, "{}", gpu.describe());
        assert!(frozen.dweight.is_none() && frozen.dbias.is_none());

        let before = gpu.dispatch_count();
        let trained = layernorm_backward(&xt, &wt, &out.mean, &out.rstd, &dyt, true).unwrap();
        assert_eq!(gpu.dispatch_count() - before, 2, "{}", gpu.describe());
        assert_eq!(frozen.dx.to_vec().unwrap(), trained.dx.to_vec().unwrap(), "{}", gpu.describe());
    }
}

/// Every mismatch is an error that names the op and both shapes.
#[test]
fn layernorm_rejects_mismatched_shapes() {
    let gpu = &row_gpus()[0];
    let x = Tensor::zeros(gpu, &[2, 3, 8]).unwrap();
    let w = Tensor::zeros(gpu, &[8]).unwrap();
    let bad_w = Tensor::zeros(gpu, &[7]).unwrap();
    let stats = Tensor::zeros(gpu, &[6]).unwrap();
    let bad_stats = Tensor::zeros(gpu, &[2, 3]).unwrap();
    let bad_dy = Tensor::zeros(gpu, &[3, 2, 8]).unwrap();

    let expect = |r: vpt_wgsl::Result<()>, op: &str, a: &str, b: &str| {
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains(op) && msg.contains(a) && msg.contains(b), "{msg}");
    };
    expect(layernorm_forward(&x, &bad_w, &w, EPS).map(drop), "layernorm_forward", "[7]", "[2, 3, 8]");
    expect(layernorm_forward(&x, &w, &bad_w, EPS).map(drop), "layernorm_forward", "[7]", "[2, 3, 8]");
    expect(layernorm_backward(&x, &bad_w, &stats, &stats, &x, true).map(drop), "layernorm_backward", "[7]", "[2, 3, 8]");
    expect(layernorm_backward(&x, &w, &bad_stats, &stats, &x, true).map(drop), "layernorm_backward", "[2, 3]", "[2, 3, 8]");
    expect(layernorm_backward(&x, &w, &stats, &bad_stats, &x, true).map(drop), "layernorm_backward", "[2, 3]", "[2, 3, 8]");
    expect(layernorm_backward(&x, &w, &stats, &stats, &bad_dy, true).map(drop), "layernorm_backward", "[3, 2, 8]", "[2, 3, 8]");
    let msg = layernorm_forward(&x, &w, &w, -1.0).map(drop).unwrap_err().to_string();
    assert!(msg.contains("layernorm_forward") && msg.contains("eps"), "{msg}");

    // The fused op: r, dsum and dy must have x's shape; weight, bias and the statistics as above.
    let (op, bwd) = ("add_layernorm_forward", "add_layernorm_backward");
    expect(add_layernorm_forward(&x, &bad_dy, &w, &w, EPS).map(drop), op, "[3, 2, 8]", "[2, 3, 8]");
    expect(add_layernorm_forward(&x, &x, &bad_w, &w, EPS).map(drop), op, "[7]", "[2, 3, 8]");
    expect(add_layernorm_forward(&x, &x, &w, &bad_w, EPS).map(drop), op, "[7]", "[2, 3, 8]");
    let msg = add_layernorm_forward(&x, &x, &w, &w, f32::NAN).map(drop).unwrap_err().to_string();
    assert!(msg.contains(op) && msg.contains("eps"), "{msg}");
    expect(add_layernorm_backward(&x, &w, &stats, &stats, &x, &bad_dy, true).map(drop), bwd, "[3, 2, 8]", "[2, 3, 8]");
    expect(add_layernorm_backward(&x, &w, &stats, &stats, &bad_dy, &x, true).map(drop), bwd, "[3, 2, 8]", "[2, 3, 8]");
    expect(add_layernorm_backward(&x, &bad_w, &stats, &stats, &x, &x, true).map(drop), bwd, "[7]", "[2, 3, 8]");
    expect(add_layernorm_backward(&x, &w, &bad_stats, &stats, &x, &x, true).map(drop), bwd, "[2, 3]", "[2, 3, 8]");
}
