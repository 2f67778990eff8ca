//! The GPU context: adapter choice, device, compiled-pipeline cache, and the one function every
//! kernel launch goes through ([`Gpu::dispatch`]).
//!
//! Life of a kernel launch, in order:
//! 1. the op checks shapes on the CPU (never trust the GPU to catch them);
//! 2. [`Gpu::dispatch`] fetches (or compiles once) the pipeline for `(shader, entry point)`, or
//!    with [`Gpu::dispatch_specialized`] for `(shader, entry point, override constants)`;
//! 3. it packs the op's small parameters into a uniform buffer at binding 0 and the tensors'
//!    storage buffers at the bindings the WGSL declares;
//! 4. it records one compute pass into the *pending* command encoder. Nothing runs yet: commands
//!    are batched and submitted together by [`Gpu::flush`], which reading a tensor back calls.
//!    While [`Gpu::profile`] runs, the pass also asks the GPU to write a timestamp as it starts
//!    and as it ends; they are resolved into a buffer at the end of the encoder and read back
//!    when the profile ends.
//!
//! wgpu reports most mistakes (a wrong binding, a buffer too large, running out of memory) through
//! "error scopes" rather than return values; [`Gpu::scoped`] turns those into `Result` errors that
//! name the op, instead of the default behaviour of panicking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Instant;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::kernels::Shader;

/// Optional features we ask for when the adapter has them. None is required: every kernel runs
/// without them. Timestamps let benchmarks time kernels on the GPU itself; f16 and subgroups are
/// for kernels that can use them.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

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
    features: wgpu::Features,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    pending: Mutex<Pending>,
    /// Errors wgpu raised outside any error scope (e.g. while a command buffer executed).
    uncaptured: Arc<Mutex<Vec<String>>>,
    stats: Arc<MemoryStats>,
    dispatches: AtomicU64,
    /// Launches per "shader::entry", for tests and benchmarks that count work.
    dispatches_by_kernel: Mutex<HashMap<String, u64>>,
    /// On the GL backend only: whose turn it is to call into wgpu (see [`Turns`]).
    turns: Option<Arc<Turns>>,
}

/// One thread at a time in wgpu, on a GL device.
///
/// wgpu's GL backend guards the GL context with a lock that it waits on for at most 6 s before
/// panicking ("Could not lock adapter context"), and it holds that lock for as long as a shader
/// compiles or the GPU takes to finish the work a `poll` waits for. Two threads sharing one GL
/// device (the test suite's do) then crash whenever one of them compiles or waits for long, e.g.
/// with Mesa's shader cache still cold, where llvmpipe compiles each matmul pipeline for seconds.
/// So on GL each `Gpu` method that reaches wgpu first takes its turn here, and a thread waits for
/// its turn as long as it takes. A thread may take its turn again while it holds it (a method
/// calling another); the turn passes on when the outermost one ends.
#[derive(Default, Debug)]
struct Turns {
    /// The thread whose turn it is, and how many nested turns it holds.
    holder: Mutex<(Option<ThreadId>, usize)>,
    passed_on: Condvar,
}

/// A turn taken with [`Turns::take`]; passes it on when dropped.
struct Turn<'a>(&'a Turns);

impl Turns {
    fn take(&self) -> Turn<'_> {
        let me = std::thread::current().id();
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        while holder.0.is_some_and(|other| other != me) {
            holder = self.passed_on.wait(holder).unwrap_or_else(|e| e.into_inner());
        }
        *holder = (Some(me), holder.1 + 1);
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut holder = self.0.holder.lock().unwrap_or_else(|e| e.into_inner());
        holder.1 -= 1;
        if holder.1 == 0 {
            holder.0 = None;
            self.0.passed_on.notify_one();
        }
    }
}

