//! `vpt check --wgsl-dir` (native): compile every kernel from the `.wgsl` files of a folder laid
//! out as `wgsl/` (families, and `lib/`) instead of the copies embedded in the binary, to try an
//! edited kernel without rebuilding.

use std::path::Path;
use std::sync::Arc;

use super::Gpu;
use crate::error::{Error, Result};

impl Gpu {
    /// Read every kernel from `dir` from now on. Must come before the first launch; an error
    /// unless `dir` has a `lib/` folder.
    pub fn use_wgsl_dir(&self, dir: &Path) -> Result<()> {
        if !dir.join("lib").is_dir() {
            return Err(Error::invalid("wgsl_dir", format!("{} has no lib/ folder; give a copy of the repository's wgsl/ folder", dir.display())));
        }
        let dir = dir.to_path_buf();
        let read = move |relative: &str| {
            let path = dir.join(relative);
            // A kernel's source is tens of kilobytes.
            crate::io::read_regular_text(&path, 16 << 20).map_err(|e| Error::invalid("wgsl_dir", format!("{}: {e}", path.display())))
        };
        // The refusal is about the setting that gave the sources: name it, not "kernel sources".
        self.use_kernel_sources(Arc::new(read)).map_err(|e| match e {
            Error::Invalid { msg, .. } => Error::invalid("wgsl_dir", msg),
            other => other,
        })
    }
}
