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
//! - [`io`]: `.safetensors` to and from bytes; on disk, a bounded read and an atomic write.
//! - [`model`]: the frozen ViT, visual prompts, timm's position-embedding resampling, synthetic weights.
//! - [`train`]: optimizer and schedule, `vpt train`, task files, prediction, the data pipeline.
//! - [`check`]: `vpt check`, every kernel on this adapter against PyTorch fixtures and f64.
//! - [`bench`]: the kernel and training-step benchmarks of `vpt bench` and `cargo bench`.
//! - [`lab`]: `vpt record` and `vpt lab`, the engine's GPU work replayed in a browser.
//! - [`demo`]: `vpt demo`, the whole job on bundled data.
//!
//! **Core and native.** The core builds for wasm32 on wgpu's WebGPU backend (`web/build.sh`, the
//! browser package) and uses no file system, thread, process or signal (`tests/core_line.rs` reads
//! the sources to check); it waits for the GPU only by awaiting `Gpu::read_async`, so nothing
//! blocks a page (docs/architecture.md, "Nothing blocks in a browser").
//! What does is native, behind the `native` feature (on by default), each declared under
//! `#[cfg(feature = "native")]` where its folder lists its modules: `io/files.rs`,
//! `model/files.rs`, the tune cache's file and `--wgsl-dir` in `gpu/`, a training run's files,
//! resume, compare and predict in `train/`, image folders and the threaded loader in
//! `train/data/`, and `bench`, `lab` and `demo`. The core reads and writes bytes: a
//! checkpoint, a task or a batch from a [`io::TensorFile`] (`StateDict::from_file`,
//! `TaskFile::from_file`, `TaskFile::to_bytes`), images from decoded pixels
//! (`train::data::transform_image`).

pub mod check;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod hash;
pub mod io;
pub mod kernels;
pub mod model;
pub mod reference;
pub mod rng;
pub mod tensor;
pub mod train;
// Native: the commands' library parts, which read folders, write files and serve pages.
#[cfg(feature = "native")]
pub mod bench;
#[cfg(feature = "native")]
pub mod demo;
#[cfg(feature = "native")]
pub mod lab;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::{DType, Labels, Tensor};
