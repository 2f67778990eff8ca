//! The tune cache's file (native): where `vpt tune` writes an adapter's kernel choices and
//! commands read them (`tuning.rs` says what they are).
//!
//! The file: `<cache>/vpt-wgsl/tune/<adapter>-<backend>-<hash of name, backend, driver>.json`,
//! where `<cache>` is `VPT_CACHE_DIR` if set, else the platform's cache folder
//! (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
//! Windows). A driver update changes the hash, so choices measured on the old driver are not used.

use std::path::PathBuf;

use super::tuning::{driver_text, KernelChoices};
use super::Gpu;
use crate::error::{Error, Result};

/// The platform's cache folder for vpt-wgsl (see the module docs).
fn cache_root() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env("VPT_CACHE_DIR") {
        return Some(dir);
    }
    let base = if cfg!(target_os = "windows") {
        env("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        env("HOME").map(|h| h.join("Library/Caches"))
    } else {
        env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("vpt-wgsl"))
}

impl Gpu {
    /// Where `vpt tune` writes, and commands read, this adapter's kernel choices; `None` where the
    /// platform has no cache folder (no HOME).
    pub fn tune_cache_path(&self) -> Option<PathBuf> {
        let info = self.info();
        let backend = format!("{:?}", info.backend);
        let hash = crate::hash::fnv1a64(format!("{}\0{backend}\0{}", info.name, driver_text(info)).as_bytes());
        let name: String = info.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        Some(cache_root()?.join("tune").join(format!("{name}-{}-{hash:016x}.json", backend.to_lowercase())))
    }

    /// Use the kernel choices of this adapter's tune cache, if the file exists. Returns its path
    /// then. A file that does not parse, or was measured on another adapter or driver, is an
    /// error naming it (never a silent fall-back to other kernels).
    pub fn load_tune_cache(&self) -> Result<Option<PathBuf>> {
        let Some(path) = self.tune_cache_path() else { return Ok(None) };
        if !path.exists() {
            return Ok(None);
        }
        // A cache file is a few kilobytes; 16 MiB is far beyond any `vpt tune` writes.
        let text = crate::io::read_regular_text(&path, 16 << 20).map_err(|msg| Error::Format { path: path.display().to_string(), msg: format!("{msg}; delete it or run `vpt tune` again") })?;
        let choices = KernelChoices::from_json(&path, &text)?;
        let here = KernelChoices::for_gpu(self, "");
        if (&choices.adapter, &choices.backend, &choices.driver) != (&here.adapter, &here.backend, &here.driver) {
            return Err(Error::Format {
                path: path.display().to_string(),
                msg: format!(
                    "measured on {} ({}, {}), not this {} ({}, {}); delete it or run `vpt tune` again",
                    choices.adapter, choices.backend, choices.driver, here.adapter, here.backend, here.driver
                ),
            });
        }
        self.use_choices(choices);
        Ok(Some(path))
    }
}
