//! A frozen weight's values once more, in a texture: what a matmul reads its B operand from where
//! this adapter loads texels faster than it loads from storage buffers (on lavapipe, read as a
//! read-only storage texture, the ViT's eight linear products take about 0.69× the time;
//! `wgsl/lib/matmul_b_texels.wgsl` says why and what was measured). Made once, at load, copied on
//! the device from the weight's own buffer; read-only after.
//!
//! Layout: the values in their stored order, four to a texel (rgba32float; rgba16float for a
//! weight stored as f16), [`TEXELS_PER_ROW`] texels to a row of the texture, the last row padded
//! with zeros. Quad q of the values is texel (q mod TEXELS_PER_ROW, q div TEXELS_PER_ROW), so a
//! kernel addresses the texture as it would the buffer seen as vec4s.

use std::sync::Arc;

use super::memory::{GpuBuffer, Memory};
use super::Gpu;
use crate::error::{Error, Result};

/// Texels per row of the texture; `TEXELS_PER_ROW` in `wgsl/lib/matmul_b_texels.wgsl` (checked by
/// `tests/contract.rs`). 2048 is the smallest `max_texture_dimension_2d` of any WebGPU adapter.
pub const TEXELS_PER_ROW: u32 = 2048;

/// A weight's values as a texture, counted in the device's tensor memory while it lives.
pub struct Texels {
    /// Owned here; the view reads it.
    _texture: wgpu::Texture,
    pub(crate) view: wgpu::TextureView,
    bytes: u64,
    memory: Arc<Memory>,
}

impl Drop for Texels {
    fn drop(&mut self) {
        // Not `destroy()`: commands recorded but not yet submitted may still read the texture;
        // wgpu frees it once the last of them has run. So it counts toward the bounded queue's
        // next submit (`in_flight.rs`), as a buffer let go of does: a matmul's A texels, made
        // for one launch, are as large as A (150 MB at ViT-B batch 64), and without this a
        // batch-64 step held 8.5 GiB resident for 5.1 GiB of tensors (lavapipe, 2026-12-07).
        self.memory.uncount(self.bytes);
        self.memory.note_released(self.bytes);
    }
}

impl Texels {
    /// Bytes of device memory the texture takes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Gpu {
    /// Would `values` values fit one texture of this device, [`TEXELS_PER_ROW`] texels wide?
    pub fn texels_fit(&self, values: usize) -> bool {
        let max = self.inner.limits.max_texture_dimension_2d as u64;
        TEXELS_PER_ROW as u64 <= max && (1..=max).contains(&texel_rows(values))
    }

    /// [`Texels`] holding the first `values` values of `buffer` (f32, or f16 where the buffer
    /// holds f16), copied on the device in the order of the commands already recorded: no copy
    /// through the host, and the very bits the buffer holds. An error naming `what` where they do
    /// not fit one texture ([`Gpu::texels_fit`]).
    pub fn texels(&self, what: &str, buffer: &GpuBuffer, values: usize) -> Result<Texels> {
        if !self.texels_fit(values) {
            let max = self.inner.limits.max_texture_dimension_2d;
            return Err(Error::invalid(
                what,
                format!("{values} values do not fit one {TEXELS_PER_ROW}-texel-wide texture of at most {max} rows on {}; keep this weight in its buffer", self.describe()),
            ));
        }
        let (format, texel_bytes) = if buffer.holds_f16() { (wgpu::TextureFormat::Rgba16Float, 8) } else { (wgpu::TextureFormat::Rgba32Float, 16) };
        let rows = texel_rows(values) as u32; // fits: checked above
        let (texture, size) = self.texel_texture(what, rows, format)?;
        // A buffer→texture copy takes whole rows of texels: the values go first into a zeroed
        // buffer of whole rows (a pooled one, so each weight shape of a model reuses it).
        let bytes_per_row = TEXELS_PER_ROW * texel_bytes;
        let bytes = (rows * bytes_per_row) as u64;
        let padded = self.alloc(what, bytes)?;
        let value_bytes = buffer.raw().size().min(padded.raw().size());
        self.record(|encoder| {
            encoder.copy_buffer_to_buffer(buffer.raw(), 0, padded.raw(), 0, value_bytes);
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo { buffer: padded.raw(), layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(bytes_per_row), rows_per_image: Some(rows) } },
                wgpu::TexelCopyTextureInfo { texture: &texture, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
                size,
            );
        });
        // Run the copies now, one weight at a time: on lavapipe the copies of a whole model
        // recorded into one submission left about as much resident memory again behind them
        // (vpt_step_memory: 1378 MiB resident at load for 651 MiB of weights and texels).
        self.wait_for_all()?;
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        self.inner.memory.alloc(bytes);
        Ok(Texels { _texture: texture, view, bytes, memory: self.inner.memory.clone() })
    }
}

