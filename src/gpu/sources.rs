//! Where the kernels' WGSL comes from: the copies embedded in the binary, or files that a reader
//! gives by their path under `wgsl/` (natively, the `.wgsl` files of a folder laid out as `wgsl/`:
//! `vpt check --wgsl-dir`, to try an edited kernel without rebuilding; `wgsl_dir.rs`).

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use super::shader::Shader;
use crate::error::Result;

/// Gives the text of one WGSL file by its path under `wgsl/` ("lib/flat.wgsl", "matmul.wgsl").
pub type WgslReader = Arc<dyn Fn(&str) -> Result<String> + Send + Sync>;

/// The kernel sources in use: embedded unless a reader was given.
#[derive(Default)]
pub struct KernelSources {
    reader: Mutex<Option<WgslReader>>,
}

impl KernelSources {
    /// Read every kernel through `reader` from now on.
    pub fn use_reader(&self, reader: WgslReader) {
        *self.reader.lock().unwrap() = Some(reader);
    }

    /// Whether kernels come from a reader (an edited copy) rather than from the binary.
    pub fn overridden(&self) -> bool {
        self.reader.lock().unwrap().is_some()
    }

    /// The WGSL of `shader`, as it is to be compiled.
    pub fn source(&self, shader: &Shader) -> Result<Cow<'static, str>> {
        match self.reader.lock().unwrap().as_deref() {
            Some(read) => Ok(Cow::Owned(shader.assemble(read)?)),
            None => Ok(Cow::Borrowed(shader.source)),
        }
    }

    /// The WGSL of a shader that compiled (so its files read again), for a trace.
    pub fn compiled(&self, shader: &Shader) -> String {
        self.source(shader).map_or_else(|_| shader.source.to_string(), |s| s.into_owned())
    }

    /// The same sources, for a device reopened from this one.
    pub fn copy(&self) -> KernelSources {
        KernelSources { reader: Mutex::new(self.reader.lock().unwrap().clone()) }
    }
}
