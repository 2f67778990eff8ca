//! The GPU context, and the life of a kernel launch from a `Tensor` to `queue.submit`.
//!
//! Every op in `kernels/` ends in one call, [`Gpu::dispatch`]. What happens then, in order:
//! 1. the op has checked shapes on the CPU (never trust the GPU to catch them) and allocated its
//!    output tensor: a storage buffer (`memory.rs`);
//! 2. [`Gpu::dispatch`] fetches the compiled pipeline for `(shader, entry point)`, compiling the
//!    WGSL once on first use (`pipelines.rs`); [`Gpu::dispatch_specialized`] does the same for
//!    `(shader, entry point, override constants)`;
//! 3. it writes the op's small parameters ([`Params`]) into a uniform buffer at binding 0 and puts
//!    the tensors' storage buffers at the bindings the WGSL declares ([`Bind`]): a *bind group*;
//! 4. it records one compute pass (pipeline + bind group + grid of workgroups) into the *pending*
//!    command encoder. Nothing runs yet: commands are batched, and [`Gpu::flush`] finishes the
//!    encoder and hands it to `queue.submit`. Reading a tensor back (`readback.rs`) flushes, and
//!    so does a long enough chain of launches, or one that lets go of enough buffers. After a
//!    submit the host waits while the GPU has more than a few submissions unfinished: what the
//!    driver must keep for work not yet run stays bounded (`in_flight.rs`).
//!
//! The rest of the folder, each a concern a first reading can skip: `adapter.rs` (which adapter,
//! which features), `shader.rs` (the Rust↔WGSL contract; `launch.rs`, what one launch binds),
//! `aides.rs` (what a launch consults besides the device: kernel sources, tuned choices, the
//! launch log, the trace; each a type of its own), `memory.rs` (buffers and their pool),
//! `pipelines.rs` (compile cache, error scopes), `readback.rs`, `profile.rs` (kernel timing) and
//! `gl_turns.rs` (one thread at a time on wgpu's GL backend). Two are native (they read files):
//! `tune_cache.rs` (where `vpt tune`'s choices are kept) and `wgsl_dir.rs` (`--wgsl-dir`).

mod adapter;
mod aides;
mod gl_turns;
mod in_flight;
mod launch;
mod launch_log;
mod memory;
mod pipelines;
mod profile;
mod readback;
mod shader;
mod sources;
mod texels;
mod trace;
mod tuning;
// Native: the tune cache's file and `--wgsl-dir` read the file system.
#[cfg(feature = "native")]
mod tune_cache;
#[cfg(feature = "native")]
mod wgsl_dir;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use wgpu::util::DeviceExt;

pub use adapter::{backends_from_env, list_adapters, AdapterReport, LARGEST_SHARED_BLOCK_BYTES, MEMORY_HINTS};
pub use in_flight::{MAX_IN_FLIGHT, MAX_RELEASED_BEFORE_SUBMIT};
pub use launch::{Bind, Launch, TexelBind};
pub use launch_log::LaunchRecord;
pub use memory::{DriverBlocks, GpuBuffer};
pub use profile::{KernelTime, Profile, TimingMethod};
pub(crate) use shader::wgsl_shader;
pub use shader::{Access, Constants, ParamType, Params, Shader, WG_1D};
pub use sources::WgslReader;
pub use texels::{Texels, TEXELS_PER_ROW};
pub use trace::{BlobRange, Trace, TraceOp, TracedShader};
pub use tuning::KernelChoices;

use crate::error::{Error, Result};

/// Submit the pending encoder after this many dispatches even if nobody reads a result, so the
/// per-dispatch uniform buffers of a long chain of ops do not pile up.
const MAX_PENDING_DISPATCHES: u32 = 512;

/// A handle to one GPU device. Cheap to clone (an `Arc`); every tensor keeps one.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<GpuInner>,
}