/// A compiled pipeline is one entry point of one shader with one set of override constants
/// (each value kept as its bit pattern, so the key can be hashed).
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// Values for a kernel's WGSL `override` constants, fixed when its pipeline is compiled. Each
/// distinct set compiles (once) a pipeline of its own, and the shader compiler folds the constants,
/// deleting the branches they decide: a kernel is specialised per case (matmul per transpose
/// layout) without a runtime branch in its inner loop (14–20% of matmul time on lavapipe).
pub type Constants<'a> = &'a [(&'static str, f64)];

#[derive(Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: u32,
    /// Set while [`Gpu::profile`] runs.
    profiler: Option<Profiler>,
}

/// Most bytes of idle storage buffers kept for reuse; past it a freed buffer is released.
const POOL_MAX_IDLE_BYTES: u64 = 512 << 20;

/// Tensor storage on the device: bytes alive now and the most ever alive at once, and a pool of
/// freed buffers by size, so a training loop that makes the same shapes every step reuses them
/// instead of asking the driver for new memory each time.
#[derive(Default, Debug)]
pub struct MemoryStats {
    live: AtomicU64,
    peak: AtomicU64,
    idle: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    idle_bytes: AtomicU64,
    created: AtomicU64,
    /// On GL, buffers the full pool let go: released at the next turn, since destroying a buffer
    /// takes wgpu's GL context lock and a tensor may be dropped on any thread at any time.
    released: Option<Mutex<Vec<wgpu::Buffer>>>,
}

impl MemoryStats {
    fn alloc(&self, bytes: u64) {
        let now = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
    /// A tensor let go of its buffer: keep it for reuse unless the pool is full.
    fn free(&self, buffer: wgpu::Buffer, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
        if self.idle_bytes.load(Ordering::Relaxed) + bytes <= POOL_MAX_IDLE_BYTES {
            self.idle_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.idle.lock().unwrap().entry(bytes).or_default().push(buffer);
        } else if let Some(released) = &self.released {
            released.lock().unwrap().push(buffer);
        }
    }
    fn take_idle(&self, bytes: u64) -> Option<wgpu::Buffer> {
        let buffer = self.idle.lock().unwrap().get_mut(&bytes)?.pop()?;
        self.idle_bytes.fetch_sub(bytes, Ordering::Relaxed);
        Some(buffer)
    }
}

/// A storage buffer that keeps the device's memory accounting right, and returns to the pool,
/// when it is dropped.
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    bytes: u64,
    stats: Arc<MemoryStats>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.stats.free(self.buffer.clone(), self.bytes);
    }
}

impl GpuBuffer {
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// What `vpt info` prints about one adapter.
pub struct AdapterReport {
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
}

/// The backends to try: `WGPU_BACKEND` (e.g. `vulkan`, `gl`, `metal`, `dx12`, comma-separated)
/// when set, otherwise every backend this build has.
pub fn backends_from_env() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter the given backends expose, for `vpt info`.
pub fn list_adapters(backends: wgpu::Backends) -> Vec<AdapterReport> {
    let instance = new_instance(backends);
    pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .map(|a| AdapterReport { info: a.get_info(), features: a.features(), limits: a.limits() })
        .collect()
}

/// Preference among adapters: a real GPU before a software one, and a native API before GL
/// (wgpu's GL backend lacks timestamp queries and is slower to dispatch).
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = if info.backend == wgpu::Backend::Gl { 1 } else { 0 };
    (device, api)
}

impl Gpu {
    /// Open the best adapter allowed by `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`.
    pub fn new() -> Result<Gpu> {
        Gpu::with_backends(backends_from_env())
    }

