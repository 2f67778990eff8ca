//! Kernels against their f64 references ([`crate::reference`]) on random inputs at awkward shapes:
//! sizes that are not multiples of any tile or workgroup, so every kernel's edge handling runs.
//! Errors are [`Metric::Scaled`] (relative to the output's scale, floor 1), with the tolerances
//! of the property tests in `tests/kernels/` and their reasons there: 1e-5 for products and row
//! reductions of f32 values, 2e-5 for attention (two chained products and a softmax).

use super::{Checker, Metric};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::matmul::{self, MatmulKernel, MatmulOptions};
use crate::kernels::{attention, cross_entropy, halves, layernorm, softmax};
use crate::reference;
use crate::reference::matmul::MatmulDims;
use crate::tensor::{DType, Labels, Tensor};

const PRODUCT: f64 = 1e-5;
const ROWWISE: f64 = 1e-5;
const ATTENTION: f64 = 2e-5;
/// What the f16 weights' products' cases say, and their skip row's case.
const F16_CASES: &str = "f16 B";
/// What the products reading B from a weight's texels say in their case.
const TEXEL_CASES: &str = "B texels";
/// The same, for texels of a weight stored as f16.
const TEXEL_F16_CASES: &str = "B f16 texels";
/// One f16 step relative to the value (2⁻¹⁰): WGSL may round to either neighbour.
const F16_STEP: f64 = 1.0 / 1024.0;

/// A group of comparisons run together (one kernel family).
pub type Group = fn(&mut Checker) -> Result<()>;

/// Every f64 check's group, by name; `subgroup_builds_only`: just the families with a build
/// that uses subgroups (the row kernels and the fused attention), for a device opened without
/// them. The f16 weights' products are a skip row on a device without SHADER_F16.
pub fn groups(c: &mut Checker, subgroup_builds_only: bool) -> Vec<(&'static str, Group)> {
    let mut groups: Vec<(&str, Group)> = vec![("softmax", softmax_rows), ("layernorm", layernorm_rows), ("cross_entropy", cross_entropy_rows)];
    if subgroup_builds_only {
        groups.push(("attention", fused_attention));
    } else {
        groups.insert(0, ("matmul", matmul_layouts));
        if c.gpu.features().contains(wgpu::Features::SHADER_F16) {
            groups.insert(1, ("matmul f16", matmul_f16_weights));
        } else {
            c.skipped("matmul (every kernel)", "f64", F16_CASES, format!("{} has no SHADER_F16 feature, which the f16 weights' products need (`precision` f16)", c.gpu.describe()));
        }
        groups.push(("matmul texels", matmul_weight_texels));
        groups.push(("attention", fused_attention));
        groups.push(("halves", halves_round_trip));
    }
    groups
}

/// Every f64 check (see [`groups`]). A group whose kernels fail to run is one failed row; the
/// others still run.
pub fn check_all(c: &mut Checker, subgroup_builds_only: bool) {
    for (name, group) in groups(c, subgroup_builds_only) {
        run_group(c, name, group);
    }
}

/// One group's checks; a failure to run is one failed row.
pub fn run_group(c: &mut Checker, name: &str, group: Group) {
    if let Err(e) = group(c) {
        c.failed(name, "f64", &e);
    }
}

/// Values in [-scale, scale) as the GPU will see them (rounded to f32), and the tensor.
fn random(gpu: &Gpu, shape: &[usize], seed: u64, scale: f64) -> Result<(Vec<f64>, Tensor)> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_add(crate::rng::GOLDEN);
    let host: Vec<f32> = (0..n).map(|_| ((crate::rng::next_unit(&mut state) * 2.0 - 1.0) * scale) as f32).collect();
    Ok((host.iter().map(|&v| v as f64).collect(), Tensor::from_slice(gpu, shape, &host)?))
}

/// [`random`]'s values in [-1, 1) stored as `dtype` (a weight under `--precision`), and on the host
/// the values as stored (rounded to f16 where it is f16), which the reference then multiplies.
fn random_stored_as(gpu: &Gpu, shape: &[usize], seed: u64, dtype: DType) -> Result<(Vec<f64>, Tensor)> {
    let (values, _) = random(gpu, shape, seed, 1.0)?;
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let stored = match dtype {
        DType::F32 => values.iter().map(|&v| v as f64).collect(),
        DType::F16 => values.iter().map(|&v| half::f16::from_f32(v).to_f64()).collect(),
    };
    Ok((stored, Tensor::from_slice_as(gpu, shape, &values, dtype)?))
}

