//! Fused attention: softmax(s·q·kᵀ)·v in one kernel, without the [B, H, T, T] probabilities,
//! and its FlashAttention-2 backward that recomputes them from a saved log-sum-exp (with dQ as a
//! matmul on the score gradients, which exist only while the backward runs, where they fit).
//! Kernels and the equations in `wgsl/attention.wgsl`; where the device has SUBGROUP, the
//! forward, dK/dV and dQ kernels of `wgsl/lib/attention_subgroup.wgsl` (the same sums).
//!
//! The unfused path (matmul → softmax_scaled → matmul, each with its backward) stays in the
//! model as the readable reference and for comparison; `model::block` picks one.

use super::matmul::{matmul_forward, matmul_forward_with, MatmulOptions};
use super::matmul_choice::MatmulKernel;
use super::{check_workgroup_threads, expect_rank, grid_1d, row_workgroup_threads, same_device, same_shape};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Gpu, Params, Shader, TexelBind, Texels};
use crate::tensor::{DType, Tensor};

// The kernels read the [T, hd] matrices a quad of columns at a time: as vec4s where hd is a
// multiple of 4 (every ViT), four f32 loads otherwise (`shader_for`).
wgsl_shader!("attention", uses["flat", "attention_quads", "attention_heads_buffers"]);
wgsl_shader!(SHADER_SCALARS = "attention" as "attention_scalars", uses["flat", "attention_scalars"]);
// The forward, dK/dV and dQ kernels that share the streamed rows through subgroup shuffles
// (wgsl/lib/attention_subgroup.wgsl), launched only for those three (`Kernels::for_device`).
wgsl_shader!(SHADER_SUBGROUP = "attention" as "attention_subgroup", needs SUBGROUP, uses["flat", "attention_quads", "attention_heads_buffers", "attention_subgroup"]);
// The same kernels reading the heads (q, k, v, dO) from texels made for the launch, where those
// pay and fit (`heads_from_texels`; wgsl/lib/attention_heads_texels.wgsl says why).
wgsl_shader!(
    SHADER_TEXELS_SUBGROUP = "attention" as "attention_texels_subgroup",
    needs SUBGROUP,
    uses["flat", "texel_rows", "attention_quads", "attention_heads_texels", "attention_subgroup"]
);

/// The build that reads heads of width `head_dim`: [`SHADER`] (one vec4 load per quad of columns)
/// where it is a multiple of 4, so that every row starts on a vec4, else [`SHADER_SCALARS`]
/// (four f32 loads per quad; the same sums in the same order).
fn shader_for(head_dim: usize) -> &'static Shader {
    if head_dim.is_multiple_of(4) {
        &SHADER
    } else {
        &SHADER_SCALARS
    }
}

/// The key of the fused attention's build among `vpt tune`'s choices, and its two values: the
/// kernels sharing the streamed rows by subgroup shuffles (where the device has SUBGROUP, unless
/// a tune measured the other faster) or those without.
pub const BUILD_KEY: &str = "attention";
pub const BUILD_SUBGROUPS: &str = "subgroups";
pub const BUILD_PLAIN: &str = "plain";

/// The forward, dK/dV and dQ kernels for a device and head width: where the device has SUBGROUP,
/// the heads are read as vec4s and no tune chose [`BUILD_PLAIN`], the `_sg` kernels of
/// [`SHADER_SUBGROUP`] (the same sums in the same order, so the same bits); else those of
/// [`shader_for`]. Fixed per device, so the same device always runs the same code.
#[derive(Clone, Copy)]
struct Kernels {
    shader: &'static Shader,
    forward: &'static str,
    dkdv: &'static str,
    dq: &'static str,
    /// The `_sg` kernels, which have a build reading the heads from texels.
    subgroup: bool,
}

