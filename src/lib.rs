//! vpt-wgsl: a small tensor engine whose every kernel is hand-written WGSL, run through wgpu on
//! Vulkan, Metal, DX12 or GL, built for Visual Prompt Tuning of Vision Transformers.
//!
//! - [`gpu`]: adapter choice, device, pipeline cache, kernel dispatch.
//! - [`tensor`]: f32 tensors on the GPU.
//! - [`kernels`]: one module per WGSL family, `*_forward` beside `*_backward`.
//! - [`io`]: `.safetensors` reading and atomic writing.
//! - [`reference`]: plain f64 CPU versions of every kernel, the yardstick for the tests.

pub mod bench;
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod reference;
pub mod tensor;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::{Labels, Tensor};
