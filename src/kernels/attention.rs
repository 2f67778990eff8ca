//! Fused attention: softmax(s·q·kᵀ)·v in one kernel, without the [B, H, T, T] probabilities,
//! and its FlashAttention-2 backward that recomputes them from a saved log-sum-exp (with dQ as a
//! matmul on the score gradients, which exist only while the backward runs, where they fit).
//! Kernels and the equations in `wgsl/attention.wgsl`; where the device has SUBGROUP, the
//! forward, dK/dV and dQ kernels of `wgsl/lib/attention_subgroup.wgsl` (the same sums).
//!
//! The unfused path (matmul → softmax_scaled → matmul, each with its backward) stays in the
//! model as the readable reference and for comparison; `model::block` picks one.

use super::matmul::{matmul_forward, MatmulOptions};
use super::{expect_rank, grid_1d, same_device, same_shape};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Gpu, Params, Shader};
use crate::tensor::Tensor;

// The kernels read the [T, hd] matrices a quad of columns at a time: as vec4s where hd is a
// multiple of 4 (every ViT), four f32 loads otherwise (`shader_for`).
wgsl_shader!("attention", uses["flat", "attention_quads"]);
wgsl_shader!(SHADER_SCALARS = "attention" as "attention_scalars", uses["flat", "attention_scalars"]);
// The forward, dK/dV and dQ kernels that share the streamed rows through subgroup shuffles
// (wgsl/lib/attention_subgroup.wgsl), launched only for those three (`Kernels::for_device`).
wgsl_shader!(SHADER_SUBGROUP = "attention" as "attention_subgroup", needs SUBGROUP, uses["flat", "attention_quads", "attention_subgroup"]);

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
}

impl Kernels {
    fn for_device(gpu: &Gpu, head_dim: usize) -> Kernels {
        let plain_chosen = gpu.choice(BUILD_KEY).as_deref() == Some(BUILD_PLAIN);
        if gpu.has_subgroups() && head_dim.is_multiple_of(4) && !plain_chosen {
            Kernels { shader: &SHADER_SUBGROUP, forward: "attention_forward_sg", dkdv: "attention_backward_dkdv_sg", dq: "attention_backward_dq_sg" }
        } else {
            Kernels { shader: shader_for(head_dim), forward: "attention_forward", dkdv: "attention_backward_dkdv", dq: "attention_backward_dq" }
        }
    }
}

/// The widest head the fused kernels take, 4 × `MAX_QUADS` in the WGSL: each invocation
/// accumulates its rows' outputs over this many columns, a quad of 4 at a time.
pub const MAX_HEAD_DIM: usize = 128;
/// Rows per workgroup: `ROWS_WG` = 64 invocations of 4 rows each.
const ROWS_PER_WORKGROUP: usize = 4 * 64;

/// What the forward returns: o [B, H, T, hd] and the per-row log-sum-exp [B, H, T] that the
/// backward recomputes the probabilities from.
#[derive(Debug)]
pub struct AttentionOut {
    pub o: Tensor,
    pub lse: Tensor,
}

/// Gradients with respect to q, k and v, [B, H, T, hd] each.
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
    tokens: usize,
    head_dim: usize,
}

impl Dims {
    /// The uniform every kernel gets; `store_ds`: dkdv stores s·dS for dQ's matmul.
    fn params(self, scale: f32, store_ds: bool) -> Params {
        Params::new().dim("batch_heads", self.batch_heads).dim("tokens", self.tokens).dim("head_dim", self.head_dim).f32("scale", scale).flag("store_ds", store_ds)
    }

    /// One workgroup per 256 rows of every head (one per head up to T = 256).
    fn row_grid(self, gpu: &Gpu, op: &'static str) -> Result<[u32; 3]> {
        let groups = self.batch_heads * self.tokens.div_ceil(ROWS_PER_WORKGROUP);
        let groups = u32::try_from(groups).map_err(|_| Error::shape(op, format!("{groups} workgroups is more than one launch can cover")))?;
        Ok(gpu.grid(groups))
    }
}

/// Check q and the tensors that must match it ([B, H, T, hd] each) and read their sizes.
fn head_dims(op: &'static str, q: &Tensor, others: &[(&Tensor, &str)]) -> Result<Dims> {
    expect_rank(op, q, "q", 4, "[B, H, T, hd]")?;
    for (t, name) in others {
        same_shape(op, q, t, "q", name)?;
        same_device(op, q, t)?;
    }
    let s = q.shape();
    if s[3] == 0 || s[3] > MAX_HEAD_DIM || s[2] == 0 {
        return Err(Error::shape(op, format!("q {s:?}: the fused attention takes 1 ≤ T and 1 ≤ hd ≤ {MAX_HEAD_DIM}; use the unfused path (`attention` unfused) for wider heads")));
    }
    Ok(Dims { batch_heads: s[0] * s[1], tokens: s[2], head_dim: s[3] })
}

