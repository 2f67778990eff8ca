//! Element-wise ops: residual add, broadcast bias add, scale, a learned rescaling of the last axis
//! (`mul_last`, IA³'s), 1/√x (`inverse_sqrt`, DoRA's norms) and in-place gradient accumulation.
//! Kernels in `wgsl/elementwise.wgsl`.

use super::{grid_1d, same_device, same_shape};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::kernels::reduce;
use crate::tensor::{DType, Tensor};

wgsl_shader!("elementwise", uses["flat"]);

/// y = a + b. a, b: same shape → y: that shape.
pub fn add_forward(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_device("add_forward", a, b)?;
    same_shape("add_forward", a, b, "a", "b")?;
    let y = a.empty_like_shape(a.shape())?;
    let params = elementwise_params(a.numel(), 0, 0.0);
    let gpu = a.gpu();
    gpu.dispatch(&SHADER, "add_forward", &params, &[Bind::read(1, a.buffer()), Bind::read(2, b.buffer()), Bind::read_write(3, y.buffer())], grid_1d(gpu, a.numel())?)?;
    Ok(y)
}

/// Gradient of [`add_forward`]: both inputs receive dy unchanged (shared, not copied).
pub fn add_backward(dy: &Tensor) -> (Tensor, Tensor) {
    (dy.clone(), dy.clone())
}

/// y = a ⊙ b (element-wise product). a, b: same shape → y: that shape.
pub fn mul_forward(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_device("mul_forward", a, b)?;
    same_shape("mul_forward", a, b, "a", "b")?;
    let y = a.empty_like_shape(a.shape())?;
    let params = elementwise_params(a.numel(), 0, 0.0);
    let gpu = a.gpu();
    gpu.dispatch(&SHADER, "mul_forward", &params, &[Bind::read(1, a.buffer()), Bind::read(2, b.buffer()), Bind::read_write(3, y.buffer())], grid_1d(gpu, a.numel())?)?;
    Ok(y)
}

/// Gradient of [`mul_forward`]: (da = dy ⊙ b, db = dy ⊙ a), each computed only if asked for.
pub fn mul_backward(a: &Tensor, b: &Tensor, dy: &Tensor, need_a: bool, need_b: bool) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let da = if need_a { Some(mul_forward(dy, b)?) } else { None };
    let db = if need_b { Some(mul_forward(dy, a)?) } else { None };
    Ok((da, db))
}

/// y[.., j] = x[.., j] + bias[j]. x: [..., N], bias: [N] → y: like x.
pub fn bias_add_forward(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    same_device("bias_add_forward", x, bias)?;
    if bias.rank() != 1 || bias.numel() != x.last_dim() {
        return Err(Error::shape("bias_add_forward", format!("bias must be [{}] to match the last axis of x {:?}, got {:?}", x.last_dim(), x.shape(), bias.shape())));
    }
    let y = x.empty_like_shape(x.shape())?;
    let params = elementwise_params(x.numel(), x.last_dim(), 0.0);
    let gpu = x.gpu();
    gpu.dispatch(&SHADER, "bias_add_forward", &params, &[Bind::read(1, x.buffer()), Bind::read(2, bias.buffer()), Bind::read_write(3, y.buffer())], grid_1d(gpu, x.numel())?)?;
    Ok(y)
}

/// Gradient of [`bias_add_forward`]: (dx = dy, dbias = Σ over every row of dy).
pub fn bias_add_backward(dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let dbias = reduce::sum_rows_forward(&dy.reshape(&[dy.rows(), dy.last_dim()])?)?;
    Ok((dy.clone(), dbias))
}

