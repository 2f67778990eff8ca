//! Tensor storage on the device: storage buffers, the accounting of bytes alive, and a pool of
//! freed buffers by size, so that a training loop that makes the same shapes every step reuses
//! them instead of asking the driver for new memory each time.
//!
//! What the pool holds is bounded two ways, so that a long run's memory stays flat:
//! - at most [`POOL_MAX_IDLE_BYTES`] idle: past it, the buffers idle the longest are given back
//!   first (the newest are the likeliest to be asked for again);
//! - [`Gpu::trim_pool`], called once per training step, gives back every buffer that stayed idle
//!   for a whole step: a size the step's pattern does not ask for (an evaluation's last partial
//!   batch, a one-off shape) is not kept for ever.
//!
//! Uploads take pooled buffers too (written in encoder order, see [`Gpu::alloc_init`]): a loop
//! that uploads a batch every step reuses one buffer for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::Gpu;
use crate::error::{Error, Result};

/// Most bytes of idle storage buffers kept for reuse; past it the oldest idle buffers are released.
const POOL_MAX_IDLE_BYTES: u64 = 512 << 20;

/// A freed buffer waiting in the pool.
#[derive(Debug)]
struct Idle {
    buffer: wgpu::Buffer,
    /// When it was freed, counting frees: the smallest is the longest idle.
    freed: u64,
    /// The [`Gpu::trim_pool`] period it was freed in.
    period: u64,
}

/// Bytes alive now and the most ever alive at once, and the pool of idle buffers.
#[derive(Default, Debug)]
pub(super) struct Memory {
    live: AtomicU64,
    peak: AtomicU64,
    pool: Mutex<Pool>,
    created: AtomicU64,
    /// On GL, buffers the pool let go: released at the next turn, since destroying a buffer takes
    /// wgpu's GL context lock and a tensor may be dropped on any thread at any time.
    released: Option<Mutex<Vec<wgpu::Buffer>>>,
    /// Bytes of buffers let go of (by the pool, or staging buffers of uploads) since the last
    /// submit. The driver cannot free them while commands not yet submitted still use them, so
    /// `Gpu::record_pass` submits once these reach `MAX_RELEASED_BEFORE_SUBMIT` (`in_flight.rs`).
    released_since_submit: AtomicU64,
}

/// Idle buffers by size in bytes.
#[derive(Default, Debug)]
struct Pool {
    by_size: HashMap<u64, Vec<Idle>>,
    idle_bytes: u64,
    frees: u64,
    /// Incremented by each [`Gpu::trim_pool`].
    period: u64,
}

impl Pool {
    /// Remove and return the longest-idle buffer (of any size), with its size.
    fn pop_oldest(&mut self) -> Option<(wgpu::Buffer, u64)> {
        let (&size, _) = self.by_size.iter().filter(|(_, v)| !v.is_empty()).min_by_key(|(_, v)| v[0].freed)?;
        let list = self.by_size.get_mut(&size)?;
        let idle = list.remove(0); // each list is in the order its buffers were freed
        if list.is_empty() {
            self.by_size.remove(&size);
        }
        self.idle_bytes -= size;
        Some((idle.buffer, size))
    }
}

