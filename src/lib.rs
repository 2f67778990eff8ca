//! vpt-wgsl: a small tensor engine whose every kernel is hand-written WGSL, run through wgpu on
//! Vulkan, Metal, DX12 or GL, built for Visual Prompt Tuning of Vision Transformers.
//!
//! Layers, each using only those above it in this list:
//! - [`error`], [`rng`], [`hash`]: the crate's error type; the one seeded random generator; the
//!   one fingerprint (FNV-1a).
//! - [`gpu`]: adapter, device, buffers, pipelines, the kernel launch; the Rust↔WGSL contract.
//! - [`tensor`]: f32 tensors on the GPU.
//! - [`kernels`]: one launcher per WGSL family, `*_forward` beside `*_backward`;
//!   [`reference`]: plain f64 CPU versions of every kernel, the yardstick for the tests.
//! - [`graph`]: the autodiff tape and differentiable ops.
//! - [`io`]: `.safetensors` reading and atomic writing.
//! - [`model`]: the frozen ViT, visual prompts, timm's position-embedding resampling, synthetic weights.
//! - [`train`]: optimizer and schedule, `vpt train`, task files, prediction, the data pipeline.
//! - [`check`]: `vpt check`, every kernel on this adapter against PyTorch fixtures and f64.
//! - [`bench`]: the kernel and training-step benchmarks of `vpt bench` and `cargo bench`.
//! - [`lab`]: `vpt record` and `vpt lab`, the engine's GPU work replayed in a browser.
//! - [`demo`]: `vpt demo`, the whole job on bundled data.

pub mod bench;
pub mod check;
pub mod demo;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod hash;
pub mod io;
pub mod kernels;
pub mod lab;
pub mod model;
pub mod reference;
pub mod rng;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::{DType, Labels, Tensor};
