//! Reductions: sum over the leading axis ("sum over batch") and the mean of all elements.
//! Kernels in `wgsl/reduce.wgsl`.

use super::{grid_1d, wgsl_shader};
use crate::error::{Error, Result};
use crate::gpu::Params;
use crate::tensor::Tensor;

wgsl_shader!("reduce");

/// Sum over the first axis. x: [R, ...rest] → y: [...rest] (a rank-1 x gives y: [1]).
pub fn sum_rows_forward(x: &Tensor) -> Result<Tensor> {
    let rows = x.shape()[0];
    let rest: Vec<usize> = if x.rank() == 1 { vec![1] } else { x.shape()[1..].to_vec() };
    let cols = x.numel() / rows;
    let y = x.empty_like_shape(&rest)?;
    let params = Params::new().dim(rows).dim(cols).bytes();
    x.gpu().dispatch(&SHADER, "sum_rows_forward", &params, &[(1, x.buffer()), (2, y.buffer())], grid_1d(x.gpu(), cols)?)?;
    Ok(y)
}

/// Gradient of [`sum_rows_forward`]: dy [...rest] broadcast to dx [rows, ...rest].
pub fn sum_rows_backward(dy: &Tensor, rows: usize) -> Result<Tensor> {
    if rows == 0 {
        return Err(Error::shape("sum_rows_backward", "rows must be at least 1"));
    }
    let mut shape = vec![rows];
    shape.extend_from_slice(dy.shape());
    let dx = dy.empty_like_shape(&shape)?;
    let params = Params::new().dim(rows).dim(dy.numel()).bytes();
    dy.gpu().dispatch(&SHADER, "sum_rows_backward", &params, &[(3, dy.buffer()), (4, dx.buffer())], grid_1d(dy.gpu(), dx.numel())?)?;
    Ok(dx)
}

/// Mean of all elements. x: any shape → y: [1].
pub fn mean_forward(x: &Tensor) -> Result<Tensor> {
    let y = x.empty_like_shape(&[1])?;
    let params = Params::new().u32(1).dim(x.numel()).bytes();
    x.gpu().dispatch(&SHADER, "mean_forward", &params, &[(1, x.buffer()), (2, y.buffer())], [1, 1, 1])?;
    Ok(y)
}

/// Gradient of [`mean_forward`]: dy [1] → dx of `shape`, every element dy/n.
pub fn mean_backward(dy: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if dy.numel() != 1 {
        return Err(Error::shape("mean_backward", format!("dy must hold one value, got shape {:?}", dy.shape())));
    }
    let dx = dy.empty_like_shape(shape)?;
    let params = Params::new().u32(1).dim(dx.numel()).bytes();
    dy.gpu().dispatch(&SHADER, "mean_backward", &params, &[(3, dy.buffer()), (4, dx.buffer())], grid_1d(dy.gpu(), dx.numel())?)?;
    Ok(dx)
}
