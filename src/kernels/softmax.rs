//! Softmax over the last axis, numerically stable (the row max is subtracted before `exp`).
//! Kernels in `wgsl/softmax.wgsl`.

use super::{check_workgroup_threads, dispatch_per_row, grid_rows, row_reduce_shader, row_workgroup_threads};
use super::{same_device, same_shape};
use crate::error::Result;
use crate::gpu::{wgsl_shader, Bind, Gpu, Params, Shader};
use crate::tensor::Tensor;

wgsl_shader!("softmax", uses["row_reduce"]);
wgsl_shader!(SHADER_SUBGROUP = "softmax" as "softmax_subgroup", needs SUBGROUP, uses ["row_reduce_subgroup"]);

/// The family compiled with subgroup reductions where the adapter has them (see
/// [`row_reduce_shader`]).
fn shader(gpu: &Gpu) -> &'static Shader {
    row_reduce_shader(gpu, &SHADER, &SHADER_SUBGROUP)
}

/// y = softmax(x) along the last axis. x: [..., n] (rows = product of the leading dims) → y: same shape.
pub fn softmax_forward(x: &Tensor) -> Result<Tensor> {
    softmax_scaled_forward(x, 1.0)
}

/// dx = y ⊙ (dy − Σ_j dy_j·y_j) per row, from the forward's output y. y, dy: [..., n] → dx: same shape.
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    softmax_scaled_backward(y, dy, 1.0)
}

/// y = softmax(s·x) along the last axis, in one pass: attention's softmax(q·kᵀ/√hd).
pub fn softmax_scaled_forward(x: &Tensor, scale: f32) -> Result<Tensor> {
    softmax_scaled_forward_with_threads(row_workgroup_threads(x.gpu()), x, scale)
}

/// [`softmax_scaled_forward`] with `threads` per row in place of [`row_workgroup_threads`]'s: for
/// tests that run another adapter's choice here.
pub fn softmax_scaled_forward_with_threads(threads: u32, x: &Tensor, scale: f32) -> Result<Tensor> {
    let op = "softmax_forward";
    check_workgroup_threads(op, threads)?;
    let (rows, n) = (x.rows(), x.last_dim());
    let y = x.empty_like_shape(x.shape())?;
    let params = Params::new().dim("rows", rows).dim("n", n).f32("scale", scale);
    dispatch_per_row(x.gpu(), shader(x.gpu()), op, threads, &params, &[Bind::read(1, x.buffer()), Bind::read_write(2, y.buffer())], grid_rows(x.gpu(), op, rows)?)?;
    Ok(y)
}

/// Gradient of [`softmax_scaled_forward`]: dx = s · y ⊙ (dy − Σ_j dy_j·y_j) per row.
pub fn softmax_scaled_backward(y: &Tensor, dy: &Tensor, scale: f32) -> Result<Tensor> {
    softmax_scaled_backward_with_threads(row_workgroup_threads(y.gpu()), y, dy, scale)
}

/// [`softmax_scaled_backward`] with `threads` per row, as [`softmax_scaled_forward_with_threads`].
pub fn softmax_scaled_backward_with_threads(threads: u32, y: &Tensor, dy: &Tensor, scale: f32) -> Result<Tensor> {
    let op = "softmax_backward";
    check_workgroup_threads(op, threads)?;
    same_device(op, y, dy)?;
    same_shape(op, y, dy, "y", "dy")?;
    let (rows, n) = (y.rows(), y.last_dim());
    let dx = y.empty_like_shape(y.shape())?;
    let params = Params::new().dim("rows", rows).dim("n", n).f32("scale", scale);
    dispatch_per_row(y.gpu(), shader(y.gpu()), op, threads, &params, &[Bind::read(3, y.buffer()), Bind::read(4, dy.buffer()), Bind::read_write(5, dx.buffer())], grid_rows(y.gpu(), op, rows)?)?;
    Ok(dx)
}