struct GpuInner {
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// The optional features this device was opened with.
    features: wgpu::Features,
    /// Every feature the adapter has (asked once: on GL, asking takes the context lock).
    adapter_features: wgpu::Features,
    /// What the adapter can do below WebGPU's baseline (e.g. `SHADER_F16_IN_F32`).
    downlevel: wgpu::DownlevelFlags,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<pipelines::PipelineKey, wgpu::ComputePipeline>>,
    pending: Mutex<Pending>,
    /// Errors wgpu raised outside any error scope (e.g. while a command buffer executed).
    uncaptured: Arc<Mutex<Vec<String>>>,
    memory: Arc<memory::Memory>,
    /// The texel bound where a kernel declares a texture it is told not to read
    /// ([`Gpu::stand_in_texels`]), made the first time one is needed.
    stand_in_texels: std::sync::OnceLock<Texels>,
    /// On the GL backend only: whose turn it is to call into wgpu (`gl_turns.rs`).
    turns: Option<Arc<gl_turns::Turns>>,
    /// What a launch consults besides the device: kernel sources, tuned choices, the launch log
    /// and the trace (`aides.rs`).
    aides: aides::Aides,
}

/// The commands recorded since the last submit.
#[derive(Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: u32,
    /// Set while [`Gpu::profile`] runs.
    profiler: Option<profile::Profiler>,
    /// What was submitted and is not finished yet (`in_flight.rs`).
    in_flight: in_flight::InFlight,
}

/// The pending commands, locked, in this thread's turn on GL. The lock is released before the
/// turn (fields drop in order).
struct PendingGuard<'a> {
    pending: MutexGuard<'a, Pending>,
    _turn: Option<gl_turns::Turn<'a>>,
}

impl Gpu {
    /// A bind group that does not fit its pipeline's layout can only come from edited WGSL
    /// (`vpt check --wgsl-dir`; `tests/contract.rs` holds the embedded kernels to their launchers):
    /// wgpu derives the layout from the bindings the entry point uses, so one it no longer uses is
    /// missing there. Say so, rather than wgpu's words alone.
    fn explain_bind_group_error(&self, err: Error, buffers: &[Bind]) -> Error {
        match err {
            Error::Gpu { op, msg } if self.inner.aides.sources.overridden() => {
                let bound: Vec<String> = buffers.iter().map(|b| b.binding.to_string()).collect();
                Error::Gpu {
                    op: op.clone(),
                    msg: format!(
                        "its launcher binds the uniform at 0 and buffers at [{}], but the WGSL read from `wgsl_dir` does not declare or no longer uses each of them in {op}: keep every binding the launcher binds in use. wgpu: {msg}",
                        bound.join(", ")
                    ),
                }
            }
            other => other,
        }
    }

    /// Record one kernel launch.
    ///
    /// - `params`: the kernel's uniform struct (binding 0); see [`Params`].
    /// - `buffers`: each storage buffer the entry point uses, at its binding; see [`Bind`].
    /// - `workgroups`: the grid, from [`Gpu::grid`] for 1-D problems.
    pub fn dispatch(&self, shader: &Shader, entry: &'static str, params: &Params, buffers: &[Bind], workgroups: [u32; 3]) -> Result<()> {
        self.dispatch_specialized(shader, entry, &[], params, buffers, workgroups)
    }

    /// [`Gpu::dispatch`] of an entry point whose `override` constants take the values `constants`.
    pub fn dispatch_specialized(&self, shader: &Shader, entry: &'static str, constants: Constants, params: &Params, buffers: &[Bind], workgroups: [u32; 3]) -> Result<()> {
        self.dispatch_reading_texels(shader, entry, constants, params, buffers, &[], workgroups)
    }