    /// Open the best adapter among `backends`, still honouring `WGPU_ADAPTER_NAME`
    /// (a case-insensitive substring of the adapter's name).
    pub fn with_backends(backends: wgpu::Backends) -> Result<Gpu> {
        let instance = new_instance(backends);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() {
            return Err(Error::NoAdapter { backends: format!("{backends:?}") });
        }
        if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
            let names: Vec<String> =
                adapters.iter().map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend)).collect();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&wanted.to_lowercase()));
            if adapters.is_empty() {
                return Err(Error::AdapterNotFound { wanted, available: names });
            }
        }
        adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
        Gpu::from_adapter(adapters.remove(0))
    }

    /// Open a device on this adapter with every limit it offers (large models need large buffers)
    /// and the optional features it has.
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Gpu> {
        let features = adapter.features() & WANTED_FEATURES;
        let limits = adapter.limits();
        let gl = adapter.get_info().backend == wgpu::Backend::Gl;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("vpt-wgsl"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Device(e.to_string()))?;

        // Without a handler wgpu panics on errors that happen outside an error scope; we keep them
        // and report them from the next flush instead.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));

        Ok(Gpu {
            inner: Arc::new(GpuInner {
                info: adapter.get_info(),
                adapter,
                device,
                queue,
                limits,
                features,
                modules: Mutex::default(),
                pipelines: Mutex::default(),
                pending: Mutex::default(),
                uncaptured,
                stats: Arc::new(MemoryStats { released: gl.then(Mutex::default), ..MemoryStats::default() }),
                dispatches: AtomicU64::new(0),
                dispatches_by_kernel: Mutex::default(),
                turns: gl.then(Arc::default),
            }),
        })
    }

    /// This thread's turn to call into wgpu, on GL (see [`Turns`]); nothing elsewhere. Every
    /// method that reaches wgpu, or takes a lock that one which does may take after it, starts
    /// here, so that the turn is always the first lock a thread takes.
    fn turn(&self) -> Option<Turn<'_>> {
        let turn = self.inner.turns.as_deref().map(Turns::take)?;
        if let Some(released) = &self.inner.stats.released {
            released.lock().unwrap().clear();
        }
        Some(turn)
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
    /// "llvmpipe (LLVM 15.0.6, 256 bits) on Vulkan": for test and benchmark output.
    pub fn describe(&self) -> String {
        format!("{} on {:?}", self.inner.info.name, self.inner.info.backend)
    }
    /// Kernel launches recorded since the device was opened.
    pub fn dispatch_count(&self) -> u64 {
        self.inner.dispatches.load(Ordering::Relaxed)
    }
    /// Kernel launches per "shader::entry" (e.g. "matmul::matmul_tiled") since the device was opened.
    pub fn dispatch_counts(&self) -> HashMap<String, u64> {
        self.inner.dispatches_by_kernel.lock().unwrap().clone()
    }
    /// Bytes of tensor storage alive now.
    pub fn live_bytes(&self) -> u64 {
        self.inner.stats.live.load(Ordering::Relaxed)
    }
    /// The most tensor storage ever alive at once.
    pub fn peak_bytes(&self) -> u64 {
        self.inner.stats.peak.load(Ordering::Relaxed)
    }
    /// Start measuring the peak from what is alive now.
    pub fn reset_peak_bytes(&self) {
        self.inner.stats.peak.store(self.live_bytes(), Ordering::Relaxed);
    }

    /// Run `f` inside wgpu error scopes and turn any validation, out-of-memory or internal error
    /// it raised into `Error::Gpu` naming `op`.
    pub fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        let _turn = self.turn();
        let device = &self.inner.device;
        // Scopes nest like a stack: pushed outer to inner, popped inner to outer.
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let errors = [validation.pop(), oom.pop(), internal.pop()].map(pollster::block_on);
        match errors.into_iter().flatten().next() {
            Some(e) => Err(Error::Gpu { op: op.to_string(), msg: e.to_string() }),
            None => Ok(value),
        }
    }

    /// Check a storage buffer of `bytes` fits one binding on this adapter.
    pub fn check_binding_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.inner.limits.max_storage_buffer_binding_size.min(self.inner.limits.max_buffer_size);
        if bytes > limit {
            return Err(Error::TooLarge { what: what.to_string(), bytes, limit });
        }
        Ok(())
    }

    /// A zero-filled storage buffer: a freed one of the same size from the pool, cleared, or a
    /// new one (wgpu zero-initialises every new buffer).
    pub fn alloc(&self, what: &str, bytes: u64) -> Result<GpuBuffer> {
        let _turn = self.turn();
        self.check_binding_size(what, bytes)?;
        // Storage buffers must be non-empty and a multiple of 4 bytes.
        let size = bytes.max(4).next_multiple_of(4);
        if let Some(buffer) = self.inner.stats.take_idle(size) {
            self.clear_in_order(&buffer);
            return Ok(self.track(buffer, size));
        }
        self.inner.stats.created.fetch_add(1, Ordering::Relaxed);
        let buffer = self.scoped(what, || {
            self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size,
                usage: storage_usage(),
                mapped_at_creation: false,
            })
        })?;
        Ok(self.track(buffer, size))
    }

    /// A storage buffer holding `data`, written at creation (mapped), so it cannot race with
    /// commands still pending in the encoder. Always a new buffer: a pooled one could only be
    /// written through the queue, which would run before those pending commands.
    pub fn alloc_init(&self, what: &str, data: &[u8]) -> Result<GpuBuffer> {
        self.check_binding_size(what, data.len() as u64)?;
        let mut padded;
        let contents = if data.is_empty() || !data.len().is_multiple_of(4) {
            padded = data.to_vec();
            padded.resize(data.len().max(4).next_multiple_of(4), 0);
            &padded[..]
        } else {
            data
        };
        let buffer = self.scoped(what, || {
            self.inner.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(what),
                contents,
                usage: storage_usage(),
            })
        })?;
        Ok(self.track(buffer, contents.len() as u64))
    }

    /// Zero a reused buffer. The clear goes into the pending encoder, after every command already
    /// recorded: commands that still read the buffer's old contents (its previous tensor was
    /// dropped, but they were recorded earlier) run first, and the new owner's writes come after.
    /// (An upload by `queue.write_buffer` would not be ordered so: it runs before all pending
    /// commands at the next submit, which is why uploads never take pooled buffers.)
    fn clear_in_order(&self, buffer: &wgpu::Buffer) {
        self.record(|encoder| encoder.clear_buffer(buffer, 0, None));
    }

    /// Record a command into the pending encoder, after everything already recorded.
    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let _turn = self.turn();
        let device = &self.inner.device;
        let mut pending = self.inner.pending.lock().unwrap();
        f(pending.encoder.get_or_insert_with(|| new_encoder(device)));
    }

    /// Storage buffers [`Gpu::alloc`] had to create (op outputs, zeros) since the device was
    /// opened; reuses from the pool are not counted, nor are uploads, which always take a fresh
    /// buffer (see [`Gpu::alloc_init`]).
    pub fn buffers_created(&self) -> u64 {
        self.inner.stats.created.load(Ordering::Relaxed)
    }

    /// Bytes of freed storage buffers kept for reuse.
    pub fn pooled_bytes(&self) -> u64 {
        self.inner.stats.idle_bytes.load(Ordering::Relaxed)
    }

    fn track(&self, buffer: wgpu::Buffer, bytes: u64) -> GpuBuffer {
        self.inner.stats.alloc(bytes);
        GpuBuffer { buffer, bytes, stats: self.inner.stats.clone() }
    }

    /// The compiled pipeline for one entry point of one WGSL file, its `override` constants set to
    /// `constants` (the WGSL defaults where empty); compiled on first use, then cached.
    pub fn pipeline(&self, shader: &Shader, entry: &'static str, constants: Constants) -> Result<wgpu::ComputePipeline> {
        let _turn = self.turn();
        let key: PipelineKey = (shader.name, entry, constants.iter().map(|&(name, v)| (name, v.to_bits())).collect());
        if let Some(p) = self.inner.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(shader)?;
        let label = format!("{}::{entry}", shader.name);
        let pipeline = self.scoped(&label, || {
            self.inner.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                // `None` lets wgpu derive the bind group layout from the bindings this entry point uses.
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every kernel writes workgroup memory before reading it, so the zero-fill
                    // wgpu would otherwise insert is wasted work.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })?;
        self.inner.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    fn module(&self, shader: &Shader) -> Result<wgpu::ShaderModule> {
        let _turn = self.turn();
        let mut modules = self.inner.modules.lock().unwrap();
        if let Some(m) = modules.get(shader.name) {
            return Ok(m.clone());
        }
        let module = self.scoped(shader.name, || {
            self.inner.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(shader.source.into()),
            })
        })?;
        modules.insert(shader.name, module.clone());
        Ok(module)
    }

    /// Record one kernel launch.
    ///
    /// - `params`: the kernel's uniform struct (binding 0), as bytes; see [`Params`].
    /// - `buffers`: `(binding, buffer)` for each storage buffer the entry point uses.
    /// - `workgroups`: the grid, from [`Gpu::grid`] for 1-D problems.
    pub fn dispatch(
        &self,
        shader: &Shader,
        entry: &'static str,
        params: &[u8],
        buffers: &[(u32, &GpuBuffer)],
        workgroups: [u32; 3],
    ) -> Result<()> {
        self.dispatch_specialized(shader, entry, &[], params, buffers, workgroups)
    }

    /// [`Gpu::dispatch`] of an entry point whose `override` constants take the values `constants`.
    pub fn dispatch_specialized(
        &self,
        shader: &Shader,
        entry: &'static str,
        constants: Constants,
        params: &[u8],
        buffers: &[(u32, &GpuBuffer)],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let _turn = self.turn();
        let op = format!("{}::{entry}", shader.name);
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&n| n == 0 || n > max) {
            return Err(Error::Gpu { op, msg: format!("grid {workgroups:?} outside 1..={max} per dimension") });
        }
        let pipeline = self.pipeline(shader, entry, constants)?;
        let device = &self.inner.device;
        let bind_group = self.scoped(&op, || {
            let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
            entries.extend(
                buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry { binding: *binding, resource: b.buffer.as_entire_binding() }),
            );
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&op),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })?;

        let wall_clock = self.profiling() == Some(TimingMethod::WallClock);
        if wall_clock {
            // Timed on the host: finish everything before this kernel, so that only it is timed.
            self.flush()?;
            self.wait()?;
        }
        let flush_now = self.record_pass(&op, &pipeline, &bind_group, workgroups);
        self.inner.dispatches.fetch_add(1, Ordering::Relaxed);
        *self.inner.dispatches_by_kernel.lock().unwrap().entry(op.clone()).or_default() += 1;
        if wall_clock {
            self.time_on_host(op)?;
        } else if flush_now {
            self.flush()?;
        }
        Ok(())
    }

    /// Record one compute pass into the pending encoder (with timestamp writes while profiling
    /// with them). Returns whether the encoder is now full enough to submit.
    fn record_pass(&self, op: &str, pipeline: &wgpu::ComputePipeline, bind_group: &wgpu::BindGroup, workgroups: [u32; 3]) -> bool {
        let device = &self.inner.device;
        let mut pending = self.inner.pending.lock().unwrap();
        let Pending { encoder, dispatches, profiler } = &mut *pending;
        let encoder = encoder.get_or_insert_with(|| new_encoder(device));
        let timestamp_writes = profiler.as_mut().and_then(|p| p.time_pass(device, op));
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(op), timestamp_writes });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        }
        *dispatches += 1;
        *dispatches >= MAX_PENDING_DISPATCHES
    }

    /// Profiling on the host clock: submit the kernel just recorded, alone, and time it to the end.
    fn time_on_host(&self, op: String) -> Result<()> {
        let start = Instant::now();
        self.flush()?;
        self.wait()?;
        let ns = start.elapsed().as_nanos() as u64;
        if let Some(p) = self.inner.pending.lock().unwrap().profiler.as_mut() {
            p.kernels.push(KernelTime { name: op, ns });
        }
        Ok(())
    }

    /// Record a copy of `bytes` from `src` to `dst` after everything already recorded.
    pub fn copy(&self, src: &GpuBuffer, dst: &GpuBuffer, bytes: u64) -> Result<()> {
        self.record(|encoder| encoder.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, bytes.next_multiple_of(4)));
        Ok(())
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

    /// Submit everything recorded so far, and report any GPU error it raised.
    pub fn flush(&self) -> Result<()> {
        self.submit_pending(|_| ())?;
        self.take_uncaptured()
    }

    /// Let `last` record into the pending encoder, then submit it, all under the lock: with
    /// several threads sharing a device, releasing the lock between taking the encoder and
    /// submitting it would let another thread's later commands reach the queue first.
    fn submit_pending(&self, last: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        let _turn = self.turn();
        let device = &self.inner.device;
        let mut pending = self.inner.pending.lock().unwrap();
        let mut encoder = pending.encoder.take().unwrap_or_else(|| new_encoder(device));
        pending.dispatches = 0;
        self.scoped("submit", || {
            last(&mut encoder);
            if let Some(p) = pending.profiler.as_mut() {
                p.resolve_timestamps(device, &mut encoder);
            }
            self.inner.queue.submit([encoder.finish()]);
        })
    }

    fn take_uncaptured(&self) -> Result<()> {
        let mut errors = self.inner.uncaptured.lock().unwrap();
        if errors.is_empty() {
            return Ok(());
        }
        let msg = errors.join("; ");
        errors.clear();
        Err(Error::Gpu { op: "device".into(), msg })
    }

    /// Copy a storage buffer back to the host: append a copy into a mappable staging buffer to
    /// the pending work, submit, wait for the GPU, read.
    pub fn read(&self, buffer: &GpuBuffer, bytes: u64) -> Result<Vec<u8>> {
        let _turn = self.turn();
        let size = bytes.max(4).next_multiple_of(4);
        let staging = self.scoped("read", || {
            self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        // The copy goes after every kernel already recorded, in the same submission.
        self.submit_pending(|encoder| encoder.copy_buffer_to_buffer(&buffer.buffer, 0, &staging, 0, size))?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu { op: "read".into(), msg: "map callback never ran".into() })?
            .map_err(|e| Error::Gpu { op: "read".into(), msg: e.to_string() })?;
        let bytes_out = {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu { op: "read".into(), msg: e.to_string() })?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        self.take_uncaptured()?;
        Ok(bytes_out)
    }

    /// Submit everything recorded and block until the GPU has finished it.
    pub fn wait_for_all(&self) -> Result<()> {
        self.flush()?;
        self.wait()
    }

    /// Block until the GPU has finished everything submitted.
    pub fn wait(&self) -> Result<()> {
        let _turn = self.turn();
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu { op: "wait".into(), msg: e.to_string() })?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Profiling: how long each kernel ran.
// ---------------------------------------------------------------------------------------------

/// How [`Gpu::profile`] timed the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingMethod {
    /// Timestamps the GPU writes at the start and end of each kernel's compute pass
    /// (`Features::TIMESTAMP_QUERY`): the kernel's own time and nothing else.
    GpuTimestamps,
    /// For adapters without timestamp queries: each kernel submitted on its own and waited for,
    /// timed on the host. Includes the submission and the wait, so short kernels read long.
    WallClock,
}