impl Kernels {
    fn for_device(gpu: &Gpu, head_dim: usize) -> Kernels {
        let plain_chosen = gpu.choice(BUILD_KEY).as_deref() == Some(BUILD_PLAIN);
        if gpu.has_subgroups() && head_dim.is_multiple_of(4) && !plain_chosen {
            Kernels { shader: &SHADER_SUBGROUP, forward: "attention_forward_sg", dkdv: "attention_backward_dkdv_sg", dq: "attention_backward_dq_sg", subgroup: true }
        } else {
            Kernels { shader: shader_for(head_dim), forward: "attention_forward", dkdv: "attention_backward_dkdv", dq: "attention_backward_dq", subgroup: false }
        }
    }

    /// Where a launch of the forward, dK/dV or dQ kernels reads `heads` (q, k, v, and dO in the
    /// backward, each with the binding of its buffer): from texels made here, once for every
    /// launch of the op, where the `_sg` kernels run and [`heads_from_texels`] says so (read by
    /// [`SHADER_TEXELS_SUBGROUP`]); else from their buffers.
    fn heads<'a>(self, heads: &[(u32, &'a Tensor)]) -> Result<Heads<'a>> {
        let gpu = heads[0].1.gpu();
        let texels = match self.subgroup && heads_from_texels(gpu, heads) {
            true => Some(heads.iter().map(|(_, t)| gpu.activation_texels("attention: a head's texels", t.buffer(), t.numel())).collect::<Result<_>>()?),
            false => None,
        };
        Ok(Heads { tensors: heads.to_vec(), texels })
    }

    /// Launches `entry` with `threads` invocations per workgroup, reading `heads` as they are
    /// held, and `binds` besides them. The same values either way, so the same bits.
    fn launch(self, entry: &'static str, threads: u32, heads: &Heads, params: &Params, binds: &[Bind], grid: [u32; 3]) -> Result<()> {
        let gpu = heads.tensors[0].1.gpu();
        let rows_wg = [("ROWS_WG", f64::from(threads))];
        match &heads.texels {
            Some(texels) => {
                let texel_binds: Vec<TexelBind> = texels.iter().enumerate().map(|(i, texels)| TexelBind { binding: FIRST_HEAD_TEXELS + i as u32, texels }).collect();
                gpu.dispatch_reading_texels(&SHADER_TEXELS_SUBGROUP, entry, &rows_wg, params, binds, &texel_binds, grid)
            }
            None => {
                let mut all = binds.to_vec();
                all.extend(heads.tensors.iter().map(|(binding, t)| Bind::read(*binding, t.buffer())));
                gpu.dispatch_specialized(self.shader, entry, &rows_wg, params, &all, grid)
            }
        }
    }
}

/// The heads an op's launches read, and their texels where they are read from texels
/// ([`Kernels::heads`]); the texel build binds no head's buffer (a binding it does not use is
/// refused).
struct Heads<'a> {
    tensors: Vec<(u32, &'a Tensor)>,
    texels: Option<Vec<Texels>>,
}

/// The binding of q's texels; k's, v's and dO's follow it (wgsl/lib/attention_heads_texels.wgsl).
const FIRST_HEAD_TEXELS: u32 = 16;

/// The key of where the `_sg` kernels read the heads among the tune cache's choices (`vpt tune`
/// measures both), and its two values.
pub const HEADS_KEY: &str = "attention heads";
pub const HEADS_TEXELS: &str = "texels";
pub const HEADS_BUFFERS: &str = "buffers";