/// Every matmul kernel in all four transpose layouts, batched, with a bias: 2 × [67, 37] · [37, 45]
/// crosses every kernel's tile edge in M, N and K (37 is not a multiple of 4, 8 or 16).
fn matmul_layouts(c: &mut Checker) -> Result<()> {
    let (batch, m, k, n) = (2, 67, 37, 45);
    for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
        let d = MatmulDims { batch, m, k, n, trans_a, trans_b, a_batched: true, b_batched: true };
        let a_shape = if trans_a { [batch, k, m] } else { [batch, m, k] };
        let b_shape = if trans_b { [batch, n, k] } else { [batch, k, n] };
        let (a, at) = random(c.gpu, &a_shape, 11, 1.0)?;
        let (b, bt) = random(c.gpu, &b_shape, 12, 1.0)?;
        let (bias, biast) = random(c.gpu, &[n], 13, 1.0)?;
        let want = reference::matmul::matmul_forward(&a, &b, Some(&bias), d);
        let layout = format!("{}{} {batch}×[{m},{k}]·[{k},{n}]", if trans_a { "T" } else { "N" }, if trans_b { "T" } else { "N" });
        for kernel in MatmulKernel::all_on(c.gpu) {
            let got = matmul::matmul_forward_with(kernel, &at, &bt, Some(&biast), MatmulOptions { trans_a, trans_b })?;
            c.compare(&format!("matmul ({})", kernel.name()), &layout, "f64", &got, &want, Metric::Scaled, PRODUCT)?;
        }
    }
    Ok(())
}

/// Every matmul kernel with B a frozen weight read from its texels (`WeightSource::Texels`,
/// `wgsl/lib/matmul_b_texels.wgsl`), which `vpt tune` may choose over its buffer on this adapter:
/// B stored [N, K] and [K, N] at K = 37, so quads straddle rows, with a bias; f32 texels and,
/// where the adapter stores weights as f16, f16 ones (a build of their own; the reference
/// multiplies the f16-rounded B, so only the f32 accumulation's error is left).
fn matmul_weight_texels(c: &mut Checker) -> Result<()> {
    let (batch, m, k, n) = (2, 67, 37, 45);
    let mut dtypes = vec![(DType::F32, TEXEL_CASES)];
    if c.gpu.features().contains(wgpu::Features::SHADER_F16) {
        dtypes.push((DType::F16, TEXEL_F16_CASES));
    } else {
        c.skipped("matmul (every kernel)", "f64", TEXEL_F16_CASES, format!("{} has no SHADER_F16 feature, so no weight is stored as f16 (`precision` f16)", c.gpu.describe()));
    }
    for (dtype, cases) in dtypes {
        for trans_b in [true, false] {
            let d = MatmulDims { batch, m, k, n, trans_a: false, trans_b, a_batched: true, b_batched: false };
            let (a, at) = random(c.gpu, &[batch, m, k], 71, 1.0)?;
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            let (b, bt) = random_stored_as(c.gpu, &b_shape, 72, dtype)?;
            let bt = bt.with_texels()?;
            let (bias, biast) = random(c.gpu, &[n], 73, 1.0)?;
            let want = reference::matmul::matmul_forward(&a, &b, Some(&bias), d);
            let layout = format!("N{} {batch}×[{m},{k}]·[{k},{n}] {cases}", if trans_b { "T" } else { "N" });
            for kernel in MatmulKernel::all_on(c.gpu) {
                let got = matmul::matmul_forward_with(kernel, &at, &bt, Some(&biast), MatmulOptions { trans_a: false, trans_b })?;
                c.compare(&format!("matmul ({})", kernel.name()), &layout, "f64", &got, &want, Metric::Scaled, PRODUCT)?;
            }
        }
    }
    Ok(())
}