/// y[.., j] = x[.., j] · s[j]: the last axis rescaled by learned factors (IA³). x: [..., N], s: [N]
/// → y: like x. Both in f32 (an f16 weight under `--precision f16` is refused by name).
pub fn mul_last_forward(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    let op = "mul_last_forward";
    same_device(op, x, s)?;
    if s.rank() != 1 || s.numel() != x.last_dim() {
        return Err(Error::shape(op, format!("s must be [{}] to match the last axis of x {:?}, got {:?}", x.last_dim(), x.shape(), s.shape())));
    }
    if x.dtype() != DType::F32 || s.dtype() != DType::F32 {
        return Err(Error::shape(op, format!("x {:?} and s {:?} must both be f32, got {:?} and {:?}", x.shape(), s.shape(), x.dtype(), s.dtype())));
    }
    let y = x.empty_like_shape(x.shape())?;
    let params = elementwise_params(x.numel(), x.last_dim(), 0.0);
    let gpu = x.gpu();
    gpu.dispatch(&SHADER, "mul_last_forward", &params, &[Bind::read(1, x.buffer()), Bind::read(2, s.buffer()), Bind::read_write(3, y.buffer())], grid_1d(gpu, x.numel())?)?;
    Ok(y)
}

/// Gradient of [`mul_last_forward`]: (dx = dy ⊙ s, ds = Σ over every row of dy ⊙ x), each
/// computed only if asked for. ds is a product and a row sum: no kernel of its own.
pub fn mul_last_backward(x: &Tensor, s: &Tensor, dy: &Tensor, need_x: bool, need_s: bool) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dx = if need_x { Some(mul_last_forward(dy, s)?) } else { None };
    let ds = if need_s {
        let products = mul_forward(dy, x)?; // [..., N]
        Some(reduce::sum_rows_forward(&products.reshape(&[products.rows(), products.last_dim()])?)?)
    // [N]
    } else {
        None
    };
    Ok((dx, ds))
}

/// y = 1/√x, element by element (a zero gives +inf). For quantities that train as constants
/// (DoRA's detached row norms), so no backward.
pub fn inverse_sqrt_forward(x: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        return Err(Error::shape("inverse_sqrt_forward", format!("x {:?} must be f32, got {:?}", x.shape(), x.dtype())));
    }
    let y = x.empty_like_shape(x.shape())?;
    let params = elementwise_params(x.numel(), 0, 0.0);
    let gpu = x.gpu();
    gpu.dispatch(&SHADER, "inverse_sqrt_forward", &params, &[Bind::read(1, x.buffer()), Bind::read_write(3, y.buffer())], grid_1d(gpu, x.numel())?)?;
    Ok(y)
}

/// y = s·x. Also the backward of itself: dx = s·dy.
pub fn scale_forward(x: &Tensor, s: f32) -> Result<Tensor> {
    let y = x.empty_like_shape(x.shape())?;
    let params = elementwise_params(x.numel(), 0, s);
    let gpu = x.gpu();
    gpu.dispatch(&SHADER, "scale_forward", &params, &[Bind::read(1, x.buffer()), Bind::read_write(3, y.buffer())], grid_1d(gpu, x.numel())?)?;
    Ok(y)
}

/// Gradient of [`scale_forward`].
pub fn scale_backward(dy: &Tensor, s: f32) -> Result<Tensor> {
    scale_forward(dy, s)
}

/// acc += x, in place. Used to sum gradients arriving at one tensor by several paths (a residual
/// stream feeds both the block and the skip connection).
pub fn accumulate(acc: &Tensor, x: &Tensor) -> Result<()> {
    same_device("accumulate", acc, x)?;
    same_shape("accumulate", acc, x, "acc", "x")?;
    if acc.same_storage(x) {
        return Err(Error::shape("accumulate", "acc and x share storage; accumulate a copy instead"));
    }
    let params = elementwise_params(acc.numel(), 0, 0.0);
    let gpu = acc.gpu();
    gpu.dispatch(&SHADER, "accumulate", &params, &[Bind::read(1, x.buffer()), Bind::read_write(4, acc.buffer())], grid_1d(gpu, acc.numel())?)
}

/// The family's `Params`: `n` elements, `cols` (bias_add's and mul_last's N), `s` (scale's factor); an entry
/// point ignores the fields it does not read.
fn elementwise_params(n: usize, cols: usize, s: f32) -> Params {
    Params::new().dim("n", n).dim("cols", cols).f32("s", s)
}
