//! LayerNorm over the last axis with `torch.nn.LayerNorm` semantics (biased variance, eps inside
//! the square root). Kernels in `wgsl/layernorm.wgsl`.

use super::{check_workgroup_threads, dispatch_per_row, grid_rows, row_reduce_shader, row_workgroup_threads};
use super::{grid_1d, same_device, same_shape};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Gpu, Params, Shader};
use crate::tensor::Tensor;

wgsl_shader!("layernorm", uses ["flat", "norm_quads", "row_reduce"]);
wgsl_shader!(SHADER_SUBGROUP = "layernorm" as "layernorm_subgroup", needs SUBGROUP, uses ["flat", "norm_quads", "row_reduce_subgroup"]);
wgsl_shader!(SHADER_SCALARS = "layernorm" as "layernorm_scalars", uses ["flat", "norm_scalars", "row_reduce"]);
wgsl_shader!(SHADER_SCALARS_SUBGROUP = "layernorm" as "layernorm_scalars_subgroup", needs SUBGROUP, uses ["flat", "norm_scalars", "row_reduce_subgroup"]);

/// f32s per Unit for rows `d` wide: a quad (4) where D is a multiple of 4, so that every row
/// starts on a vec4, else one f32. It picks the build, and sizes the per-column kernel's grid.
fn unit(d: usize) -> usize {
    if d.is_multiple_of(4) {
        4
    } else {
        1
    }
}

/// The family's build for rows `d` wide (`wgsl/lib/norm_quads.wgsl` or `norm_scalars.wgsl`, by
/// [`unit`]), compiled with subgroup reductions where the adapter has them (see
/// [`row_reduce_shader`]).
fn shader(gpu: &Gpu, d: usize) -> &'static Shader {
    if unit(d) == 4 {
        row_reduce_shader(gpu, &SHADER, &SHADER_SUBGROUP)
    } else {
        row_reduce_shader(gpu, &SHADER_SCALARS, &SHADER_SCALARS_SUBGROUP)
    }
}

/// What the forward returns: the output and the per-row statistics the backward needs.
pub struct LayerNormOut {
    /// [..., D], the shape of x.
    pub y: Tensor,
    /// [rows], rows = product of x's leading dims.
    pub mean: Tensor,
    /// [rows], 1 / sqrt(var + eps).
    pub rstd: Tensor,
}

/// What [`add_layernorm_forward`] returns: the sum, which the block's next residual reads, and
/// LayerNorm's output and statistics for it.
pub struct AddLayerNormOut {
    /// s = x + r, [..., D].
    pub sum: Tensor,
    /// LN(s), [..., D].
    pub y: Tensor,
    /// [rows], of s.
    pub mean: Tensor,
    /// [rows], 1 / sqrt(var(s) + eps).
    pub rstd: Tensor,
}

/// Gradients of the loss with respect to LayerNorm's inputs.
pub struct LayerNormGrads {
    /// [..., D], the shape of x. For [`add_layernorm_backward`], the gradient of s = x + r (and
    /// so of both x and r).
    pub dx: Tensor,
    /// [D]; `None` when the parameters are frozen (`need_params = false`).
    pub dweight: Option<Tensor>,
    /// [D]; `None` when the parameters are frozen.
    pub dbias: Option<Tensor>,
}