/// Every matmul kernel with B stored as f16 (a frozen weight under `--precision f16`), stored
/// [N, K] and [K, N], with vec4 rows and without. The reference multiplies the f16-rounded B, so
/// only the f32 accumulation's error is left: the f32 tolerance.
fn matmul_f16_weights(c: &mut Checker) -> Result<()> {
    let (batch, m) = (2, 37);
    for (k, n) in [(32, 48), (29, 45)] {
        for trans_b in [true, false] {
            let d = MatmulDims { batch, m, k, n, trans_a: false, trans_b, a_batched: true, b_batched: false };
            let (a, at) = random(c.gpu, &[batch, m, k], 61, 1.0)?;
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            let (b, bt) = random_stored_as(c.gpu, &b_shape, 62, DType::F16)?;
            let want = reference::matmul::matmul_forward(&a, &b, None, d);
            let layout = format!("N{} {batch}×[{m},{k}]·[{k},{n}] {F16_CASES}", if trans_b { "T" } else { "N" });
            for kernel in MatmulKernel::all_on(c.gpu) {
                let got = matmul::matmul_forward_with(kernel, &at, &bt, None, MatmulOptions { trans_a: false, trans_b })?;
                c.compare(&format!("matmul ({})", kernel.name()), &layout, "f64", &got, &want, Metric::Scaled, PRODUCT)?;
            }
        }
    }
    Ok(())
}

/// Softmax over rows of 1, 63 and 247 values (below, at and past one 64-thread workgroup).
fn softmax_rows(c: &mut Checker) -> Result<()> {
    for n in [1, 63, 247] {
        let rows = 37;
        let (x, xt) = random(c.gpu, &[rows, n], 21, 8.0)?;
        let (dy, dyt) = random(c.gpu, &[rows, n], 22, 1.0)?;
        let y = softmax::softmax_forward(&xt)?;
        let want_y = reference::softmax::softmax_forward(&x, n);
        c.compare("softmax", &format!("[{rows},{n}] y"), "f64", &y, &want_y, Metric::Scaled, ROWWISE)?;
        // The yardstick's backward takes the exact y: the kernel's y differs by its rounding
        // (≤ 1e-7 here), far below the tolerance, and nothing has to be read back first.
        let dx = softmax::softmax_backward(&y, &dyt)?;
        c.compare("softmax", &format!("[{rows},{n}] dx"), "f64", &dx, &reference::softmax::softmax_backward(&want_y, &dy, n), Metric::Scaled, ROWWISE)?;
    }
    Ok(())
}

/// LayerNorm forward and backward at D = 1, 45 and 768 (ViT-B's width).
fn layernorm_rows(c: &mut Checker) -> Result<()> {
    for d in [1, 45, 768] {
        let rows = 23;
        let (x, xt) = random(c.gpu, &[rows, d], 31, 2.0)?;
        let (w, wt) = random(c.gpu, &[d], 32, 1.0)?;
        let (b, bt) = random(c.gpu, &[d], 33, 1.0)?;
        let (dy, dyt) = random(c.gpu, &[rows, d], 34, 1.0)?;
        let out = layernorm::layernorm_forward(&xt, &wt, &bt, 1e-6)?;
        let want = reference::layernorm::layernorm_forward(&x, &w, &b, 1e-6);
        c.compare("layernorm", &format!("[{rows},{d}] y"), "f64", &out.y, &want.y, Metric::Scaled, ROWWISE)?;
        let g = layernorm::layernorm_backward(&xt, &wt, &out.mean, &out.rstd, &dyt, false)?;
        let want_g = reference::layernorm::layernorm_backward(&x, &w, &dy, 1e-6);
        c.compare("layernorm", &format!("[{rows},{d}] dx"), "f64", &g.dx, &want_g.dx, Metric::Scaled, ROWWISE)?;
    }
    Ok(())
}

/// Cross-entropy over 3 and 1000 classes (a tiny head and ImageNet's).
fn cross_entropy_rows(c: &mut Checker) -> Result<()> {
    for classes in [3, 1000] {
        let batch = 5;
        let (logits, logits_t) = random(c.gpu, &[batch, classes], 41, 6.0)?;
        let labels: Vec<u32> = (0..batch as u32).map(|i| (i * 7 + 1) % classes as u32).collect();
        let labels_t = Labels::new(c.gpu, &labels, classes)?;
        let out = cross_entropy::cross_entropy_forward(&logits_t, &labels_t)?;
        let want = reference::cross_entropy::cross_entropy_forward(&logits, &labels, classes);
        c.compare("cross_entropy", &format!("[{batch},{classes}] loss"), "f64", &out.loss, &[want.loss], Metric::Scaled, ROWWISE)?;
        let dloss = Tensor::from_slice(c.gpu, &[1], &[1.0])?;
        // From the exact probabilities, as softmax's backward above.
        let dlogits = cross_entropy::cross_entropy_backward(&out.probs, &labels_t, &dloss)?;
        let want_d = reference::cross_entropy::cross_entropy_backward(&want.probs, &labels, classes, 1.0);
        c.compare("cross_entropy", &format!("[{batch},{classes}] dlogits"), "f64", &dlogits, &want_d, Metric::Scaled, ROWWISE)?;
    }
    Ok(())
}