/// o = softmax(scale·q·kᵀ)·v per (batch, head), and the row log-sum-exp.
/// q, k, v: [B, H, T, hd] → o [B, H, T, hd], lse [B, H, T].
pub fn attention_forward(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<AttentionOut> {
    let op = "attention_forward";
    let dims = head_dims(op, q, &[(k, "k"), (v, "v")])?;
    let o = q.empty_like_shape(q.shape())?;
    let lse = q.empty_like_shape(&q.shape()[..3])?;
    let kernels = Kernels::for_device(q.gpu(), dims.head_dim);
    q.gpu().dispatch(
        kernels.shader,
        kernels.forward,
        &dims.params(scale, false),
        &[Bind::read(1, q.buffer()), Bind::read(2, k.buffer()), Bind::read(3, v.buffer()), Bind::read_write(4, o.buffer()), Bind::read_write(5, lse.buffer())],
        dims.row_grid(q.gpu(), op)?,
    )?;
    Ok(AttentionOut { o, lse })
}

/// How the fused backward computes dQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DqPath {
    /// dkdv stores s·dS [B·H, T, T] and dQ = (s·dS)·K is a matmul: 10·T²·hd multiply-adds per
    /// head.
    Matmul,
    /// A kernel per query block recomputes S and dP (FlashAttention-2's): 14·T²·hd, nothing of
    /// T² stored.
    Kernel,
}

impl DqPath {
    /// `Matmul` where s·dS fits one storage binding and B·H one grid axis (the matmul's batch),
    /// else `Kernel`.
    pub fn for_shape(gpu: &Gpu, batch_heads: usize, tokens: usize) -> DqPath {
        let ds_bytes = (batch_heads as u64).saturating_mul(tokens as u64).saturating_mul(tokens as u64).saturating_mul(4);
        let fits = ds_bytes <= gpu.max_binding_bytes() && batch_heads <= gpu.limits().max_compute_workgroups_per_dimension as usize;
        if fits {
            DqPath::Matmul
        } else {
            DqPath::Kernel
        }
    }
}

/// Gradient of [`attention_forward`] from its inputs, its outputs and dO [B, H, T, hd], dQ by
/// [`DqPath::for_shape`].
pub fn attention_backward(q: &Tensor, k: &Tensor, v: &Tensor, out: &AttentionOut, dout: &Tensor, scale: f32) -> Result<AttentionGrads> {
    backward(None, q, k, v, out, dout, scale)
}

/// [`attention_backward`] with dQ computed as `dq_path` says.
pub fn attention_backward_with(dq_path: DqPath, q: &Tensor, k: &Tensor, v: &Tensor, out: &AttentionOut, dout: &Tensor, scale: f32) -> Result<AttentionGrads> {
    backward(Some(dq_path), q, k, v, out, dout, scale)
}

/// D = rowsum(dO ⊙ O) beside L, then dK and dV per key block (which also stores s·dS for
/// `DqPath::Matmul`, freed on return), then dQ (why: `wgsl/attention.wgsl`). `dq_path` None:
/// [`DqPath::for_shape`].
fn backward(dq_path: Option<DqPath>, q: &Tensor, k: &Tensor, v: &Tensor, out: &AttentionOut, dout: &Tensor, scale: f32) -> Result<AttentionGrads> {
    let op = "attention_backward";
    let dims = head_dims(op, q, &[(k, "k"), (v, "v"), (&out.o, "o"), (dout, "dO")])?;
    if out.lse.shape() != &q.shape()[..3] {
        return Err(Error::shape(op, format!("lse has shape {:?}; it must be [B, H, T] = {:?}", out.lse.shape(), &q.shape()[..3])));
    }
    let gpu = q.gpu();
    let (bh, t, hd) = (dims.batch_heads, dims.tokens, dims.head_dim);
    let dq_by_matmul = dq_path.unwrap_or_else(|| DqPath::for_shape(gpu, bh, t)) == DqPath::Matmul;
    let params = dims.params(scale, dq_by_matmul);
    let stats = q.empty_like_shape(&[bh, t, 2])?; // (L, D) per row
    let shader = shader_for(hd);
    gpu.dispatch(
        shader,
        "attention_backward_rowdot",
        &params,
        &[Bind::read(6, out.o.buffer()), Bind::read(7, out.lse.buffer()), Bind::read(8, dout.buffer()), Bind::read_write(9, stats.buffer())],
        grid_1d(gpu, bh * t)?,
    )?;
    let (dk, dv) = (q.empty_like_shape(q.shape())?, q.empty_like_shape(q.shape())?);
    let ds_shape = if dq_by_matmul { vec![bh, t, t] } else { vec![1] }; // one unused value where not stored
    let ds = q.empty_like_shape(&ds_shape)?; // s·dS
    let inputs = [Bind::read(1, q.buffer()), Bind::read(2, k.buffer()), Bind::read(3, v.buffer()), Bind::read(8, dout.buffer()), Bind::read(10, stats.buffer())];
    let mut binds = inputs.to_vec();
    binds.extend([Bind::read_write(11, ds.buffer()), Bind::read_write(12, dk.buffer()), Bind::read_write(13, dv.buffer())]);
    let kernels = Kernels::for_device(gpu, hd);
    gpu.dispatch(kernels.shader, kernels.dkdv, &params, &binds, dims.row_grid(gpu, op)?)?;
    let dq = if dq_by_matmul {
        // dQ [B·H, T, hd] = (s·dS) [B·H, T, T] · K [B·H, T, hd]
        matmul_forward(&ds, &k.reshape(&[bh, t, hd])?, None, MatmulOptions::default())?.reshape(q.shape())?
    } else {
        let dq = q.empty_like_shape(q.shape())?;
        let mut binds = inputs.to_vec();
        binds.push(Bind::read_write(14, dq.buffer()));
        gpu.dispatch(kernels.shader, kernels.dq, &params, &binds, dims.row_grid(gpu, op)?)?;
        dq
    };
    Ok(AttentionGrads { dq, dk, dv })
}