impl TimingMethod {
    /// "gpu-timestamps" or "wall-clock", for reports.
    pub fn name(self) -> &'static str {
        match self {
            TimingMethod::GpuTimestamps => "gpu-timestamps",
            TimingMethod::WallClock => "wall-clock",
        }
    }
}

/// One kernel launch in a [`Profile`].
#[derive(Clone, Debug)]
pub struct KernelTime {
    /// "shader::entry", as in [`Gpu::dispatch_counts`].
    pub name: String,
    pub ns: u64,
}

/// Every kernel launched inside [`Gpu::profile`], in launch order, with how they were timed.
#[derive(Clone, Debug)]
pub struct Profile {
    pub method: TimingMethod,
    pub kernels: Vec<KernelTime>,
}

impl Profile {
    /// The kernels' times added up.
    pub fn total_ns(&self) -> u64 {
        self.kernels.iter().map(|k| k.ns).sum()
    }
}

/// A profile being recorded.
struct Profiler {
    method: TimingMethod,
    /// Timestamp queries of the passes in the pending encoder: pass i writes 2i (start) and
    /// 2i + 1 (end). Created with the first timed pass of each encoder.
    queries: Option<wgpu::QuerySet>,
    /// Kernel name of each pass in the pending encoder.
    names: Vec<String>,
    /// Submitted encoders whose timestamps are on their way to a mappable buffer.
    submitted: Vec<(wgpu::Buffer, Vec<String>)>,
    /// Finished times (wall clock: as each kernel completes; timestamps: at the end).
    kernels: Vec<KernelTime>,
}