/// Whether the `_sg` kernels read `heads` from texels: where the tune cache says
/// [`HEADS_TEXELS`], or says nothing and texels are this adapter's default source
/// ([`Gpu::texels_pay`]); and no trace records (a trace holds buffers only), and each head is
/// f32 and fits one texture.
///
/// Measured on lavapipe (Vulkan), 2026-12-07, two interleaved rounds of `cargo run --release
/// --example step_profile -- vit-b 8` (ViT-B/16 deep 50, batch 8, kernel time of the 12 blocks):
/// the forward 651.4 → 544.1 and 566.9 → 424.9 ms, dK/dV 1498.0 → 1309.1 and 1357.3 → 991.6 ms,
/// while the same rounds' linear products ran 6195 → 7104 and 5736 → 5445 ms (the host's drift):
/// against them, 0.73–0.79 of the time. Not measured on a GPU.
fn heads_from_texels(gpu: &Gpu, heads: &[(u32, &Tensor)]) -> bool {
    heads_source(gpu) == HEADS_TEXELS && !gpu.tracing() && heads.iter().all(|(_, t)| t.dtype() == DType::F32 && gpu.texels_fit(t.numel()))
}

/// Where the `_sg` kernels read the heads on `gpu`, where they fit: [`HEADS_TEXELS`] or
/// [`HEADS_BUFFERS`], as its tune cache says or, where it says nothing, texels where they are
/// this adapter's default source ([`Gpu::texels_pay`]).
pub fn heads_source(gpu: &Gpu) -> &'static str {
    match gpu.choice(HEADS_KEY).as_deref() {
        Some(HEADS_TEXELS) => HEADS_TEXELS,
        Some(HEADS_BUFFERS) => HEADS_BUFFERS,
        _ if gpu.texels_pay() => HEADS_TEXELS,
        _ => HEADS_BUFFERS,
    }
}

/// The widest head the fused kernels take, 4 × `MAX_QUADS` in the WGSL: each invocation
/// accumulates its rows' outputs over this many columns, a quad of 4 at a time.
pub const MAX_HEAD_DIM: usize = 128;
/// Rows each invocation of the forward, dK/dV and dQ kernels owns.
const ROWS_PER_INVOCATION: usize = 4;

/// What the forward returns: o [B, H, Tq, hd] and the per-row log-sum-exp [B, H, Tq] that the
/// backward recomputes the probabilities from.
#[derive(Debug)]
pub struct AttentionOut {
    pub o: Tensor,
    pub lse: Tensor,
}

/// Gradients with respect to q [B, H, Tq, hd], k and v [B, H, T, hd].
#[derive(Debug)]
pub struct AttentionGrads {
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
}

/// The sizes every attention kernel gets.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch_heads: usize,
    /// T: the rows of k and v.
    tokens: usize,
    /// Tq: the rows of q (and o, dO, dQ).
    queries: usize,
    head_dim: usize,
}

impl Dims {
    /// The uniform every kernel gets; `store_ds`: dkdv stores s·dS for dQ's matmul.
    fn params(self, scale: f32, store_ds: bool) -> Params {
        Params::new().dim("batch_heads", self.batch_heads).dim("tokens", self.tokens).dim("queries", self.queries).dim("head_dim", self.head_dim).f32("scale", scale).flag("store_ds", store_ds)
    }

    /// One workgroup of `threads` invocations, 4 rows each, per 4·`threads` of each head's `rows`
    /// (the queries for the forward and dQ, the keys for dK/dV).
    fn row_grid(self, gpu: &Gpu, op: &'static str, threads: u32, rows: usize) -> Result<[u32; 3]> {
        let groups = self.batch_heads * rows.div_ceil(ROWS_PER_INVOCATION * threads as usize);
        let groups = u32::try_from(groups).map_err(|_| Error::shape(op, format!("{groups} workgroups is more than one launch can cover")))?;
        Ok(gpu.grid(groups))
    }
}