impl Gpu {
    /// [`Texels`] of an activation's first `values` f32 values, for the launches about to be
    /// recorded (a matmul's A, `kernels::matmul`): copied on the device in the order of the
    /// commands already recorded, and, unlike a weight's ([`Gpu::texels`]), without waiting for
    /// them. The whole rows of texels go straight from `buffer`; the last, partial row through a
    /// zeroed buffer of one row. An error naming `what` where they do not fit one texture.
    pub fn activation_texels(&self, what: &str, buffer: &GpuBuffer, values: usize) -> Result<Texels> {
        if !self.texels_fit(values) || buffer.holds_f16() {
            return Err(Error::Internal {
                what: what.to_string(),
                msg: format!("{values} values of an f32 activation were asked as texels that do not fit one texture; the launcher should have read its buffer"),
            });
        }
        let rows = texel_rows(values) as u32;
        let (texture, _) = self.texel_texture(what, rows, wgpu::TextureFormat::Rgba32Float)?;
        let bytes_per_row = u64::from(TEXELS_PER_ROW) * 16;
        let value_bytes = values as u64 * 4;
        let whole_rows = (value_bytes / bytes_per_row) as u32;
        let tail_bytes = value_bytes - u64::from(whole_rows) * bytes_per_row;
        let tail = if tail_bytes > 0 { Some(self.alloc(what, bytes_per_row)?) } else { None };
        let at_row = |y: u32| wgpu::TexelCopyTextureInfo { texture: &texture, mip_level: 0, origin: wgpu::Origin3d { x: 0, y, z: 0 }, aspect: wgpu::TextureAspect::All };
        let layout = |rows: u32| wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(bytes_per_row as u32), rows_per_image: Some(rows) };
        self.record(|encoder| {
            if whole_rows > 0 {
                let size = wgpu::Extent3d { width: TEXELS_PER_ROW, height: whole_rows, depth_or_array_layers: 1 };
                encoder.copy_buffer_to_texture(wgpu::TexelCopyBufferInfo { buffer: buffer.raw(), layout: layout(whole_rows) }, at_row(0), size);
            }
            if let Some(tail) = &tail {
                let offset = u64::from(whole_rows) * bytes_per_row;
                encoder.copy_buffer_to_buffer(buffer.raw(), offset, tail.raw(), 0, tail_bytes);
                let size = wgpu::Extent3d { width: TEXELS_PER_ROW, height: 1, depth_or_array_layers: 1 };
                encoder.copy_buffer_to_texture(wgpu::TexelCopyBufferInfo { buffer: tail.raw(), layout: layout(1) }, at_row(whole_rows), size);
            }
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let bytes = u64::from(rows) * bytes_per_row;
        self.inner.memory.alloc(bytes);
        Ok(Texels { _texture: texture, view, bytes, memory: self.inner.memory.clone() })
    }

    /// A texture of `rows` rows of [`TEXELS_PER_ROW`] texels, read as a read-only storage texture
    /// (no sampler, so no filtering; WebGPU guarantees read-only storage for rgba32float and
    /// rgba16float): on lavapipe faster than a sampled one (wgsl/lib/matmul_b_texels.wgsl).
    fn texel_texture(&self, what: &str, rows: u32, format: wgpu::TextureFormat) -> Result<(wgpu::Texture, wgpu::Extent3d)> {
        let size = wgpu::Extent3d { width: TEXELS_PER_ROW, height: rows, depth_or_array_layers: 1 };
        let texture = self.scoped(what, || {
            self.inner.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(what),
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        })?;
        Ok((texture, size))
    }
}

/// Rows of the texture that holds `values` values, four to a texel, [`TEXELS_PER_ROW`] to a row.
fn texel_rows(values: usize) -> u64 {
    (values.div_ceil(4) as u64).div_ceil(TEXELS_PER_ROW as u64)
}