impl Memory {
    pub(super) fn new(gl: bool) -> Memory {
        Memory { released: gl.then(Mutex::default), ..Memory::default() }
    }
    pub(super) fn alloc(&self, bytes: u64) {
        let now = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
    /// Memory that is not a pooled buffer (a weight's texels) was let go of.
    pub(super) fn uncount(&self, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }
    /// A tensor let go of its buffer: keep it for reuse, giving back the longest-idle buffers
    /// if the pool would hold more than its cap.
    fn free(&self, buffer: wgpu::Buffer, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
        let mut evicted = Vec::new();
        {
            let mut pool = self.pool.lock().unwrap();
            if bytes > POOL_MAX_IDLE_BYTES {
                evicted.push(buffer);
            } else {
                while pool.idle_bytes + bytes > POOL_MAX_IDLE_BYTES {
                    let Some((old, _)) = pool.pop_oldest() else { break };
                    evicted.push(old);
                }
                pool.frees += 1;
                let idle = Idle { buffer, freed: pool.frees, period: pool.period };
                pool.by_size.entry(bytes).or_default().push(idle);
                pool.idle_bytes += bytes;
            }
        }
        self.release(evicted);
    }
    fn take_idle(&self, bytes: u64) -> Option<wgpu::Buffer> {
        let mut pool = self.pool.lock().unwrap();
        let list = pool.by_size.get_mut(&bytes)?;
        // The most recently freed: the others are the first to go when the pool must shrink.
        let idle = list.pop()?;
        if list.is_empty() {
            pool.by_size.remove(&bytes);
        }
        pool.idle_bytes -= bytes;
        Some(idle.buffer)
    }
    /// Give back the buffers that stayed idle through a whole trim period, and start a new one.
    fn trim(&self) {
        let mut stale = Vec::new();
        {
            let mut pool = self.pool.lock().unwrap();
            let current = pool.period;
            let mut freed_bytes = 0;
            pool.by_size.retain(|&size, list| {
                list.retain_mut(|idle| {
                    let keep = idle.period == current;
                    if !keep {
                        stale.push(idle.buffer.clone());
                        freed_bytes += size;
                    }
                    keep
                });
                !list.is_empty()
            });
            pool.idle_bytes -= freed_bytes;
            pool.period += 1;
        }
        self.release(stale);
    }
    /// Destroy buffers: now, or on GL at the next turn. (wgpu keeps each alive until the
    /// commands that use it have run.)
    fn release(&self, buffers: Vec<wgpu::Buffer>) {
        self.note_released(buffers.iter().map(wgpu::Buffer::size).sum());
        match &self.released {
            Some(released) if !buffers.is_empty() => released.lock().unwrap().extend(buffers),
            _ => drop(buffers),
        }
    }
    /// Count `bytes` of buffers (or textures) let go of while recorded commands may still use them.
    pub(super) fn note_released(&self, bytes: u64) {
        self.released_since_submit.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Start counting again: called at each submit.
    pub(super) fn reset_released_since_submit(&self) {
        self.released_since_submit.store(0, Ordering::Relaxed);
    }
    /// Bytes let go of since the last submit.
    pub(super) fn released_since_submit(&self) -> u64 {
        self.released_since_submit.load(Ordering::Relaxed)
    }
    /// On GL: destroy the buffers let go of since the last turn (called in a turn).
    pub(super) fn release_pending(&self) {
        if let Some(released) = &self.released {
            released.lock().unwrap().clear();
        }
    }
}

/// What wgpu's allocator holds from the driver ([`Gpu::driver_blocks`]). It carves buffers out of
/// memory blocks and gives a block back only once every buffer in it is gone, so the gap between
/// reserved and allocated is memory freed beside buffers still alive: on lavapipe, resident host
/// memory that nothing uses. `MEMORY_HINTS` (`adapter.rs`) keeps the blocks small.
#[derive(Clone, Copy, Debug)]
pub struct DriverBlocks {
    /// Every block's size, summed.
    pub reserved_bytes: u64,
    /// What the buffers inside them take.
    pub allocated_bytes: u64,
    pub blocks: usize,
    pub largest_block_bytes: u64,
}

/// A storage buffer that keeps the device's memory accounting right, and returns to the pool,
/// when it is dropped.
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    bytes: u64,
    memory: Arc<Memory>,
    /// Holds f16 values (a frozen weight under `--precision f16`) rather than f32. A launch
    /// checks it against the bindings its shader declares f16 (`Shader::f16_bindings`).
    half: bool,
    /// Unique in the process: how a trace (`trace.rs`) names the buffer.
    pub(crate) id: u64,
}

/// The next [`GpuBuffer::id`].
static NEXT_BUFFER_ID: AtomicU64 = AtomicU64::new(1);

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.memory.free(self.buffer.clone(), self.bytes);
    }
}