    /// [`Gpu::dispatch_specialized`] for a kernel that also reads textures (a matmul's B from a
    /// weight's [`Texels`]). A trace has no textures: while one records, launchers bind buffers
    /// instead ([`Gpu::tracing`]), and a texture bound anyway is an error.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_reading_texels(&self, shader: &Shader, entry: &'static str, constants: Constants, params: &Params, buffers: &[Bind], texels: &[TexelBind], workgroups: [u32; 3]) -> Result<()> {
        let op = format!("{}::{entry}", shader.name);
        if !self.inner.downlevel.contains(shader.needs_downlevel) {
            return Err(Error::Gpu {
                op,
                msg: format!("{} lacks {:?}, which this kernel needs (`vpt info` describes each adapter); use `precision` f32", self.describe(), shader.needs_downlevel - self.inner.downlevel),
            });
        }
        // A buffer of f16 values read as f32 (or the reverse) would give garbage, not an error.
        for b in buffers {
            let wants_f16 = shader.f16_bindings.contains(&b.binding);
            if b.buffer.holds_f16() != wants_f16 {
                let (holds, reads) = if wants_f16 { ("f32", "f16") } else { ("f16", "f32") };
                return Err(Error::Gpu {
                    op,
                    msg: format!(
                        "binding {} holds {holds} values but the kernel reads {reads} there (only a frozen weight, as a matmul's B operand, and an activation kept as f16 may be f16)",
                        b.binding
                    ),
                });
            }
        }
        if !texels.is_empty() && self.tracing() {
            return Err(Error::Internal { what: op, msg: "a texture bound while a trace records, which has no textures; the launcher should have bound the weight's buffer".into() });
        }
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&n| n == 0 || n > max) {
            return Err(Error::Gpu { op, msg: format!("grid {workgroups:?} outside 1..={max} per dimension") });
        }
        // The compiled kernel: WGSL → the driver's code, once per (shader, entry, constants).
        let pipeline = self.pipeline(shader, entry, constants)?;

        // The bind group: what each `@binding(n)` of the entry point refers to. Binding 0 is a
        // small uniform buffer made for this launch; the others are the tensors' buffers.
        let device = &self.inner.device;
        let bind_group = self
            .scoped(&op, || {
                let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("params"), contents: &params.padded_bytes(), usage: wgpu::BufferUsages::UNIFORM });
                let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
                entries.extend(buffers.iter().map(|b| wgpu::BindGroupEntry { binding: b.binding, resource: b.buffer.buffer.as_entire_binding() }));
                entries.extend(texels.iter().map(|t| wgpu::BindGroupEntry { binding: t.binding, resource: wgpu::BindingResource::TextureView(&t.texels.view) }));
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&op),
                    // The layout wgpu derived from the WGSL's declarations (`layout: None` at compile).
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                })
            })
            .map_err(|e| self.explain_bind_group_error(e, buffers))?;

        // One compute pass in the pending encoder. Profiling on the host clock times it alone.
        self.timed_on_host(&op, || self.record_pass(&op, &pipeline, &bind_group, workgroups))?;
        self.inner.aides.launched(&Launch { op: &op, shader, entry, constants, params, buffers, texels, grid: workgroups });
        Ok(())
    }

    /// Record one compute pass into the pending encoder; submit the encoder once it holds
    /// [`MAX_PENDING_DISPATCHES`] passes, or once the buffers let go of while it was recorded
    /// reach [`MAX_RELEASED_BEFORE_SUBMIT`] bytes (`in_flight.rs`).
    fn record_pass(&self, op: &str, pipeline: &wgpu::ComputePipeline, bind_group: &wgpu::BindGroup, workgroups: [u32; 3]) -> Result<()> {
        let device = &self.inner.device;
        let full = {
            let mut guard = self.pending();
            let pending = &mut *guard.pending;
            let mut encoder = pending.encoder.take().unwrap_or_else(|| new_encoder(device));
            {
                // Timestamps are written only while a profile runs (`profile.rs`).
                let timestamp_writes = pending.timestamps_for(device, op);
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(op), timestamp_writes });
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
            }
            pending.encoder = Some(encoder);
            pending.dispatches += 1;
            pending.dispatches >= MAX_PENDING_DISPATCHES || self.inner.memory.released_since_submit() >= MAX_RELEASED_BEFORE_SUBMIT
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Submit everything recorded so far, and report any GPU error it raised.
    pub fn flush(&self) -> Result<()> {
        self.submit_pending(|_| ())?;
        self.take_uncaptured()
    }

    /// Let `last` record into the pending encoder, then submit it, all under the lock: with
    /// several threads sharing a device, releasing the lock between taking the encoder and
    /// submitting it would let another thread's later commands reach the queue first.
    fn submit_pending(&self, last: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        let device = &self.inner.device;
        let mut guard = self.pending();
        let pending = &mut *guard.pending;
        let mut encoder = pending.encoder.take().unwrap_or_else(|| new_encoder(device));
        pending.dispatches = 0;
        self.inner.memory.reset_released_since_submit();
        let index = self.scoped("submit", || {
            last(&mut encoder);
            if let Some(p) = pending.profiler.as_mut() {
                p.resolve_timestamps(device, &mut encoder);
            }
            self.inner.queue.submit([encoder.finish()])
        })?;
        // Never let the GPU fall more than a few submissions behind (`in_flight.rs`).
        self.bound_in_flight(&mut pending.in_flight, index)
    }

    /// Record a command into the pending encoder, after everything already recorded.
    pub(super) fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let device = &self.inner.device;
        let mut guard = self.pending();
        f(guard.pending.encoder.get_or_insert_with(|| new_encoder(device)));
    }

    /// The pending commands, taken in this thread's turn (`gl_turns.rs`).
    fn pending(&self) -> PendingGuard<'_> {
        let turn = self.turn();
        PendingGuard { pending: self.inner.pending.lock().unwrap(), _turn: turn }
    }

    /// A grid of `n` workgroups laid out in x then y, since one dimension holds at most 65535
    /// (on most adapters). Kernels recover the flat index as `wid.y * num_workgroups.x + wid.x`.
    pub fn grid(&self, n: u32) -> [u32; 3] {
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        let n = n.max(1);
        if n <= max {
            [n, 1, 1]
        } else {
            let y = n.div_ceil(max);
            [n.div_ceil(y), y, 1]
        }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.inner.adapter
    }
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }
    /// "llvmpipe (LLVM 15.0.6, 256 bits) on Vulkan": for test and benchmark output; "… without
    /// SUBGROUP" where the device was opened without an optional feature its adapter has.
    pub fn describe(&self) -> String {
        let left_off = self.inner.adapter_features & adapter::WANTED_FEATURES & !self.inner.features;
        let without = if left_off.is_empty() { String::new() } else { format!(" without {}", feature_names(left_off)) };
        format!("{} on {:?}{without}", self.inner.info.name, self.inner.info.backend)
    }
    /// The same adapter opened again as a new device, with the optional features in `without`
    /// left off (see [`Gpu::with_backends_without`]).
    /// Kernel sources come from the same place (`Gpu::use_wgsl_dir`).
    pub fn reopen_without(&self, without: wgpu::Features) -> Result<Gpu> {
        pollster::block_on(self.reopen_without_async(without))
    }
    /// Does this device run subgroup operations (the row kernels' subgroup reductions)?
    pub fn has_subgroups(&self) -> bool {
        self.inner.features.contains(wgpu::Features::SUBGROUP)
    }
    /// Are these two handles the same device?
    pub fn same_device(&self, other: &Gpu) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
    /// Kernel launches recorded since the device was opened.
    pub fn dispatch_count(&self) -> u64 {
        self.inner.aides.log.count()
    }
    /// Kernel launches per "shader::entry" (e.g. "matmul::matmul_tiled") since the device was opened.
    pub fn dispatch_counts(&self) -> HashMap<String, u64> {
        self.inner.aides.log.counts()
    }
    /// Every entry point launched since the device was opened, with the params and bindings of
    /// its last launch: what `tests/contract.rs` checks against the WGSL.
    pub fn launches(&self) -> HashMap<String, LaunchRecord> {
        self.inner.aides.log.records()
    }
}

/// "subgroups, f16": the optional features in `features`, as `vpt info` names them.
pub fn feature_names(features: wgpu::Features) -> String {
    let named = [
        (wgpu::Features::SUBGROUP, "subgroups"),
        (wgpu::Features::SHADER_F16, "f16"),
        (wgpu::Features::TIMESTAMP_QUERY, "timestamps"),
        (wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS, "timestamps in encoders"),
        (wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES, "timestamps in passes"),
    ];
    let names: Vec<&str> = named.iter().filter(|(f, _)| features.contains(*f)).map(|&(_, n)| n).collect();
    names.join(", ")
}

/// The encoder that collects the ops' commands until the next submit.
fn new_encoder(device: &wgpu::Device) -> wgpu::CommandEncoder {
    device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ops") })
}
