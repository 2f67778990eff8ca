//! Getting results back to the host: copy into a mappable staging buffer, submit, wait, read.

use super::memory::GpuBuffer;
use super::Gpu;
use crate::error::{Error, Result};

impl Gpu {
    /// Copy a storage buffer back to the host: append a copy into a mappable staging buffer to
    /// the pending work, submit, wait for the GPU, read.
    pub fn read(&self, buffer: &GpuBuffer, bytes: u64) -> Result<Vec<u8>> {
        let _turn = self.turn();
        let size = bytes.max(4).next_multiple_of(4);
        let staging = self.scoped("read", || {
            self.inner.device.create_buffer(&wgpu::BufferDescriptor { label: Some("readback"), size, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false })
        })?;
        // The copy goes after every kernel already recorded, in the same submission.
        self.submit_pending(|encoder| encoder.copy_buffer_to_buffer(&buffer.buffer, 0, &staging, 0, size))?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv().map_err(|_| Error::Gpu { op: "read".into(), msg: "map callback never ran".into() })?.map_err(|e| Error::Gpu { op: "read".into(), msg: e.to_string() })?;
        let bytes_out = {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu { op: "read".into(), msg: e.to_string() })?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        self.take_uncaptured()?;
        self.inner.aides.trace.read(buffer.id, &bytes_out, buffer.holds_f16());
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
