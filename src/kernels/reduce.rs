//! Reductions: sum over the leading axis ("sum over batch") and the mean of all elements.
//! Kernels in `wgsl/reduce.wgsl`.

use super::grid_1d;
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::tensor::Tensor;

wgsl_shader!("reduce", uses["flat"]);

/// Sum over the first axis. x: [R, ...rest] → y: [...rest] (a rank-1 x gives y: [1]).
pub fn sum_rows_forward(x: &Tensor) -> Result<Tensor> {
    let rows = x.shape()[0];
    let rest: Vec<usize> = if x.rank() == 1 { vec![1] } else { x.shape()[1..].to_vec() };
    let cols = x.numel() / rows;
    let y = x.empty_like_shape(&rest)?;
    let params = Params::new().dim("rows", rows).dim("cols", cols);
    x.gpu().dispatch(&SHADER, "sum_rows_forward", &params, &[Bind::read(1, x.buffer()), Bind::read_write(2, y.buffer())], grid_1d(x.gpu(), cols)?)?;
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
    let params = Params::new().dim("rows", rows).dim("cols", dy.numel());
    dy.gpu().dispatch(&SHADER, "sum_rows_backward", &params, &[Bind::read(3, dy.buffer()), Bind::read_write(4, dx.buffer())], grid_1d(dy.gpu(), dx.numel())?)?;
    Ok(dx)
}

/// Mean of all elements. x: any shape → y: [1].
pub fn mean_forward(x: &Tensor) -> Result<Tensor> {
    let y = x.empty_like_shape(&[1])?;
    let params = Params::new().u32("rows", 1).dim("cols", x.numel());
    x.gpu().dispatch(&SHADER, "mean_forward", &params, &[Bind::read(1, x.buffer()), Bind::read_write(2, y.buffer())], [1, 1, 1])?;
    Ok(y)
}

/// Gradient of [`mean_forward`]: dy [1] → dx of `shape`, every element dy/n.
pub fn mean_backward(dy: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if dy.numel() != 1 {
        return Err(Error::shape("mean_backward", format!("dy must hold one value, got shape {:?}", dy.shape())));
    }
    let dx = dy.empty_like_shape(shape)?;
    let params = Params::new().u32("rows", 1).dim("cols", dx.numel());
    dy.gpu().dispatch(&SHADER, "mean_backward", &params, &[Bind::read(3, dy.buffer()), Bind::read_write(4, dx.buffer())], grid_1d(dy.gpu(), dx.numel())?)?;
    Ok(dx)
}
