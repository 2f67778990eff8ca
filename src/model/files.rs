//! The model's files on disk (native): a checkpoint, a task's tensors, a batch, a step's
//! gradients. What their bytes mean is `vit.rs`'s and `vpt.rs`'s; this file only reads and writes.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::io::{write_atomically, TensorFile};
use crate::model::vit::{LoadOptions, StateDict, Vit};
use crate::model::vpt::{batch_from_file, step_to_bytes, VptStep, VptTask};
use crate::tensor::Tensor;

impl StateDict {
    /// Read a timm state dict from a `.safetensors` file (f32, f16 or bf16 storage).
    pub fn read(path: &str) -> Result<StateDict> {
        StateDict::from_file(TensorFile::read(path)?)
    }
}

impl Vit {
    /// Read a `.safetensors` checkpoint with timm names and upload it.
    pub fn load(gpu: &Gpu, path: &str, opts: &LoadOptions) -> Result<Vit> {
        Vit::from_state_dict(gpu, &StateDict::read(path)?, opts)
    }
}

impl VptTask {
    /// Read a task file ([`VptTask::from_file`] says what it holds).
    pub fn read(gpu: &Gpu, path: &str) -> Result<VptTask> {
        VptTask::from_file(gpu, &TensorFile::read(path)?)
    }
}

/// Read a batch file ([`batch_from_file`] says what it holds).
pub fn read_batch(gpu: &Gpu, path: &str) -> Result<(Tensor, Vec<u32>)> {
    batch_from_file(gpu, &TensorFile::read(path)?)
}

/// Write logits, loss and the gradients (the `vpt grad` output format), atomically.
pub fn write_step(path: &str, step: &VptStep) -> Result<()> {
    write_atomically(std::path::Path::new(path), &step_to_bytes(path, step)?)
}
