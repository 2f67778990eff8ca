//! The log of kernel launches, for tests and benchmarks: how many, and per entry point how it was
//! last launched ([`LaunchRecord`]), which `tests/contract.rs` holds against the WGSL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::launch::Launch;
use super::shader::{Access, ParamType};

/// What one entry point was launched with, as the launchers built it: recorded at every launch
/// (the last one wins) for `tests/contract.rs`, and counted for tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct LaunchRecord {
    /// The shader's full source, as compiled.
    pub source: &'static str,
    pub entry: &'static str,
    pub params: Vec<(&'static str, ParamType)>,
    pub bindings: Vec<(u32, Access)>,
    /// The bindings of the textures it read.
    pub texels: Vec<u32>,
    /// How many times this entry point was launched.
    pub count: u64,
}

/// Every launch of one device, counted and kept by entry point.
#[derive(Default)]
pub struct LaunchLog {
    dispatches: AtomicU64,
    launches: Mutex<HashMap<String, LaunchRecord>>,
}

impl LaunchLog {
    /// Count the launch and keep what it bound.
    pub fn note(&self, launch: &Launch) {
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        let mut launches = self.launches.lock().unwrap();
        let record = launches.entry(launch.op.to_string()).or_default();
        *record = LaunchRecord {
            source: launch.shader.source,
            entry: launch.entry,
            params: launch.params.fields().to_vec(),
            bindings: launch.buffers.iter().map(|b| (b.binding, b.access)).collect(),
            texels: launch.texels.iter().map(|t| t.binding).collect(),
            count: record.count + 1,
        };
    }

    /// Launches so far.
    pub fn count(&self) -> u64 {
        self.dispatches.load(Ordering::Relaxed)
    }

    /// Launches per "shader::entry".
    pub fn counts(&self) -> HashMap<String, u64> {
        self.launches.lock().unwrap().iter().map(|(op, r)| (op.clone(), r.count)).collect()
    }

    /// Every entry point launched, with its last launch.
    pub fn records(&self) -> HashMap<String, LaunchRecord> {
        self.launches.lock().unwrap().clone()
    }
}