/// Room for the timestamps of every pass one encoder can hold (wgpu allows 4096 queries a set).
const TIMESTAMP_QUERIES: u32 = 2 * MAX_PENDING_DISPATCHES;

impl Profiler {
    fn new(method: TimingMethod) -> Profiler {
        Profiler { method, queries: None, names: Vec::new(), submitted: Vec::new(), kernels: Vec::new() }
    }

    /// Where the pass about to be recorded for kernel `name` writes its timestamps, if timed so.
    fn time_pass(&mut self, device: &wgpu::Device, name: &str) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        if self.method != TimingMethod::GpuTimestamps {
            return None;
        }
        let index = 2 * self.names.len() as u32;
        self.names.push(name.to_string());
        let queries = self.queries.get_or_insert_with(|| {
            device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: TIMESTAMP_QUERIES,
            })
        });
        Some(wgpu::ComputePassTimestampWrites {
            query_set: queries,
            beginning_of_pass_write_index: Some(index),
            end_of_pass_write_index: Some(index + 1),
        })
    }

    /// At the end of an encoder about to be submitted: copy its timestamps into a buffer we can
    /// map once the GPU is done.
    fn resolve_timestamps(&mut self, device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder) {
        let Some(queries) = self.queries.take() else { return };
        let count = 2 * self.names.len() as u32;
        let bytes = count as u64 * wgpu::QUERY_SIZE as u64;
        let buffer = |label, usage| device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bytes, usage, mapped_at_creation: false });
        let resolved = buffer("timestamps", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let readback = buffer("timestamps readback", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
        self.submitted.push((readback, std::mem::take(&mut self.names)));
    }
}