/// Check q [B, H, Tq, hd] and k [B, H, T, hd], the tensors that must match each
/// (`like_q`, `like_k`), and read their sizes.
fn head_dims(op: &'static str, q: &Tensor, k: &Tensor, like_q: &[(&Tensor, &str)], like_k: &[(&Tensor, &str)]) -> Result<Dims> {
    expect_rank(op, q, "q", 4, "[B, H, Tq, hd]")?;
    expect_rank(op, k, "k", 4, "[B, H, T, hd]")?;
    same_device(op, q, k)?;
    let (qs, ks) = (q.shape(), k.shape());
    if (qs[0], qs[1], qs[3]) != (ks[0], ks[1], ks[3]) {
        return Err(Error::shape(op, format!("q {qs:?} and k {ks:?}: they must agree in B, H and hd (q [B, H, Tq, hd], k [B, H, T, hd])")));
    }
    for (t, name) in like_q {
        same_shape(op, q, t, "q", name)?;
        same_device(op, q, t)?;
    }
    for (t, name) in like_k {
        same_shape(op, k, t, "k", name)?;
        same_device(op, k, t)?;
    }
    if qs[3] == 0 || qs[3] > MAX_HEAD_DIM || qs[2] == 0 || ks[2] == 0 {
        return Err(Error::shape(op, format!("q {qs:?}, k {ks:?}: the fused attention takes 1 ≤ Tq, 1 ≤ T and 1 ≤ hd ≤ {MAX_HEAD_DIM}; use the unfused path (`attention` unfused) for wider heads")));
    }
    Ok(Dims { batch_heads: qs[0] * qs[1], tokens: ks[2], queries: qs[2], head_dim: qs[3] })
}

