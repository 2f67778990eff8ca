//! Choosing an adapter and opening a device on it: which backends to try (`WGPU_BACKEND`), which
//! adapter to prefer (a real GPU before a software one, a native API before GL), and the features
//! and limits we ask for.

use std::sync::{Arc, Mutex};

use super::aides::Aides;
use super::memory::Memory;
use super::{gl_turns, Gpu, GpuInner};
use crate::error::{Error, Result};

/// Optional features we ask for when the adapter has them. None is required: every kernel runs
/// without them. Timestamps let benchmarks time kernels on the GPU itself; f16 and subgroups are
/// for kernels that can use them.
pub(super) const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

/// How wgpu's allocator carves device memory: in blocks of 8–64 MiB (`MemoryUsage`; 4–32 MiB where
/// the memory is host-visible, as all of lavapipe's is) rather than wgpu's default 128–256 MiB
/// (`Performance`; 64–128 MiB host-visible), each block after the first twice the one before up
/// to the largest. A buffer larger than a block gets a block of its own, given back when the
/// buffer goes. A shared block is given back only once every buffer in it is gone, so a tensor
/// freed beside one still alive leaves its memory held (on lavapipe, resident host memory; on a
/// GPU, VRAM). The engine pools its own freed buffers by size (`memory.rs`), so few allocations
/// reach wgpu's allocator, and the larger blocks bought no measurable speed.
///
/// Measured on lavapipe (2026-12-06, `/usr/bin/time -v cargo run --release --example
/// vpt_step_memory -- 64 50 auto block|none`, ViT-B/16 VPT-deep at batch 64): the resident peak
/// fell from 2942 to 2320 MiB with `--recompute block` (1654.6 MiB of tensors) and from 7770 to
/// 7019 MiB without (6186.4 MiB); the batch-8 step's time moved within the noise
/// (docs/benchmarks.md "Resident memory"). No GPU measured.
pub const MEMORY_HINTS: wgpu::MemoryHints = wgpu::MemoryHints::MemoryUsage;

/// The largest block wgpu's allocator shares between buffers under [`MEMORY_HINTS`], in device
/// memory (wgpu-hal's `AllocationSizes` for `MemoryUsage`; 32 MiB in host-visible memory).
pub const LARGEST_SHARED_BLOCK_BYTES: u64 = 64 << 20;

/// What `vpt info` prints about one adapter.
pub struct AdapterReport {
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
}

/// The backends `WGPU_BACKEND` names (comma-separated: `vulkan`, `gl`, `metal`, `dx12`), or every
/// backend this build has when it is unset. A value that names no backend is an error that lists
/// the ones that exist, rather than a silent fall-back.
pub fn backends_from_env() -> Result<wgpu::Backends> {
    let Ok(value) = std::env::var("WGPU_BACKEND") else { return Ok(wgpu::Backends::all()) };
    let backends = wgpu::Backends::from_comma_list(&value);
    if backends.is_empty() {
        return Err(Error::Invalid { what: "WGPU_BACKEND".into(), msg: format!("{value:?} names no backend; use one or more of vulkan, metal, dx12, gl (comma-separated), or unset it") });
    }
    Ok(backends)
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter the given backends expose, for `vpt info`.
pub fn list_adapters(backends: wgpu::Backends) -> Vec<AdapterReport> {
    let instance = new_instance(backends);
    pollster::block_on(instance.enumerate_adapters(backends)).into_iter().map(|a| AdapterReport { info: a.get_info(), features: a.features(), limits: a.limits() }).collect()
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
        Gpu::with_backends(backends_from_env()?)
    }

    /// Open the best adapter among `backends`, still honouring `WGPU_ADAPTER_NAME`
    /// (a case-insensitive substring of the adapter's name).
    pub fn with_backends(backends: wgpu::Backends) -> Result<Gpu> {
        Gpu::with_backends_without(backends, wgpu::Features::empty())
    }

    /// [`Gpu::with_backends`], leaving the optional features in `without` off even where the
    /// adapter has them: `SUBGROUP` off runs the row kernels' workgroup-memory reductions, as on an
    /// adapter without subgroups (tests and `vpt check` run both; `vpt bench` times both).
    pub fn with_backends_without(backends: wgpu::Backends, without: wgpu::Features) -> Result<Gpu> {
        let instance = new_instance(backends);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() {
            return Err(Error::NoAdapter { backends: format!("{backends:?}") });
        }
        if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
            let names: Vec<String> = adapters.iter().map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend)).collect();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&wanted.to_lowercase()));
            if adapters.is_empty() {
                return Err(Error::AdapterNotFound { wanted, available: names });
            }
        }
        adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
        Gpu::from_adapter_without(adapters.remove(0), without)
    }

    /// Open a device on this adapter with every limit it offers (large models need large buffers)
    /// and the optional features it has.
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Gpu> {
        Gpu::from_adapter_without(adapter, wgpu::Features::empty())
    }

    /// [`Gpu::from_adapter`] with the optional features in `without` left off.
    pub fn from_adapter_without(adapter: wgpu::Adapter, without: wgpu::Features) -> Result<Gpu> {
        pollster::block_on(Gpu::open_async(adapter, without))
    }

    /// The browser's WebGPU adapter (wgpu's `BROWSER_WEBGPU` backend), opened as
    /// [`Gpu::from_adapter`] does, without blocking: in a page, the adapter and the device are
    /// promises the event loop settles.
    pub async fn browser() -> Result<Gpu> {
        let backends = wgpu::Backends::BROWSER_WEBGPU;
        let instance = new_instance(backends);
        let options = wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
        let adapter = instance.request_adapter(&options).await.map_err(|e| Error::NoAdapter {
            backends: format!("{backends:?} ({e}; this browser has no WebGPU, or it is turned off: Chrome and Edge 113+ have it, Firefox and Safari behind a setting)"),
        })?;
        Gpu::open_async(adapter, wgpu::Features::empty()).await
    }

    /// [`Gpu::reopen_without`] without blocking (in a browser).
    pub async fn reopen_without_async(&self, without: wgpu::Features) -> Result<Gpu> {
        let mut gpu = Gpu::open_async(self.inner.adapter.clone(), without).await?;
        Arc::get_mut(&mut gpu.inner).expect("a device just opened has one handle").aides = self.inner.aides.reopened();
        Ok(gpu)
    }

    /// Open a device on `adapter` with every limit it offers and the optional features it has,
    /// but those in `without`.
    async fn open_async(adapter: wgpu::Adapter, without: wgpu::Features) -> Result<Gpu> {
        // On GL, asking the adapter anything takes its context lock: wait for this thread's turn
        // among every GL device of the process first (`gl_turns.rs`).
        let gl = adapter.get_info().backend == wgpu::Backend::Gl;
        let turns = gl.then(gl_turns::shared);
        let _turn = turns.as_deref().map(gl_turns::Turns::take);
        let adapter_features = adapter.features();
        let downlevel = adapter.get_downlevel_capabilities().flags;
        let features = adapter_features & WANTED_FEATURES & !without;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor { label: Some("vpt-wgsl"), required_features: features, required_limits: limits.clone(), memory_hints: MEMORY_HINTS, ..Default::default() })
            .await
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
                memory: Arc::new(Memory::new(gl)),
                stand_in_texels: std::sync::OnceLock::new(),
                turns: turns.clone(),
                adapter_features,
                downlevel,
                aides: Aides::default(),
            }),
        })
    }
}