impl Gpu {
    /// Run `ops` and time every kernel it launches, with GPU timestamps where the adapter has
    /// them and the host's clock otherwise ([`TimingMethod`]). Work recorded before is finished
    /// first and not counted. Launches from other threads on this device in the meantime are
    /// timed too: profile on a device of your own.
    ///
    /// ```no_run
    /// # fn main() -> vpt_wgsl::Result<()> {
    /// # use vpt_wgsl::{Gpu, Tensor, kernels::gelu::gelu_forward};
    /// let gpu = Gpu::new()?;
    /// let x = Tensor::zeros(&gpu, &[1024, 1024])?;
    /// let (_y, profile) = gpu.profile(|| gelu_forward(&x))?;
    /// println!("{} ns by {}", profile.total_ns(), profile.method.name());
    /// # Ok(()) }
    /// ```
    pub fn profile<T>(&self, ops: impl FnOnce() -> Result<T>) -> Result<(T, Profile)> {
        let method = if self.inner.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            TimingMethod::GpuTimestamps
        } else {
            TimingMethod::WallClock
        };
        self.profile_with(method, ops)
    }

    /// [`Gpu::profile`] with the method chosen by the caller; `GpuTimestamps` is an error on an
    /// adapter without timestamp queries.
    pub fn profile_with<T>(&self, method: TimingMethod, ops: impl FnOnce() -> Result<T>) -> Result<(T, Profile)> {
        let _turn = self.turn();
        if method == TimingMethod::GpuTimestamps && !self.inner.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Gpu {
                op: "profile".into(),
                msg: format!("{} has no timestamp queries (Features::TIMESTAMP_QUERY); time on the host clock instead", self.describe()),
            });
        }
        self.flush()?;
        self.wait()?;
        {
            let mut pending = self.inner.pending.lock().unwrap();
            if pending.profiler.is_some() {
                return Err(Error::Gpu { op: "profile".into(), msg: "this device is already being profiled".into() });
            }
            pending.profiler = Some(Profiler::new(method));
        }
        // Submit what `ops` recorded, then stop profiling whatever happened, so that an error
        // inside `ops` does not leave the device profiling for ever.
        let value = ops();
        let flushed = self.flush();
        let profiler = self.inner.pending.lock().unwrap().profiler.take().expect("profiler set above");
        let (value, ()) = (value?, flushed?);
        let kernels = self.read_profile(profiler)?;
        Ok((value, Profile { method, kernels }))
    }

    /// Wait for the GPU, then turn every submitted encoder's timestamps into kernel times.
    fn read_profile(&self, mut profiler: Profiler) -> Result<Vec<KernelTime>> {
        let map_error = |msg: String| Error::Gpu { op: "profile".into(), msg };
        let (tx, rx) = std::sync::mpsc::channel();
        for (readback, _) in &profiler.submitted {
            let tx = tx.clone();
            readback.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
        }
        self.wait()?;
        for _ in &profiler.submitted {
            rx.recv().map_err(|_| map_error("map callback never ran".into()))?.map_err(|e| map_error(e.to_string()))?;
        }
        // Ticks to nanoseconds.
        let period = self.inner.queue.get_timestamp_period() as f64;
        for (readback, names) in &profiler.submitted {
            let view = readback.get_mapped_range(..).map_err(|e| map_error(e.to_string()))?;
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
            for (name, pair) in names.iter().zip(ticks.chunks_exact(2)) {
                // A clock that wraps or goes backwards gives 0, not a huge number.
                let ns = (pair[1].saturating_sub(pair[0]) as f64 * period) as u64;
                profiler.kernels.push(KernelTime { name: name.clone(), ns });
            }
        }
        Ok(profiler.kernels)
    }

    /// The method of the profile being recorded, if one is.
    fn profiling(&self) -> Option<TimingMethod> {
        self.inner.pending.lock().unwrap().profiler.as_ref().map(|p| p.method)
    }
}