/// o = softmax(scale·q·kᵀ)·v per (batch, head), and the row log-sum-exp.
/// q [B, H, Tq, hd], k, v [B, H, T, hd] → o [B, H, Tq, hd], lse [B, H, Tq]. Tq = T is
/// self-attention; a q of fewer rows asks only for the rows whose output is read.
pub fn attention_forward(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<AttentionOut> {
    attention_forward_with_threads(row_workgroup_threads(q.gpu()), q, k, v, scale)
}

/// [`attention_forward`] with `threads` invocations per workgroup in place of [`row_workgroup_threads`]'s:
/// for tests that run another adapter's choice here.
pub fn attention_forward_with_threads(threads: u32, q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<AttentionOut> {
    let op = "attention_forward";
    check_workgroup_threads(op, threads)?;
    let dims = head_dims(op, q, k, &[], &[(v, "v")])?;
    let o = q.empty_like_shape(q.shape())?;
    let lse = q.empty_like_shape(&q.shape()[..3])?;
    let kernels = Kernels::for_device(q.gpu(), dims.head_dim);
    let heads = kernels.heads(&[(1, q), (2, k), (3, v)])?;
    let outputs = [Bind::read_write(4, o.buffer()), Bind::read_write(5, lse.buffer())];
    kernels.launch(kernels.forward, threads, &heads, &dims.params(scale, false), &outputs, dims.row_grid(q.gpu(), op, threads, dims.queries)?)?;
    Ok(AttentionOut { o, lse })
}

/// How the fused backward computes dQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DqPath {
    /// dkdv stores s·dS [B·H, Tq, T] and dQ = (s·dS)·K is a matmul: 10·Tq·T·hd multiply-adds
    /// per head.
    Matmul,
    /// A kernel per query block recomputes S and dP (FlashAttention-2's): 14·Tq·T·hd, nothing of
    /// Tq·T stored.
    Kernel,
}

impl DqPath {
    /// `Matmul` where s·dS fits one storage binding and B·H one grid axis (the matmul's batch),
    /// else `Kernel`.
    pub fn for_shape(gpu: &Gpu, batch_heads: usize, queries: usize, tokens: usize) -> DqPath {
        let ds_bytes = (batch_heads as u64).saturating_mul(queries as u64).saturating_mul(tokens as u64).saturating_mul(4);
        let fits = ds_bytes <= gpu.max_binding_bytes() && batch_heads <= gpu.limits().max_compute_workgroups_per_dimension as usize;
        if fits {
            DqPath::Matmul
        } else {
            DqPath::Kernel
        }
    }
}

/// Gradient of [`attention_forward`] from its inputs, its outputs and dO [B, H, Tq, hd], dQ by
/// [`DqPath::for_shape`].
pub fn attention_backward(q: &Tensor, k: &Tensor, v: &Tensor, out: &AttentionOut, dout: &Tensor, scale: f32) -> Result<AttentionGrads> {
    backward(None, row_workgroup_threads(q.gpu()), q, k, v, out, dout, scale)
}

/// [`attention_backward`] with dQ computed as `dq_path` says.
pub fn attention_backward_with(dq_path: DqPath, q: &Tensor, k: &Tensor, v: &Tensor, out: &AttentionOut, dout: &Tensor, scale: f32) -> Result<AttentionGrads> {
    backward(Some(dq_path), row_workgroup_threads(q.gpu()), q, k, v, out, dout, scale)
}

/// [`attention_backward_with`] with `threads` invocations per workgroup in place of
/// [`row_workgroup_threads`]'s, as [`attention_forward_with_threads`].
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_with_threads(threads: u32, dq_path: DqPath, q: &Tensor, k: &Tensor, v: &Tensor, out: &AttentionOut, dout: &Tensor, scale: f32) -> Result<AttentionGrads> {
    check_workgroup_threads("attention_backward", threads)?;
    backward(Some(dq_path), threads, q, k, v, out, dout, scale)
}

/// D = rowsum(dO ⊙ O) beside L, then dK and dV per key block (which also stores s·dS for
/// `DqPath::Matmul`, freed on return), then dQ (why: `wgsl/attention.wgsl`). `dq_path` None:
/// [`DqPath::for_shape`].
#[allow(clippy::too_many_arguments)]
fn backward(dq_path: Option<DqPath>, threads: u32, q: &Tensor, k: &Tensor, v: &Tensor, out: &AttentionOut, dout: &Tensor, scale: f32) -> Result<AttentionGrads> {
    let op = "attention_backward";
    let dims = head_dims(op, q, k, &[(&out.o, "o"), (dout, "dO")], &[(v, "v")])?;
    if out.lse.shape() != &q.shape()[..3] {
        return Err(Error::shape(op, format!("lse has shape {:?}; it must be [B, H, Tq] = {:?}", out.lse.shape(), &q.shape()[..3])));
    }
    let gpu = q.gpu();
    let (bh, t, tq, hd) = (dims.batch_heads, dims.tokens, dims.queries, dims.head_dim);
    let dq_by_matmul = dq_path.unwrap_or_else(|| DqPath::for_shape(gpu, bh, tq, t)) == DqPath::Matmul;
    let params = dims.params(scale, dq_by_matmul);
    let stats = q.empty_like_shape(&[bh, tq, 2])?; // (L, D) per query row
    let shader = shader_for(hd);
    gpu.dispatch(
        shader,
        "attention_backward_rowdot",
        &params,
        &[Bind::read(6, out.o.buffer()), Bind::read(7, out.lse.buffer()), Bind::read(8, dout.buffer()), Bind::read_write(9, stats.buffer())],
        grid_1d(gpu, bh * tq)?,
    )?;
    let (dk, dv) = (k.empty_like_shape(k.shape())?, k.empty_like_shape(k.shape())?);
    let ds_shape = if dq_by_matmul { vec![bh, tq, t] } else { vec![1] }; // one unused value where not stored
    let ds = q.empty_like_shape(&ds_shape)?; // s·dS
    let stats_read = Bind::read(10, stats.buffer());
    let kernels = Kernels::for_device(gpu, hd);
    // Their texels, where read, are made once for dK/dV and the dQ kernel.
    let heads = kernels.heads(&[(1, q), (2, k), (3, v), (8, dout)])?;
    let dkdv_binds = [stats_read, Bind::read_write(11, ds.buffer()), Bind::read_write(12, dk.buffer()), Bind::read_write(13, dv.buffer())];
    kernels.launch(kernels.dkdv, threads, &heads, &params, &dkdv_binds, dims.row_grid(gpu, op, threads, t)?)?;
    let dq = if dq_by_matmul {
        drop(heads); // no kernel reads the heads' texels again: let them go before dQ's matmul
        dq_by_matmul_of(&ds, k, dims, &params)?.reshape(q.shape())?
    } else {
        let dq = q.empty_like_shape(q.shape())?;
        let dq_binds = [stats_read, Bind::read_write(14, dq.buffer())];
        kernels.launch(kernels.dq, threads, &heads, &params, &dq_binds, dims.row_grid(gpu, op, threads, tq)?)?;
        dq
    };
    Ok(AttentionGrads { dq, dk, dv })
}

/// dQ [B·H, Tq, hd] = (s·dS) [B·H, Tq, T] · K [B·H, T, hd], by a matmul.
///
/// On a CPU adapter with SUBGROUP (lavapipe, where `sg16x8` is the rule's kernel) and hd a
/// multiple of 4, as dQᵀ [B·H, hd, Tq] = Kᵀ·(s·dS)ᵀ with `sg16x8`, then turned the right way
/// by `attention_backward_dq_untranspose` (in [`SHADER_SUBGROUP`]). Elsewhere dS·K with the
/// rule's kernel, as before: on a GPU the rule takes `tiled`, and `sg16x8` is unmeasured there.
/// The turn puts Tq along `sg16x8`'s 256 columns per workgroup and reads s·dS stored [N, K],
/// the layout it is fastest in; dS·K has only hd columns (64 at ViT-B: the tile a quarter
/// full) and reads K stored [K, N], so the rule gives it `reg16x8`.
///
/// Measured on lavapipe at ViT-B/16 batch 8 (B·H = 96, Tq = T = 247, hd = 64; a scratch timing
/// of the matmul alone, GPU timestamps, two rounds): dS·K 66.0 / 68.3 ms with `reg16x8` (62.7 /
/// 68.7 with `reg32x8`, 107.8 with `sg16x8`), Kᵀ·dSᵀ 31.9 / 31.5 ms with `sg16x8` (99.9 / 100.7
/// with `reg16x8`); in the whole step (`cargo run --release --example step_profile -- vit-b 8`)
/// the 12 blocks' dQ went from 701.5 ms to 372 ms of products plus 26.9 ms of untransposing.
/// The same bits: each value is the same sum in the same order (`tests/kernels/attention.rs`
/// holds the subgroup build to the plain one's bits). Not measured on a GPU.
fn dq_by_matmul_of(ds: &Tensor, k: &Tensor, dims: Dims, params: &Params) -> Result<Tensor> {
    let gpu = k.gpu();
    let (bh, t, tq, hd) = (dims.batch_heads, dims.tokens, dims.queries, dims.head_dim);
    let k = k.reshape(&[bh, t, hd])?;
    let on_cpu = gpu.info().device_type == wgpu::DeviceType::Cpu;
    if !(on_cpu && MatmulKernel::Sg16x8.available(gpu) && hd.is_multiple_of(4)) {
        return matmul_forward(ds, &k, None, MatmulOptions::default());
    }
    // dQᵀ [B·H, hd, Tq] = op(A) [hd, T] · op(B) [T, Tq]: A = K stored [T, hd], B = s·dS stored [Tq, T].
    let dq_t = matmul_forward_with(MatmulKernel::Sg16x8, &k, ds, None, MatmulOptions { trans_a: true, trans_b: true })?;
    let dq = k.empty_like_shape(&[bh, tq, hd])?;
    gpu.dispatch(
        &SHADER_SUBGROUP,
        "attention_backward_dq_untranspose",
        params,
        &[Bind::read(15, dq_t.buffer()), Bind::read_write(14, dq.buffer())],
        grid_1d(gpu, bh * tq * hd / 4)?, // one thread per quad of dQ
    )?;
    Ok(dq)
}