impl GpuBuffer {
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    /// Does it hold f16 values?
    pub fn holds_f16(&self) -> bool {
        self.half
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

impl Gpu {
    /// The most bytes one storage buffer binding can hold on this adapter.
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner.limits.max_storage_buffer_binding_size.min(self.inner.limits.max_buffer_size)
    }

    /// Check a storage buffer of `bytes` fits one binding on this adapter.
    pub fn check_binding_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.max_binding_bytes();
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
        if let Some(buffer) = self.inner.memory.take_idle(size) {
            self.clear_in_order(&buffer);
            return Ok(self.track_created(buffer, size, None));
        }
        self.inner.memory.created.fetch_add(1, Ordering::Relaxed);
        let buffer = self.scoped(what, || self.inner.device.create_buffer(&wgpu::BufferDescriptor { label: Some(what), size, usage: storage_usage(), mapped_at_creation: false }))?;
        Ok(self.track_created(buffer, size, None))
    }

    /// A storage buffer holding `data`. A freed buffer of the same size from the pool if there is
    /// one, filled by a copy from a staging buffer recorded into the pending encoder (so it runs
    /// after every command already recorded, like [`Gpu::clear_in_order`]); otherwise a new buffer
    /// written at creation (mapped). Never `queue.write_buffer`, which would run before the
    /// commands still pending and could overwrite what they have yet to read.
    pub fn alloc_init(&self, what: &str, data: &[u8]) -> Result<GpuBuffer> {
        let _turn = self.turn();
        self.check_binding_size(what, data.len() as u64)?;
        let mut padded;
        let contents = if data.is_empty() || !data.len().is_multiple_of(4) {
            padded = data.to_vec();
            padded.resize(data.len().max(4).next_multiple_of(4), 0);
            &padded[..]
        } else {
            data
        };
        let size = contents.len() as u64;
        if let Some(buffer) = self.inner.memory.take_idle(size) {
            let staging = self.scoped(what, || self.inner.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("upload"), contents, usage: wgpu::BufferUsages::COPY_SRC }))?;
            // The staging buffer lives on inside wgpu until the copy has run.
            self.record(|encoder| encoder.copy_buffer_to_buffer(&staging, 0, &buffer, 0, size));
            self.inner.memory.note_released(size);
            return Ok(self.track_created(buffer, size, Some(contents)));
        }
        self.inner.memory.created.fetch_add(1, Ordering::Relaxed);
        let buffer = self.scoped(what, || self.inner.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(what), contents, usage: storage_usage() }))?;
        Ok(self.track_created(buffer, size, Some(contents)))
    }

    /// A storage buffer holding f16 values, for kernels that read f16 (see
    /// [`GpuBuffer::holds_f16`]). An error where the device has no SHADER_F16.
    pub fn alloc_init_f16(&self, what: &str, data: &[half::f16]) -> Result<GpuBuffer> {
        if !self.inner.features.contains(wgpu::Features::SHADER_F16) {
            return Err(Error::invalid(
                "precision",
                format!("f16 needs an adapter with the SHADER_F16 feature, and {} has none (`vpt info` lists each adapter's features); use `precision` f32", self.describe()),
            ));
        }
        let mut buffer = self.alloc_init(what, bytemuck::cast_slice(data))?;
        buffer.half = true;
        Ok(buffer)
    }

    /// A zero-filled storage buffer of `bytes` that will hold f16 values written by a kernel (see
    /// [`GpuBuffer::holds_f16`]). Unlike [`Gpu::alloc_init_f16`], no SHADER_F16 is needed: the
    /// kernels that fill such a buffer (`wgsl/halves.wgsl`) see pairs of halves as u32.
    pub fn alloc_halves(&self, what: &str, bytes: u64) -> Result<GpuBuffer> {
        let mut buffer = self.alloc(what, bytes)?;
        buffer.half = true;
        Ok(buffer)
    }

    /// Zero a reused buffer. The clear goes into the pending encoder, after every command already
    /// recorded: commands that still read the buffer's old contents (its previous tensor was
    /// dropped, but they were recorded earlier) run first, and the new owner's writes come after.
    fn clear_in_order(&self, buffer: &wgpu::Buffer) {
        self.record(|encoder| encoder.clear_buffer(buffer, 0, None));
    }

    /// Record a copy of `bytes` from `src` to `dst` after everything already recorded.
    pub fn copy(&self, src: &GpuBuffer, dst: &GpuBuffer, bytes: u64) -> Result<()> {
        let bytes = bytes.next_multiple_of(4);
        self.record(|encoder| encoder.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, bytes));
        self.inner.aides.trace.copied(src.id, dst.id, bytes);
        Ok(())
    }

    /// Account for a buffer handed to a new tensor, zeroed or holding `contents`, and record it
    /// in the trace if one is recording.
    fn track_created(&self, buffer: wgpu::Buffer, bytes: u64, contents: Option<&[u8]>) -> GpuBuffer {
        self.inner.memory.alloc(bytes);
        let id = NEXT_BUFFER_ID.fetch_add(1, Ordering::Relaxed);
        self.inner.aides.trace.created(id, bytes, contents);
        GpuBuffer { buffer, bytes, memory: self.inner.memory.clone(), half: false, id }
    }

    /// Bytes of tensor storage alive now.
    pub fn live_bytes(&self) -> u64 {
        self.inner.memory.live.load(Ordering::Relaxed)
    }
    /// The most tensor storage ever alive at once.
    pub fn peak_bytes(&self) -> u64 {
        self.inner.memory.peak.load(Ordering::Relaxed)
    }
    /// Start measuring the peak from what is alive now.
    pub fn reset_peak_bytes(&self) {
        self.inner.memory.peak.store(self.live_bytes(), Ordering::Relaxed);
    }
    /// Storage buffers the device had to create for tensors (op outputs, zeros, uploads) since it
    /// was opened; reuses from the pool are not counted.
    pub fn buffers_created(&self) -> u64 {
        self.inner.memory.created.load(Ordering::Relaxed)
    }
    /// Bytes of freed storage buffers kept for reuse.
    pub fn pooled_bytes(&self) -> u64 {
        self.inner.memory.pool.lock().unwrap().idle_bytes
    }
    /// Every byte of tensor storage the engine holds: alive, plus idle in the pool.
    pub fn held_bytes(&self) -> u64 {
        self.live_bytes() + self.pooled_bytes()
    }
    /// Bytes of buffer memory the driver holds for this device, by wgpu's own count: the tensors
    /// alive and pooled ([`Gpu::held_bytes`]), and besides them each launch's uniforms, staging
    /// buffers, and the buffers let go of that submitted or pending commands still use. `None`
    /// where the backend keeps no count (wgpu keeps it on Vulkan and DX12).
    pub fn driver_buffer_bytes(&self) -> Option<u64> {
        let bytes = self.inner.device.get_internal_counters().hal.buffer_memory.read();
        (bytes > 0).then_some(bytes as u64)
    }
    /// Bytes of texture memory the driver holds for this device, by wgpu's own count: the frozen
    /// weights' texels, and the matmuls' A texels (`Gpu::activation_texels`) let go of that
    /// submitted or pending commands still read. `None` where the backend keeps no count.
    pub fn driver_texture_bytes(&self) -> Option<u64> {
        let bytes = self.inner.device.get_internal_counters().hal.texture_memory.read();
        (bytes > 0).then_some(bytes as u64)
    }
    /// The memory blocks wgpu's allocator holds from the driver for this device, and how much of
    /// them its buffers use. `None` where the backend keeps no report (wgpu keeps one on Vulkan
    /// and DX12).
    pub fn driver_blocks(&self) -> Option<DriverBlocks> {
        let report = self.inner.device.generate_allocator_report()?;
        Some(DriverBlocks {
            reserved_bytes: report.total_reserved_bytes,
            allocated_bytes: report.total_allocated_bytes,
            blocks: report.blocks.len(),
            largest_block_bytes: report.blocks.iter().map(|b| b.size).max().unwrap_or(0),
        })
    }
    /// Give back to the driver the pooled buffers that nothing took since the previous call.
    /// Call it once per training step (as `vpt train` does): buffers of the sizes a step asks for
    /// are taken again within a step and stay; those of sizes it no longer asks for go.
    pub fn trim_pool(&self) {
        let _turn = self.turn();
        self.inner.memory.trim();
    }
}
