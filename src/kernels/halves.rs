//! Activations kept for the backward stored as f16 (`--precision f16`): [`to_halves`] packs an
//! f32 tensor into an f16 one of the same shape, half the bytes, and [`from_halves`] widens it
//! back when the backward needs it. Kernels in `wgsl/halves.wgsl`; what is kept this way, and why
//! only that, is in `graph/kept.rs`.
//!
//! These use WGSL's core pack2x16float / unpack2x16float, so they need no SHADER_F16 (GL runs
//! them), only wgpu's downlevel SHADER_F16_IN_F32, which every backend has but lavapipe's Vulkan
//! without SHADER_F16. A kept value is within one f16 step of the f32 one (the conversion may
//! round to either neighbour); values past ±65504 are clamped to it.

use super::grid_1d;
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::tensor::{DType, Tensor};

// pack2x16float and unpack2x16float: wgpu's downlevel SHADER_F16_IN_F32, which every backend has
// except lavapipe's Vulkan without SHADER_F16.
wgsl_shader!("halves", needs downlevel [SHADER_F16_IN_F32], f16 bindings [2, 3], uses ["flat"]);

/// x: [...] f32 → the same values rounded to f16, [...] (`DType::F16`).
pub fn to_halves(x: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        return Err(Error::invalid("to_halves", format!("x {:?} is already stored as f16", x.shape())));
    }
    let halves = Tensor::zeros_f16(x.gpu(), x.shape())?;
    let gpu = x.gpu();
    let binds = [Bind::read(1, x.buffer()), Bind::read_write(2, halves.buffer())];
    gpu.dispatch(&SHADER, "to_halves", &halves_params(x.numel()), &binds, grid_1d(gpu, x.numel().div_ceil(2))?)?;
    Ok(halves)
}

/// halves: [...] f16 (from [`to_halves`]) → the same values as f32, [...].
pub fn from_halves(halves: &Tensor) -> Result<Tensor> {
    if halves.dtype() != DType::F16 {
        return Err(Error::invalid("from_halves", format!("halves {:?} is stored as f32, not f16", halves.shape())));
    }
    let y = Tensor::zeros(halves.gpu(), halves.shape())?;
    let gpu = halves.gpu();
    let binds = [Bind::read(3, halves.buffer()), Bind::read_write(4, y.buffer())];
    gpu.dispatch(&SHADER, "from_halves", &halves_params(halves.numel()), &binds, grid_1d(gpu, halves.numel().div_ceil(2))?)?;
    Ok(y)
}

/// The family's `Params`: `n`, the number of values (not of u32 pairs).
fn halves_params(n: usize) -> Params {
    Params::new().dim("n", n)
}
