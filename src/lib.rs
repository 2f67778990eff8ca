//! vpt-wgsl: a small tensor engine whose every kernel is hand-written WGSL, run through wgpu on
//! Vulkan, Metal, DX12 or GL, built for Visual Prompt Tuning of Vision Transformers.
//!
//! - [`gpu`]: adapter choice, device, pipeline cache, kernel dispatch.
//! - [`tensor`]: f32 tensors on the GPU.
//! - [`kernels`]: one module per WGSL family, `*_forward` beside `*_backward`.
//! - [`io`]: `.safetensors` reading and atomic writing.
//! - [`reference`]: plain f64 CPU versions of every kernel, the yardstick for the tests.
//! - [`graph`]: the autodiff tape and differentiable ops.
//! - [`vit`], [`vpt`], [`train`]: the frozen ViT, visual prompts, and training steps.
//! - [`data`]: image folders, the stratified train/val split, transforms, the epoch loader.
//! - [`task`], [`fit`], [`predict`]: task files, `vpt train`, and several tasks served from one backbone.
//! - [`pos_embed`], [`synthetic`]: timm's position-embedding resampling; seeded synthetic weights.

pub mod bench;
pub mod data;
pub mod demo;
pub mod error;
pub mod fit;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod kernels;
pub mod pos_embed;
pub mod predict;
pub mod reference;
pub mod rng;
pub mod synthetic;
pub mod task;
pub mod tensor;
pub mod train;
pub mod vit;
pub mod vpt;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::{Labels, Tensor};
