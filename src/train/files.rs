//! Task files on disk (native): read, and written atomically. What they hold is `task.rs`'s.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::io::{write_atomically, TensorFile};
use crate::tensor::Tensor;
use crate::train::task::TaskFile;

impl TaskFile {
    /// Read a task file written by `vpt train`.
    pub fn read(gpu: &Gpu, path: &str) -> Result<TaskFile> {
        TaskFile::from_file(gpu, &TensorFile::read(path)?)
    }

    /// Write the task file atomically, plus `extra` tensors and metadata (the resume state).
    pub fn write(&self, path: &str, extra: &[(String, Tensor)], extra_meta: &[(String, String)]) -> Result<()> {
        write_atomically(std::path::Path::new(path), &self.to_bytes(path, extra, extra_meta)?)
    }
}
