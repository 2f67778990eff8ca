//! Recording the GPU work, for replay elsewhere (`vpt record`, `vpt lab`, `benches/browser/`).
//!
//! While a trace is recording ([`Gpu::start_trace`]), every call that reaches the GPU through
//! this folder appends one op, in the order the engine made them:
//! - `create`: a storage buffer of `bytes`, zero-filled, or holding uploaded bytes (kept in the
//!   blob). A buffer reused from the pool is recorded as a new one: the replay's buffers are
//!   fresh, so a cleared reuse and a new zeroed buffer are the same thing there;
//! - `dispatch`: one kernel launch — which shader (its full source, shared files resolved, kept
//!   once per shader), entry point, override constants, the uniform bytes at binding 0, the
//!   buffer at every other binding with its access, and the grid;
//! - `copy`: buffer to buffer;
//! - `read`: a read-back, with the bytes the engine got (in the blob): what a replay compares.
//!
//! That is everything the engine asks of a GPU, so replaying the ops in order on any WebGPU
//! implementation redoes the same work without knowing anything of our launchers. The file
//! format is in `docs/trace.md`.

use std::collections::HashMap;
use std::sync::Mutex;

use super::launch::Launch;
use super::shader::{Access, Shader};

/// One recorded GPU operation. Buffer ids are [`super::GpuBuffer`]'s, unique in the process.
#[derive(Clone, Debug)]
pub enum TraceOp {
    Create {
        id: u64,
        bytes: u64,
        data: Option<BlobRange>,
    },
    Dispatch {
        kernel: String,
        shader: usize,
        entry: &'static str,
        constants: Vec<(&'static str, f64)>,
        params: Vec<u8>,
        param_names: Vec<&'static str>,
        bindings: Vec<(u32, u64, Access)>,
        grid: [u32; 3],
    },
    Copy {
        src: u64,
        dst: u64,
        bytes: u64,
    },
    Read {
        id: u64,
        bytes: u64,
        data: BlobRange,
        f16: bool,
        label: Option<String>,
    },
}

/// Where some bytes sit in the trace's blob.
#[derive(Clone, Copy, Debug)]
pub struct BlobRange {
    pub offset: u64,
    pub len: u64,
}

/// A shader as a trace keeps it: the source exactly as compiled.
#[derive(Clone, Debug)]
pub struct TracedShader {
    pub name: &'static str,
    pub source: String,
    /// WebGPU's names of the optional features it needs ("subgroups", "shader-f16").
    pub needs: Vec<&'static str>,
}

/// What the engine did on the GPU while recording.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub shaders: Vec<TracedShader>,
    pub ops: Vec<TraceOp>,
    /// Uploaded and read-back bytes, referred to by [`BlobRange`]s.
    pub blob: Vec<u8>,
    shader_index: HashMap<&'static str, usize>,
}

impl Trace {
    /// Keep `bytes` in the blob, 4-byte aligned (every buffer is a multiple of 4 bytes).
    pub(super) fn keep(&mut self, bytes: &[u8]) -> BlobRange {
        let offset = self.blob.len() as u64;
        self.blob.extend_from_slice(bytes);
        self.blob.resize(self.blob.len().next_multiple_of(4), 0);
        BlobRange { offset, len: bytes.len() as u64 }
    }

    /// The index of `shader` in [`Trace::shaders`], adding it (with `source`, as compiled) on
    /// first use.
    pub(super) fn shader(&mut self, shader: &Shader, source: impl FnOnce() -> String) -> usize {
        if let Some(&i) = self.shader_index.get(shader.name) {
            return i;
        }
        let mut needs = Vec::new();
        if shader.needs.contains(wgpu::Features::SUBGROUP) {
            needs.push("subgroups");
        }
        if shader.needs.contains(wgpu::Features::SHADER_F16) {
            needs.push("shader-f16");
        }
        self.shaders.push(TracedShader { name: shader.name, source: source(), needs });
        self.shader_index.insert(shader.name, self.shaders.len() - 1);
        self.shaders.len() - 1
    }

    /// Name the most recent read-back (e.g. "loss"), so a replay can show it by name.
    pub fn label_last_read(&mut self, name: &str) {
        if let Some(TraceOp::Read { label, .. }) = self.ops.iter_mut().rev().find(|op| matches!(op, TraceOp::Read { .. })) {
            *label = Some(name.to_string());
        }
    }

    /// Kernel launches recorded.
    pub fn dispatches(&self) -> usize {
        self.ops.iter().filter(|op| matches!(op, TraceOp::Dispatch { .. })).count()
    }

    /// The trace as one file: an 8-byte little-endian length N, N bytes of JSON (the manifest:
    /// `workload`, `recorded_on`, `shaders`, `ops`), then the blob. `docs/trace.md` describes it.
    pub fn to_file_bytes(&self, workload: &str, recorded_on: &str) -> Vec<u8> {
        let shaders: Vec<serde_json::Value> = self.shaders.iter().map(|s| serde_json::json!({ "name": s.name, "needs": s.needs, "source": s.source })).collect();
        let ops: Vec<serde_json::Value> = self.ops.iter().map(op_json).collect();
        let manifest = serde_json::json!({
            "format": "vpt-trace 1",
            "workload": workload,
            "recorded_on": recorded_on,
            "blob_bytes": self.blob.len(),
            "shaders": shaders,
            "ops": ops,
        });
        let json = manifest.to_string().into_bytes();
        let mut out = Vec::with_capacity(8 + json.len() + self.blob.len());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&self.blob);
        out
    }
}