/// The encoder that collects the ops' commands until the next submit.
fn new_encoder(device: &wgpu::Device) -> wgpu::CommandEncoder {
    device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ops") })
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// Builds a kernel's uniform parameter block: 4-byte fields appended in the order the WGSL
/// `struct Params` declares them. The block is zero-padded to at least [`Params::MIN_BYTES`] (and
/// to a multiple of 16, as uniform buffers require), so an entry point may leave unset the trailing
/// fields of a struct it shares with its family and does not read (SGD and AdamW share one).
#[derive(Default)]
pub struct Params(Vec<u8>);

impl Params {
    /// Room for 16 fields: every kernel's `Params` struct fits.
    pub const MIN_BYTES: usize = 64;

    pub fn new() -> Params {
        Params(Vec::new())
    }
    pub fn u32(mut self, v: u32) -> Params {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `usize` dimension; the kernels index in `u32`, and tensors never exceed that
    /// (a storage binding is at most 4 GiB).
    pub fn dim(self, v: usize) -> Params {
        self.u32(u32::try_from(v).expect("dimension exceeds u32; tensors are bounded by the binding size"))
    }
    pub fn f32(mut self, v: f32) -> Params {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn flag(self, v: bool) -> Params {
        self.u32(v as u32)
    }
    pub fn bytes(mut self) -> Vec<u8> {
        self.0.resize(self.0.len().max(Self::MIN_BYTES).next_multiple_of(16), 0);
        self.0
    }
}

impl Gpu {
    /// Are these two handles the same device?
    pub fn same_device(&self, other: &Gpu) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Turns;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A thread may take its turn again while holding it; another thread waits until the
    /// outermost turn ends.
    #[test]
    fn turns_are_reentrant_and_exclusive() {
        let turns = Arc::new(Turns::default());
        let other_ran = Arc::new(AtomicBool::new(false));
        let outer = turns.take();
        let inner = turns.take(); // the same thread again: must not block
        let other = {
            let (turns, other_ran) = (turns.clone(), other_ran.clone());
            std::thread::spawn(move || {
                let _turn = turns.take();
                other_ran.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!other_ran.load(Ordering::SeqCst), "another thread took the turn while this one held it");
        drop(inner);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!other_ran.load(Ordering::SeqCst), "the turn passed on before the outermost one ended");
        drop(outer);
        other.join().unwrap();
        assert!(other_ran.load(Ordering::SeqCst));
    }
}
