//! Kernel choices measured on this adapter by `vpt tune`, kept in a per-adapter cache file and
//! read when a command opens the device, never while it runs: the same inputs on the same machine
//! always take the same kernels.
//!
//! The store is a map from a key the kernel layer defines ("matmul 1976x2304x768 nt",
//! "row_reduce", "attention") to the name of the variant that won ("reg32x8", "subgroups",
//! "fused"). This layer knows nothing of kernels: it files strings, keyed by adapter.
//!
//! The file: `<cache>/vpt-wgsl/tune/<adapter>-<backend>-<hash of name, backend, driver>.json`,
//! where `<cache>` is `VPT_CACHE_DIR` if set, else the platform's cache folder
//! (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
//! Windows). A driver update changes the hash, so choices measured on the old driver are not used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Gpu;
use crate::error::{Error, Result};

/// Variant names by key, and where they were measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelChoices {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    /// What was measured (e.g. "vit-b batch 8"), for `vpt info`.
    pub measured_on: String,
    pub choices: BTreeMap<String, String>,
}

impl KernelChoices {
    /// An empty set for `gpu`'s adapter.
    pub fn for_gpu(gpu: &Gpu, measured_on: &str) -> KernelChoices {
        let info = gpu.info();
        KernelChoices { adapter: info.name.clone(), backend: format!("{:?}", info.backend), driver: driver_text(info), measured_on: measured_on.into(), choices: BTreeMap::new() }
    }

    pub fn to_json(&self) -> String {
        let value = serde_json::json!({
            "adapter": self.adapter, "backend": self.backend, "driver": self.driver,
            "measured_on": self.measured_on, "choices": self.choices,
        });
        serde_json::to_string_pretty(&value).expect("a JSON value serialises") + "\n"
    }

    /// Parse a cache file; an error names the file and what is wrong with it.
    pub fn from_json(path: &Path, text: &str) -> Result<KernelChoices> {
        let bad = |msg: &str| Error::Format { path: path.display().to_string(), msg: format!("{msg}; delete the file or run `vpt tune` again") };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let text_field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| bad(&format!("no text field {name:?}")));
        let mut choices = BTreeMap::new();
        for (key, v) in value.get("choices").and_then(|c| c.as_object()).ok_or_else(|| bad("no \"choices\" object"))? {
            choices.insert(key.clone(), v.as_str().ok_or_else(|| bad(&format!("choice {key:?} is not a name")))?.to_string());
        }
        Ok(KernelChoices { adapter: text_field("adapter")?, backend: text_field("backend")?, driver: text_field("driver")?, measured_on: text_field("measured_on")?, choices })
    }
}

fn driver_text(info: &wgpu::AdapterInfo) -> String {
    format!("{} {}", info.driver, info.driver_info).trim().to_string()
}

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

/// The kernel choices a device uses, once loaded: what a launch asks for the kernel of a shape.
#[derive(Default)]
pub struct TuneChoices {
    choices: Mutex<Option<KernelChoices>>,
}

impl TuneChoices {
    pub fn set(&self, choices: KernelChoices) {
        *self.choices.lock().unwrap() = Some(choices);
    }

    /// The measured choice for `key`, if choices are loaded and have one.
    pub fn get(&self, key: &str) -> Option<String> {
        self.choices.lock().unwrap().as_ref().and_then(|c| c.choices.get(key).cloned())
    }

    pub fn all(&self) -> Option<KernelChoices> {
        self.choices.lock().unwrap().clone()
    }

    /// The same choices, for a device reopened from this one.
    pub fn copy(&self) -> TuneChoices {
        TuneChoices { choices: Mutex::new(self.all()) }
    }
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
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Format { path: path.display().to_string(), msg: e.to_string() })?;
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

    /// Take these choices from now on (what [`Gpu::load_tune_cache`] does with the file's).
    pub fn use_choices(&self, choices: KernelChoices) {
        self.inner.aides.choices.set(choices);
    }

    /// The measured choice for `key`, if a tune cache is in use and has one.
    pub fn choice(&self, key: &str) -> Option<String> {
        self.inner.aides.choices.get(key)
    }

    /// The choices in use, if any.
    pub fn choices(&self) -> Option<KernelChoices> {
        self.inner.aides.choices.all()
    }
}
