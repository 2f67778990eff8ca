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

/// Texels per row of the texture; `TEXELS_PER_ROW` in `wgsl/lib/texel_rows.wgsl` (checked by
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
    /// Whether texels are this adapter's default source for what kernels read most (a frozen
    /// weight, a matmul's A, the fused attention's heads): on lavapipe (a CPU adapter on Vulkan),
    /// where each was measured faster read from texels than from storage buffers (the WGSL of
    /// each says by how much); on no other adapter, since none other has been measured.
    pub fn texels_pay(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu && self.inner.info.backend == wgpu::Backend::Vulkan
    }

    /// Would `values` values fit one texture of this device, [`TEXELS_PER_ROW`] texels wide?
    pub fn texels_fit(&self, values: usize) -> bool {
        let max = self.inner.limits.max_texture_dimension_2d as u64;
        TEXELS_PER_ROW as u64 <= max && (1..=max).contains(&texel_rows(values))
    }

    /// [`Texels`] holding the first `values` values of `buffer` (f32, or f16 where the buffer
    /// holds f16), copied on the device in the order of the commands already recorded, and run
    /// before this returns: no copy through the host, and the very bits the buffer holds. For a
    /// frozen weight, made once at load. An error naming `what` where they do not fit one texture
    /// ([`Gpu::texels_fit`]).
    pub fn texels(&self, what: &str, buffer: &GpuBuffer, values: usize) -> Result<Texels> {
        if !self.texels_fit(values) {
            let max = self.inner.limits.max_texture_dimension_2d;
            return Err(Error::invalid(
                what,
                format!("{values} values do not fit one {TEXELS_PER_ROW}-texel-wide texture of at most {max} rows on {}; keep this weight in its buffer", self.describe()),
            ));
        }
        let texels = self.record_texels(what, buffer, values)?;
        // Run the copies now, one weight at a time: on lavapipe the copies of a whole model
        // recorded into one submission left about as much resident memory again behind them
        // (vpt_step_memory: 1378 MiB resident at load for 651 MiB of weights and texels).
        self.wait_for_all()?;
        Ok(texels)
    }

    /// [`Texels`] of an activation's first `values` f32 values, for the launches about to be
    /// recorded (a matmul's A, the fused attention's heads): copied as [`Gpu::texels`] copies a
    /// weight's, without waiting for the copy. An internal error naming `what` where they do not
    /// fit one texture: the launcher should have asked [`Gpu::texels_fit`] and read the buffer.
    pub fn activation_texels(&self, what: &str, buffer: &GpuBuffer, values: usize) -> Result<Texels> {
        if !self.texels_fit(values) || buffer.holds_f16() {
            return Err(Error::Internal {
                what: what.to_string(),
                msg: format!("{values} values of an f32 activation were asked as texels that do not fit one texture; the launcher should have read its buffer"),
            });
        }
        self.record_texels(what, buffer, values)
    }

    /// Records the copy of `buffer`'s first `values` values into a new texture (rgba16float where
    /// the buffer holds f16, else rgba32float) after the commands already recorded. A
    /// buffer→texture copy takes whole rows of texels: those go straight from `buffer`, and the
    /// last, partial row, if any, through a zeroed buffer of one row (pooled), so the padding
    /// reads as zeros. The caller has checked that they fit.
    fn record_texels(&self, what: &str, buffer: &GpuBuffer, values: usize) -> Result<Texels> {
        let (format, texel_bytes) = if buffer.holds_f16() { (wgpu::TextureFormat::Rgba16Float, 8) } else { (wgpu::TextureFormat::Rgba32Float, 16) };
        let rows = texel_rows(values) as u32;
        let texture = self.texel_texture(what, TEXELS_PER_ROW, rows, format)?;
        let bytes_per_row = u64::from(TEXELS_PER_ROW * texel_bytes);
        let value_bytes = values as u64 * texel_bytes as u64 / 4;
        let whole_rows = (value_bytes / bytes_per_row) as u32;
        let tail_bytes = value_bytes - u64::from(whole_rows) * bytes_per_row;
        let tail = if tail_bytes > 0 { Some(self.alloc(what, bytes_per_row)?) } else { None };
        let at_row = |y: u32| wgpu::TexelCopyTextureInfo { texture: &texture, mip_level: 0, origin: wgpu::Origin3d { x: 0, y, z: 0 }, aspect: wgpu::TextureAspect::All };
        let layout = |rows: u32| wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(bytes_per_row as u32), rows_per_image: Some(rows) };
        let rows_of = |height: u32| wgpu::Extent3d { width: TEXELS_PER_ROW, height, depth_or_array_layers: 1 };
        self.record(|encoder| {
            if whole_rows > 0 {
                encoder.copy_buffer_to_texture(wgpu::TexelCopyBufferInfo { buffer: buffer.raw(), layout: layout(whole_rows) }, at_row(0), rows_of(whole_rows));
            }
            if let Some(tail) = &tail {
                let offset = u64::from(whole_rows) * bytes_per_row;
                // A copy between buffers moves whole words: an f16 buffer of an odd count rounds up
                // into its own padding, which no kernel reads.
                let words = tail_bytes.next_multiple_of(4).min(buffer.raw().size() - offset);
                encoder.copy_buffer_to_buffer(buffer.raw(), offset, tail.raw(), 0, words);
                encoder.copy_buffer_to_texture(wgpu::TexelCopyBufferInfo { buffer: tail.raw(), layout: layout(1) }, at_row(whole_rows), rows_of(1));
            }
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let bytes = u64::from(rows) * bytes_per_row;
        self.inner.memory.alloc(bytes);
        Ok(Texels { _texture: texture, view, bytes, memory: self.inner.memory.clone() })
    }

    /// One f32 texel that kernels declare but are told by an override constant not to read (a
    /// matmul's A, the attention's heads, where they come from buffers): made once per device and
    /// bound wherever such a texture must be. Not counted among the tensors (16 bytes, held as
    /// long as the device, like its pipelines).
    pub(crate) fn stand_in_texels(&self) -> Result<&Texels> {
        if let Some(texels) = self.inner.stand_in_texels.get() {
            return Ok(texels);
        }
        let texture = self.texel_texture("a stand-in texel", 1, 1, wgpu::TextureFormat::Rgba32Float)?;
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let made = Texels { _texture: texture, view, bytes: 0, memory: self.inner.memory.clone() };
        Ok(self.inner.stand_in_texels.get_or_init(|| made))
    }

    /// A texture `width` texels wide and `rows` tall, read as a read-only storage texture (no
    /// sampler, so no filtering; WebGPU guarantees read-only storage for rgba32float and
    /// rgba16float): on lavapipe faster than a sampled one (wgsl/lib/matmul_b_texels.wgsl).
    fn texel_texture(&self, what: &str, width: u32, rows: u32, format: wgpu::TextureFormat) -> Result<wgpu::Texture> {
        let size = wgpu::Extent3d { width, height: rows, depth_or_array_layers: 1 };
        self.scoped(what, || {
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
        })
    }
}

/// Rows of the texture that holds `values` values, four to a texel, [`TEXELS_PER_ROW`] to a row.
fn texel_rows(values: usize) -> u64 {
    (values.div_ceil(4) as u64).div_ceil(TEXELS_PER_ROW as u64)
}
