//! GELU: the exact erf form of `torch.nn.GELU()` and, separately, the tanh approximation of
//! `torch.nn.GELU(approximate="tanh")`. Kernels in `wgsl/gelu.wgsl`, after the shared
//! `wgsl/lib/gelu_math.wgsl`.

use super::{grid_1d, same_device, same_shape};
use crate::error::Result;
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::tensor::Tensor;

wgsl_shader!("gelu", uses ["flat", "gelu_math"]);

/// y = x·Φ(x), element-wise. x: any shape → y: same shape.
pub fn gelu_forward(x: &Tensor) -> Result<Tensor> {
    unary(x, "gelu_forward")
}

/// dx = dy·(Φ(x) + x·φ(x)). x, dy: same shape → dx: same shape.
pub fn gelu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    unary_backward(x, dy, "gelu_backward")
}

/// y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))), element-wise.
pub fn gelu_tanh_forward(x: &Tensor) -> Result<Tensor> {
    unary(x, "gelu_tanh_forward")
}

/// Gradient of [`gelu_tanh_forward`].
pub fn gelu_tanh_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    unary_backward(x, dy, "gelu_tanh_backward")
}

fn unary(x: &Tensor, entry: &'static str) -> Result<Tensor> {
    let gpu = x.gpu();
    let y = x.empty_like_shape(x.shape())?;
    let params = Params::new().dim("n", x.numel());
    gpu.dispatch(&SHADER, entry, &params, &[Bind::read(1, x.buffer()), Bind::read_write(2, y.buffer())], grid_1d(gpu, x.numel())?)?;
    Ok(y)
}

fn unary_backward(x: &Tensor, dy: &Tensor, entry: &'static str) -> Result<Tensor> {
    let op = if entry == "gelu_backward" { "gelu_backward" } else { "gelu_tanh_backward" };
    same_device(op, x, dy)?;
    same_shape(op, x, dy, "x", "dy")?;
    let gpu = x.gpu();
    let dx = x.empty_like_shape(x.shape())?;
    let params = Params::new().dim("n", x.numel());
    gpu.dispatch(&SHADER, entry, &params, &[Bind::read(1, x.buffer()), Bind::read(3, dy.buffer()), Bind::read_write(4, dx.buffer())], grid_1d(gpu, x.numel())?)?;
    Ok(dx)
}
