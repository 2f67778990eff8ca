//! Getting results back to the host: copy into a mappable staging buffer, submit, wait, read.
//!
//! The one point where the host waits for the GPU is [`Gpu::read_async`]: natively the wait is
//! `device.poll`, and the future is ready when polled; in a browser `poll` does nothing, the
//! mapping is a JavaScript promise, and awaiting the future gives the page's event loop back
//! until the GPU is done. [`Gpu::read`] is the blocking form for native callers; on the browser's
//! WebGPU it refuses, since blocking the page's only thread would freeze the tab for ever.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::memory::GpuBuffer;
use super::Gpu;
use crate::error::{Error, Result};

impl Gpu {
    /// Copy a storage buffer back to the host, blocking until it is there. Native only: on the
    /// browser's WebGPU this is an error that says to use [`Gpu::read_async`].
    pub fn read(&self, buffer: &GpuBuffer, bytes: u64) -> Result<Vec<u8>> {
        self.blocking("read", self.read_async(buffer, bytes))
    }

    /// Run `work`, an async form of `op` that reads back, to its end on this thread: the
    /// blocking form native callers use. On the browser's WebGPU an error that names `op`:
    /// waiting there would freeze the page for ever, so the caller must await `work` instead.
    pub fn blocking<T>(&self, op: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        if self.is_browser() {
            return Err(Error::Gpu {
                op: op.to_string(),
                msg: "a blocking read-back on the browser's WebGPU would freeze the page; this path must await the async form (`Gpu::read_async`, `Tensor::to_vec_async`)".into(),
            });
        }
        pollster::block_on(work)
    }

    /// Copy a storage buffer back to the host: append a copy into a mappable staging buffer to
    /// the pending work, submit, wait for the GPU (natively) or yield until it is done (in a
    /// browser), read.
    pub async fn read_async(&self, buffer: &GpuBuffer, bytes: u64) -> Result<Vec<u8>> {
        let staging = self.submit_copy_for_reading(buffer, bytes)?;
        let mapped = Mapped::default();
        let done = mapped.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| done.finish(r.map_err(|e| e.to_string())));
        // Natively this runs the GPU's work to the end and with it the callback above; in a
        // browser it does nothing and the callback runs from the event loop.
        self.wait()?;
        mapped.await.map_err(|msg| Error::Gpu { op: "read".into(), msg })?;
        let bytes_out = {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu { op: "read".into(), msg: e.to_string() })?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        self.take_uncaptured()?;
        self.inner.aides.trace.read(buffer.id, &bytes_out, buffer.holds_f16());
        Ok(bytes_out)
    }

    /// A staging buffer the bytes of `buffer` are copied into, after every kernel already
    /// recorded and in the same submission, which is submitted.
    fn submit_copy_for_reading(&self, buffer: &GpuBuffer, bytes: u64) -> Result<wgpu::Buffer> {
        let _turn = self.turn();
        let size = bytes.max(4).next_multiple_of(4);
        let staging = self.scoped("read", || {
            self.inner.device.create_buffer(&wgpu::BufferDescriptor { label: Some("readback"), size, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false })
        })?;
        self.submit_pending(|encoder| encoder.copy_buffer_to_buffer(&buffer.buffer, 0, &staging, 0, size))?;
        Ok(staging)
    }

    /// Is this the browser's WebGPU, where nothing may block?
    pub fn is_browser(&self) -> bool {
        self.inner.info.backend == wgpu::Backend::BrowserWebGpu
    }

    /// Submit everything recorded and block until the GPU has finished it.
    pub fn wait_for_all(&self) -> Result<()> {
        self.flush()?;
        self.wait()
    }

    /// Block until the GPU has finished everything submitted (in a browser: return at once).
    pub fn wait(&self) -> Result<()> {
        let _turn = self.turn();
        self.inner.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu { op: "wait".into(), msg: e.to_string() })?;
        Ok(())
    }

    /// Errors wgpu raised outside any error scope since the last call (e.g. while a command buffer
    /// executed), as one error.
    pub(super) fn take_uncaptured(&self) -> Result<()> {
        let mut errors = self.inner.uncaptured.lock().unwrap();
        if errors.is_empty() {
            return Ok(());
        }
        let msg = errors.join("; ");
        errors.clear();
        Err(Error::Gpu { op: "device".into(), msg })
    }
}

/// The end of one buffer mapping, as a future: ready once wgpu's callback has run.
#[derive(Clone, Default)]
struct Mapped {
    state: Arc<Mutex<MapState>>,
}

#[derive(Default)]
struct MapState {
    outcome: Option<std::result::Result<(), String>>,
    waker: Option<Waker>,
}

impl Mapped {
    /// Called by wgpu's map callback: keep the outcome and wake whoever awaits it.
    fn finish(&self, outcome: std::result::Result<(), String>) {
        let waker = {
            let mut state = self.state.lock().unwrap();
            state.outcome = Some(outcome);
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for Mapped {
    type Output = std::result::Result<(), String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.lock().unwrap();
        match state.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
