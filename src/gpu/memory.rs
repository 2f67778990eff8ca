//! Tensor storage on the device: storage buffers, the accounting of bytes alive, and a pool of
//! freed buffers by size, so that a training loop that makes the same shapes every step reuses
//! them instead of asking the driver for new memory each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::Gpu;
use crate::error::{Error, Result};

/// Most bytes of idle storage buffers kept for reuse; past it a freed buffer is released.
const POOL_MAX_IDLE_BYTES: u64 = 512 << 20;

/// Bytes alive now and the most ever alive at once, and the pool of idle buffers.
#[derive(Default, Debug)]
pub(super) struct Memory {
    live: AtomicU64,
    peak: AtomicU64,
    idle: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    idle_bytes: AtomicU64,
    created: AtomicU64,
    /// On GL, buffers the full pool let go: released at the next turn, since destroying a buffer
    /// takes wgpu's GL context lock and a tensor may be dropped on any thread at any time.
    released: Option<Mutex<Vec<wgpu::Buffer>>>,
}

impl Memory {
    pub(super) fn new(gl: bool) -> Memory {
        Memory { released: gl.then(Mutex::default), ..Memory::default() }
    }
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
    /// On GL: destroy the buffers let go of since the last turn (called in a turn).
    pub(super) fn release_pending(&self) {
        if let Some(released) = &self.released {
            released.lock().unwrap().clear();
        }
    }
}

/// A storage buffer that keeps the device's memory accounting right, and returns to the pool,
/// when it is dropped.
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    bytes: u64,
    memory: Arc<Memory>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.memory.free(self.buffer.clone(), self.bytes);
    }
}

impl GpuBuffer {
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

impl Gpu {
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
        if let Some(buffer) = self.inner.memory.take_idle(size) {
            self.clear_in_order(&buffer);
            return Ok(self.track(buffer, size));
        }
        self.inner.memory.created.fetch_add(1, Ordering::Relaxed);
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

    /// Record a copy of `bytes` from `src` to `dst` after everything already recorded.
    pub fn copy(&self, src: &GpuBuffer, dst: &GpuBuffer, bytes: u64) -> Result<()> {
        self.record(|encoder| encoder.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, bytes.next_multiple_of(4)));
        Ok(())
    }

    fn track(&self, buffer: wgpu::Buffer, bytes: u64) -> GpuBuffer {
        self.inner.memory.alloc(bytes);
        GpuBuffer { buffer, bytes, memory: self.inner.memory.clone() }
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
    /// Storage buffers [`Gpu::alloc`] had to create (op outputs, zeros) since the device was
    /// opened; reuses from the pool are not counted, nor are uploads, which always take a fresh
    /// buffer (see [`Gpu::alloc_init`]).
    pub fn buffers_created(&self) -> u64 {
        self.inner.memory.created.load(Ordering::Relaxed)
    }
    /// Bytes of freed storage buffers kept for reuse.
    pub fn pooled_bytes(&self) -> u64 {
        self.inner.memory.idle_bytes.load(Ordering::Relaxed)
    }
}