/// The fused attention, forward and backward, at [2, 3, 41, 40] (41 tokens cross its 16-key
/// tiles and 4-row groups; hd 40 is not a power of two), at [1, 2, 41, 13], whose heads are not
/// a multiple of 4 wide (the build reading them as f32s, with a partial last quad), and with 23
/// query rows against 41 keys (what VPT-deep asks where only some rows are read).
fn fused_attention(c: &mut Checker) -> Result<()> {
    for (q_shape, tokens, seed) in [([2, 3, 41, 40], 41, 51), ([1, 2, 41, 13], 41, 61), ([1, 2, 23, 40], 41, 71)] {
        fused_attention_at(c, q_shape, tokens, seed)?;
    }
    Ok(())
}

/// q [B, H, Tq, hd] against k, v [B, H, T, hd], T = `tokens`.
fn fused_attention_at(c: &mut Checker, q_shape: [usize; 4], tokens: usize, seed: u64) -> Result<()> {
    let [b, h, tq, hd] = q_shape;
    let k_shape = [b, h, tokens, hd];
    let (q, qt) = random(c.gpu, &q_shape, seed, 2.0)?;
    let (k, kt) = random(c.gpu, &k_shape, seed + 1, 2.0)?;
    let (v, vt) = random(c.gpu, &k_shape, seed + 2, 1.0)?;
    let (dout, doutt) = random(c.gpu, &q_shape, seed + 3, 1.0)?;
    let scale = 1.0 / (hd as f32).sqrt();
    let heads = reference::attention::Heads { queries: tq, tokens, head_dim: hd };
    let out = attention::attention_forward(&qt, &kt, &vt, scale)?;
    let (want_o, _) = reference::attention::attention_forward(&q, &k, &v, heads, scale as f64);
    let case = if tq == tokens { format!("[{b},{h},{tokens},{hd}]") } else { format!("[{b},{h},{tq} of {tokens},{hd}]") };
    c.compare("attention (fused)", &format!("{case} o"), "f64", &out.o, &want_o, Metric::Scaled, ATTENTION)?;
    let g = attention::attention_backward(&qt, &kt, &vt, &out, &doutt, scale)?;
    let [dq, dk, dv] = reference::attention::attention_backward(&q, &k, &v, &dout, heads, scale as f64);
    c.compare("attention (fused)", &format!("{case} dq"), "f64", &g.dq, &dq, Metric::Scaled, ATTENTION)?;
    c.compare("attention (fused)", &format!("{case} dk"), "f64", &g.dk, &dk, Metric::Scaled, ATTENTION)?;
    c.compare("attention (fused)", &format!("{case} dv"), "f64", &g.dv, &dv, Metric::Scaled, ATTENTION)
}

/// Kept activations packed as f16 and widened back (`--precision f16`): 1001 values (an odd
/// count: the last pair is half empty) from 2⁻¹⁴ to 2¹⁷ in magnitude, both signs, so every f16
/// exponent is crossed and the values past 65504 are clamped to it. Packing is within one f16
/// step of the nearest-rounded value; widening back returns exactly what was packed.
fn halves_round_trip(c: &mut Checker) -> Result<()> {
    let n = 1001;
    let mut state = 71u64.wrapping_add(crate::rng::GOLDEN);
    let host: Vec<f32> = (0..n)
        .map(|i| {
            let magnitude = (2.0f64).powf(-14.0 + 31.0 * crate::rng::next_unit(&mut state));
            (if i % 2 == 0 { magnitude } else { -magnitude }) as f32
        })
        .collect();
    let x: Vec<f64> = host.iter().map(|&v| v as f64).collect();
    let xt = Tensor::from_slice(c.gpu, &[n], &host)?;
    let packed = halves::to_halves(&xt)?;
    c.compare("halves", &format!("[{n}] to_halves"), "f64", &packed, &reference::halves::round_trip(&x), Metric::PerValue, F16_STEP)?;
    c.compare_tensors("halves", &format!("[{n}] from_halves"), "f64", &halves::from_halves(&packed)?, &packed, Metric::PerValue, 0.0)
}
