//! Where the kernels' WGSL comes from: the copies embedded in the binary, or the `.wgsl` files
//! of a folder laid out as `wgsl/` (`vpt check --wgsl-dir`, to try an edited kernel without
//! rebuilding).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::shader::Shader;
use crate::error::{Error, Result};

/// The kernel sources in use: embedded unless a folder was given.
#[derive(Default)]
pub struct KernelSources {
    dir: Mutex<Option<PathBuf>>,
}

impl KernelSources {
    /// Read every kernel from `dir` from now on. An error unless it has a `lib/` folder.
    pub fn use_dir(&self, dir: &Path) -> Result<()> {
        if !dir.join("lib").is_dir() {
            return Err(Error::invalid("--wgsl-dir", format!("{} has no lib/ folder; give a copy of the repository's wgsl/ folder", dir.display())));
        }
        *self.dir.lock().unwrap() = Some(dir.to_path_buf());
        Ok(())
    }

    /// The WGSL of `shader`, as it is to be compiled.
    pub fn source(&self, shader: &Shader) -> Result<Cow<'static, str>> {
        match self.dir.lock().unwrap().as_deref() {
            Some(dir) => Ok(Cow::Owned(shader.source_in(dir)?)),
            None => Ok(Cow::Borrowed(shader.source)),
        }
    }

    /// The WGSL of a shader that compiled (so its folder reads again), for a trace.
    pub fn compiled(&self, shader: &Shader) -> String {
        self.source(shader).map_or_else(|_| shader.source.to_string(), |s| s.into_owned())
    }

    /// The same sources, for a device reopened from this one.
    pub fn copy(&self) -> KernelSources {
        KernelSources { dir: Mutex::new(self.dir.lock().unwrap().clone()) }
    }
}
