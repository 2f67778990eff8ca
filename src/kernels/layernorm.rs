//! LayerNorm over the last axis with `torch.nn.LayerNorm` semantics (biased variance, eps inside
//! the square root). Kernels in `wgsl/layernorm.wgsl`.

use super::grid_rows;
use super::{grid_1d, same_device, same_shape, wgsl_shader};
use crate::error::{Error, Result};
use crate::gpu::Params;
use crate::tensor::Tensor;

wgsl_shader!("layernorm");

/// What the forward returns: the output and the per-row statistics the backward needs.
pub struct LayerNormOut {
    /// [..., D], the shape of x.
    pub y: Tensor,
    /// [rows], rows = product of x's leading dims.
    pub mean: Tensor,
    /// [rows], 1 / sqrt(var + eps).
    pub rstd: Tensor,
}

/// Gradients of the loss with respect to LayerNorm's inputs.
pub struct LayerNormGrads {
    /// [..., D], the shape of x.
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
    check_width(op, x, weight, "weight")?;
    check_width(op, x, bias, "bias")?;
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::shape(op, format!("eps must be a finite number ≥ 0, got {eps}")));
    }
    let (rows, d) = (x.rows(), x.last_dim());
    let y = x.empty_like_shape(x.shape())?;
    let mean = x.empty_like_shape(&[rows])?;
    let rstd = x.empty_like_shape(&[rows])?;
    let params = Params::new().dim(rows).dim(d).f32(eps).bytes();
    let buffers = [(1, x.buffer()), (2, weight.buffer()), (3, bias.buffer()), (4, y.buffer()), (5, mean.buffer()), (6, rstd.buffer())];
    x.gpu().dispatch(&SHADER, op, &params, &buffers, grid_rows(x.gpu(), op, rows)?)?;
    Ok(LayerNormOut { y, mean, rstd })
}

/// Gradients of [`layernorm_forward`]. x, dy: [..., D]; weight: [D]; mean, rstd: [rows] from the
/// forward. dx always; dweight = Σ_rows dy·x̂ and dbias = Σ_rows dy only when `need_params`
/// (a frozen backbone's LayerNorm skips that kernel entirely).
pub fn layernorm_backward(
    x: &Tensor,
    weight: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    need_params: bool,
) -> Result<LayerNormGrads> {
    let op = "layernorm_backward";
    check_width(op, x, weight, "weight")?;
    check_row_stats(op, x, mean, "mean")?;
    check_row_stats(op, x, rstd, "rstd")?;
    same_device(op, x, dy)?;
    same_shape(op, x, dy, "x", "dy")?;
    let gpu = x.gpu();
    let (rows, d) = (x.rows(), x.last_dim());
    // eps is not needed: rstd already contains it.
    let params = Params::new().dim(rows).dim(d).f32(0.0).bytes();

    let dx = x.empty_like_shape(x.shape())?;
    let buffers = [(1, x.buffer()), (2, weight.buffer()), (7, mean.buffer()), (8, rstd.buffer()), (9, dy.buffer()), (10, dx.buffer())];
    gpu.dispatch(&SHADER, "layernorm_backward_dx", &params, &buffers, grid_rows(gpu, op, rows)?)?;
    if !need_params {
        return Ok(LayerNormGrads { dx, dweight: None, dbias: None });
    }

    let dweight = x.empty_like_shape(&[d])?;
    let dbias = x.empty_like_shape(&[d])?;
    let buffers = [(1, x.buffer()), (7, mean.buffer()), (8, rstd.buffer()), (9, dy.buffer()), (11, dweight.buffer()), (12, dbias.buffer())];
    gpu.dispatch(&SHADER, "layernorm_backward_params", &params, &buffers, grid_1d(gpu, d)?)?;
    Ok(LayerNormGrads { dx, dweight: Some(dweight), dbias: Some(dbias) })
}

/// A per-column parameter (weight or bias) must be [D], D = x's last dimension.
fn check_width(op: &'static str, x: &Tensor, t: &Tensor, name: &str) -> Result<()> {
    same_device(op, x, t)?;
    if t.shape() != [x.last_dim()] {
        return Err(Error::shape(
            op,
            format!("{name} has shape {:?} but x has shape {:?}; {name} must be [{}]", t.shape(), x.shape(), x.last_dim()),
        ));
    }
    Ok(())
}

/// A saved per-row statistic (mean or rstd) must be [rows] for x seen as [rows, D].
fn check_row_stats(op: &'static str, x: &Tensor, stat: &Tensor, name: &str) -> Result<()> {
    same_device(op, x, stat)?;
    if stat.shape() != [x.rows()] {
        return Err(Error::shape(
            op,
            format!("{name} has shape {:?} but x has shape {:?} ({} rows); {name} must be [{}]", stat.shape(), x.shape(), x.rows(), x.rows()),
        ));
    }
    Ok(())
}