/// y = (x − mean)·rstd·weight + bias over the last axis. x: [..., D], weight: [D], bias: [D]
/// → y: [..., D], mean: [rows], rstd: [rows]. timm's ViT uses eps = 1e-6.
pub fn layernorm_forward(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<LayerNormOut> {
    let op = "layernorm_forward";
    check_affine(op, x, weight, bias, eps)?;
    let (rows, d) = (x.rows(), x.last_dim());
    let y = x.empty_like_shape(x.shape())?;
    let mean = x.empty_like_shape(&[rows])?;
    let rstd = x.empty_like_shape(&[rows])?;
    let params = Params::new().dim("rows", rows).dim("d", d).f32("eps", eps);
    let buffers = [
        Bind::read(1, x.buffer()),
        Bind::read(2, weight.buffer()),
        Bind::read(3, bias.buffer()),
        Bind::read_write(4, y.buffer()),
        Bind::read_write(5, mean.buffer()),
        Bind::read_write(6, rstd.buffer()),
    ];
    dispatch_per_row(x.gpu(), shader(x.gpu(), d), op, row_workgroup_threads(x.gpu()), &params, &buffers, grid_rows(x.gpu(), op, rows)?)?;
    Ok(LayerNormOut { y, mean, rstd })
}

/// s = x + r and y = LayerNorm(s) in one kernel: a pre-norm block's residual add and the norm
/// after it, one pass over memory instead of an add (read 2, write 1) and a LayerNorm that reads
/// s back. s is returned too, for the residual that uses it next. x, r: [..., D], the same shape;
/// weight, bias: [D] → sum, y: [..., D], mean, rstd: [rows].
pub fn add_layernorm_forward(x: &Tensor, r: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<AddLayerNormOut> {
    add_layernorm_forward_with_threads(row_workgroup_threads(x.gpu()), x, r, weight, bias, eps)
}

/// [`add_layernorm_forward`] with `threads` per row (a power of 2, at most 256) in place of
/// [`row_workgroup_threads`]'s: for tests that run another adapter's choice here.
pub fn add_layernorm_forward_with_threads(threads: u32, x: &Tensor, r: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<AddLayerNormOut> {
    let op = "add_layernorm_forward";
    check_workgroup_threads(op, threads)?;
    same_device(op, x, r)?;
    same_shape(op, x, r, "x", "r")?;
    check_affine(op, x, weight, bias, eps)?;
    let (rows, d) = (x.rows(), x.last_dim());
    let sum = x.empty_like_shape(x.shape())?;
    let y = x.empty_like_shape(x.shape())?;
    let mean = x.empty_like_shape(&[rows])?;
    let rstd = x.empty_like_shape(&[rows])?;
    let params = Params::new().dim("rows", rows).dim("d", d).f32("eps", eps);
    let buffers = [
        Bind::read(1, x.buffer()),
        Bind::read(13, r.buffer()),
        Bind::read(2, weight.buffer()),
        Bind::read(3, bias.buffer()),
        Bind::read_write(14, sum.buffer()),
        Bind::read_write(4, y.buffer()),
        Bind::read_write(5, mean.buffer()),
        Bind::read_write(6, rstd.buffer()),
    ];
    dispatch_per_row(x.gpu(), shader(x.gpu(), d), op, threads, &params, &buffers, grid_rows(x.gpu(), op, rows)?)?;
    Ok(AddLayerNormOut { sum, y, mean, rstd })
}

/// Gradients of [`layernorm_forward`]. x, dy: [..., D]; weight: [D]; mean, rstd: [rows] from the
/// forward. dx always; dweight = Σ_rows dy·x̂ and dbias = Σ_rows dy only when `need_params`
/// (a frozen backbone's LayerNorm skips that kernel entirely).
pub fn layernorm_backward(x: &Tensor, weight: &Tensor, mean: &Tensor, rstd: &Tensor, dy: &Tensor, need_params: bool) -> Result<LayerNormGrads> {
    backward("layernorm_backward", row_workgroup_threads(x.gpu()), x, weight, mean, rstd, dy, None, need_params)
}

/// Gradients of [`add_layernorm_forward`]. sum: the forward's s, [..., D]; dy: the gradient of y;
/// dsum: the gradient s received from its other uses (the next residual), both like s. dx =
/// dsum + LN'(dy), the gradient of s and so of both x and r, in the same pass as LN'(dy): the
/// two gradients of s need no add kernel of their own. dweight, dbias as in
/// [`layernorm_backward`]. (Where no gradient reached y, the gradient of s is dsum itself; where
/// none reached s, [`layernorm_backward`] on s.)
pub fn add_layernorm_backward(sum: &Tensor, weight: &Tensor, mean: &Tensor, rstd: &Tensor, dy: &Tensor, dsum: &Tensor, need_params: bool) -> Result<LayerNormGrads> {
    add_layernorm_backward_with_threads(row_workgroup_threads(sum.gpu()), sum, weight, mean, rstd, dy, dsum, need_params)
}

/// [`add_layernorm_backward`] with `threads` per row in place of [`row_workgroup_threads`]'s, as
/// [`add_layernorm_forward_with_threads`].
#[allow(clippy::too_many_arguments)]
pub fn add_layernorm_backward_with_threads(threads: u32, sum: &Tensor, weight: &Tensor, mean: &Tensor, rstd: &Tensor, dy: &Tensor, dsum: &Tensor, need_params: bool) -> Result<LayerNormGrads> {
    let op = "add_layernorm_backward";
    check_workgroup_threads(op, threads)?;
    backward(op, threads, sum, weight, mean, rstd, dy, Some(dsum), need_params)
}

/// The backward of both: dx = [dsum +] LN'(dy), then dweight and dbias if asked for.
#[allow(clippy::too_many_arguments)]
fn backward(op: &'static str, threads: u32, x: &Tensor, weight: &Tensor, mean: &Tensor, rstd: &Tensor, dy: &Tensor, dsum: Option<&Tensor>, need_params: bool) -> Result<LayerNormGrads> {
    check_width(op, x, weight, "weight")?;
    check_row_stats(op, x, mean, "mean")?;
    check_row_stats(op, x, rstd, "rstd")?;
    // The fused op's x is the forward's sum.
    let x_name = if dsum.is_some() { "sum" } else { "x" };
    same_device(op, x, dy)?;
    same_shape(op, x, dy, x_name, "dy")?;
    if let Some(dsum) = dsum {
        same_device(op, x, dsum)?;
        same_shape(op, x, dsum, x_name, "dsum")?;
    }
    let gpu = x.gpu();
    let (rows, d) = (x.rows(), x.last_dim());
    // eps is not needed: rstd already contains it.
    let params = Params::new().dim("rows", rows).dim("d", d).f32("eps", 0.0);

    let dx = x.empty_like_shape(x.shape())?;
    let mut buffers =
        vec![Bind::read(1, x.buffer()), Bind::read(2, weight.buffer()), Bind::read(7, mean.buffer()), Bind::read(8, rstd.buffer()), Bind::read(9, dy.buffer()), Bind::read_write(10, dx.buffer())];
    let entry = match dsum {
        Some(dsum) => {
            buffers.push(Bind::read(15, dsum.buffer()));
            "add_layernorm_backward_dx"
        }
        None => "layernorm_backward_dx",
    };
    dispatch_per_row(gpu, shader(gpu, d), entry, threads, &params, &buffers, grid_rows(gpu, op, rows)?)?;
    if !need_params {
        return Ok(LayerNormGrads { dx, dweight: None, dbias: None });
    }

    let dweight = x.empty_like_shape(&[d])?;
    let dbias = x.empty_like_shape(&[d])?;
    let buffers = [
        Bind::read(1, x.buffer()),
        Bind::read(7, mean.buffer()),
        Bind::read(8, rstd.buffer()),
        Bind::read(9, dy.buffer()),
        Bind::read_write(11, dweight.buffer()),
        Bind::read_write(12, dbias.buffer()),
    ];
    // One thread per Unit of columns.
    gpu.dispatch(shader(gpu, d), "layernorm_backward_params", &params, &buffers, grid_1d(gpu, d / unit(d))?)?;
    Ok(LayerNormGrads { dx, dweight: Some(dweight), dbias: Some(dbias) })
}

/// The forward's weight and bias must be [D], and eps finite and ≥ 0.
fn check_affine(op: &'static str, x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<()> {
    check_width(op, x, weight, "weight")?;
    check_width(op, x, bias, "bias")?;
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::shape(op, format!("eps must be a finite number ≥ 0, got {eps}")));
    }
    Ok(())
}

/// A per-column parameter (weight or bias) must be [D], D = x's last dimension.
fn check_width(op: &'static str, x: &Tensor, t: &Tensor, name: &str) -> Result<()> {
    same_device(op, x, t)?;
    if t.shape() != [x.last_dim()] {
        return Err(Error::shape(op, format!("{name} has shape {:?} but x has shape {:?}; {name} must be [{}]", t.shape(), x.shape(), x.last_dim())));
    }
    Ok(())
}

/// A saved per-row statistic (mean or rstd) must be [rows] for x seen as [rows, D].
fn check_row_stats(op: &'static str, x: &Tensor, stat: &Tensor, name: &str) -> Result<()> {
    same_device(op, x, stat)?;
    if stat.shape() != [x.rows()] {
        return Err(Error::shape(op, format!("{name} has shape {:?} but x has shape {:?} ({} rows); {name} must be [{}]", stat.shape(), x.shape(), x.rows(), x.rows())));
    }
    Ok(())
}