fn range_json(r: &BlobRange) -> serde_json::Value {
    serde_json::json!([r.offset, r.len])
}

fn op_json(op: &TraceOp) -> serde_json::Value {
    use serde_json::json;
    match op {
        TraceOp::Create { id, bytes, data } => match data {
            Some(r) => json!({ "op": "create", "id": id, "bytes": bytes, "data": range_json(r) }),
            None => json!({ "op": "create", "id": id, "bytes": bytes }),
        },
        TraceOp::Dispatch { kernel, shader, entry, constants, params, param_names, bindings, grid } => {
            let constants: serde_json::Map<String, serde_json::Value> = constants.iter().map(|&(k, v)| (k.to_string(), json!(v))).collect();
            // The uniform block as 32-bit words: every field is a u32 or an f32.
            let words: Vec<u32> = params.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
            let bindings: Vec<serde_json::Value> = bindings.iter().map(|&(binding, id, access)| json!([binding, id, if access == Access::ReadWrite { "read_write" } else { "read" }])).collect();
            json!({ "op": "dispatch", "kernel": kernel, "shader": shader, "entry": entry, "constants": constants,
                    "params": words, "param_names": param_names, "bindings": bindings, "grid": grid })
        }
        TraceOp::Copy { src, dst, bytes } => json!({ "op": "copy", "src": src, "dst": dst, "bytes": bytes }),
        TraceOp::Read { id, bytes, data, f16, label } => {
            let mut v = json!({ "op": "read", "id": id, "bytes": bytes, "data": range_json(data), "dtype": if *f16 { "f16" } else { "f32" } });
            if let Some(l) = label {
                v["label"] = json!(l);
            }
            v
        }
    }
}

/// The trace being recorded, if any: what the device tells of each buffer made, launch, copy and
/// read-back. One recorder is shared by a device and the devices reopened from it.
#[derive(Default)]
pub struct TraceRecorder {
    trace: Mutex<Option<Trace>>,
}

impl TraceRecorder {
    /// Let `f` append to the trace, if one is recording.
    fn traced(&self, f: impl FnOnce(&mut Trace)) {
        if let Some(trace) = self.trace.lock().unwrap().as_mut() {
            f(trace);
        }
    }

    /// A buffer `id` of `bytes`, zeroed or holding `contents`.
    pub fn created(&self, id: u64, bytes: u64, contents: Option<&[u8]>) {
        self.traced(|t| {
            let data = contents.map(|c| t.keep(c));
            t.ops.push(TraceOp::Create { id, bytes, data });
        });
    }

    /// `bytes` copied from buffer `src` to `dst`.
    pub fn copied(&self, src: u64, dst: u64, bytes: u64) {
        self.traced(|t| t.ops.push(TraceOp::Copy { src, dst, bytes }));
    }

    /// Buffer `id` read back as `data` (its values f16 or f32).
    pub fn read(&self, id: u64, data: &[u8], f16: bool) {
        self.traced(|t| {
            let kept = t.keep(data);
            t.ops.push(TraceOp::Read { id, bytes: data.len() as u64, data: kept, f16, label: None });
        });
    }

    /// A kernel launch, with its shader's source as compiled (asked for only while recording,
    /// once per shader).
    pub fn launched(&self, launch: &Launch, source: impl FnOnce() -> String) {
        self.traced(|t| {
            let index = t.shader(launch.shader, source);
            t.ops.push(TraceOp::Dispatch {
                kernel: launch.op.to_string(),
                shader: index,
                entry: launch.entry,
                constants: launch.constants.to_vec(),
                params: launch.params.padded_bytes(),
                param_names: launch.params.fields().iter().map(|&(name, _)| name).collect(),
                bindings: launch.buffers.iter().map(|b| (b.binding, b.buffer.id, b.access)).collect(),
                grid: launch.grid,
            });
        });
    }
}

impl super::Gpu {
    /// Start recording every GPU operation into a new trace (this device, and the devices
    /// reopened from it afterwards, share it). What was recorded before is dropped.
    pub fn start_trace(&self) {
        *self.inner.aides.trace.trace.lock().unwrap() = Some(Trace::default());
    }

    /// Stop recording and hand over the trace (None if none was recording). Flushes first, so the
    /// trace holds everything the engine asked for.
    pub fn take_trace(&self) -> crate::error::Result<Option<Trace>> {
        self.flush()?;
        Ok(self.inner.aides.trace.trace.lock().unwrap().take())
    }

    /// Is a trace recording? Launchers then bind buffers only: a trace holds no textures.
    pub fn tracing(&self) -> bool {
        self.inner.aides.trace.trace.lock().unwrap().is_some()
    }

    /// Name the most recent read-back in the trace (e.g. "loss").
    pub fn label_last_read(&self, name: &str) {
        self.inner.aides.trace.traced(|t| t.label_last_read(name));
    }
}
