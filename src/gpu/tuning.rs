//! Kernel choices measured on this adapter by `vpt tune`, kept in a per-adapter cache file
//! (`tune_cache.rs`, native) and read when a command opens the device, never while it runs: the
//! same inputs on the same machine always take the same kernels.
//!
//! The store is a map from a key the kernel layer defines ("matmul 1976x2304x768 nt",
//! "row_reduce", "attention") to the name of the variant that won ("reg32x8", "subgroups",
//! "fused"). This layer knows nothing of kernels: it files strings, keyed by adapter.

use std::collections::BTreeMap;
use std::path::Path;
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

pub(super) fn driver_text(info: &wgpu::AdapterInfo) -> String {
    format!("{} {}", info.driver, info.driver_info).trim().to_string()
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
