//! `Tensor`: an f32 storage buffer on the GPU plus its shape (row-major, last axis contiguous).
//!
//! Tensors are immutable values: every op returns a new tensor, and `reshape` shares the buffer.
//! The only ops that write into an existing tensor are the optimizer updates, which say so.
//! Host data in f16 or bf16 (as checkpoints often store it) is widened to f32 on upload.
//!
//! Two exceptions to f32, both under `--precision f16` and both half the memory ([`DType::F16`]):
//! a frozen weight ([`Tensor::from_f16_stored`]), which only a matmul's B operand may be, read
//! widened to f32; and an activation kept for the backward ([`Tensor::zeros_f16`], filled by
//! `kernels::halves`). The launch checks every binding (`Gpu::dispatch`); every op's output is
//! f32.

use std::sync::Arc;

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer, Texels};

/// How a tensor's values are stored on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    /// Half precision: frozen weights and kept activations under `--precision f16` only.
    F16,
}

#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    buffer: Arc<GpuBuffer>,
    shape: Vec<usize>,
    /// A frozen weight's values once more, transposed: [K, N] for a weight stored [N, K], made
    /// once at load for the backward's dX products, which read it faster that way on some
    /// adapters ([`Tensor::with_transposed`]). None for every other tensor.
    transposed: Option<Arc<Tensor>>,
    /// A frozen weight's values once more, in a texture, for the matmuls that read it as their B
    /// operand where this adapter fetches texels faster ([`Tensor::with_texels`]). None for every
    /// other tensor.
    texels: Option<Arc<Texels>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

/// Number of elements of a shape, or an error naming `op` when it is empty or overflows.
pub fn numel_of(op: &'static str, shape: &[usize]) -> Result<usize> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(Error::shape(op, format!("shape {shape:?} has no elements; every dimension must be at least 1")));
    }
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| Error::shape(op, format!("shape {shape:?} has more elements than fit in memory")))
}

impl Tensor {
    fn new(gpu: &Gpu, buffer: GpuBuffer, shape: &[usize]) -> Tensor {
        Tensor { gpu: gpu.clone(), buffer: Arc::new(buffer), shape: shape.to_vec(), transposed: None, texels: None }
    }

    /// This frozen weight [N, K] with `transposed` [K, N], the same values transposed and stored
    /// alike, riding along: a linear layer's backward then computes dX = dY · W as dY · (Wᵀ)ᵀ,
    /// reading Wᵀ's rows along K as the forward reads W's (`graph::ops::frozen_dx_operand`). It
    /// costs the weight's memory once more. Only for a tensor nothing writes into:
    /// [`Tensor::copy_from`] refuses one, and a trained leaf drops it (`Graph::param`).
    pub fn with_transposed(self, transposed: Tensor) -> Result<Tensor> {
        let fits = self.rank() == 2 && transposed.shape == [self.shape[1], self.shape[0]] && transposed.dtype() == self.dtype() && self.gpu.same_device(&transposed.gpu);
        if !fits {
            return Err(Error::shape("Tensor::with_transposed", format!("{:?} {:?} is not the transpose of the weight {:?} {:?}", transposed.shape, transposed.dtype(), self.shape, self.dtype())));
        }
        Ok(Tensor { transposed: Some(Arc::new(transposed)), ..self })
    }

    /// The transposed copy made at load ([`Tensor::with_transposed`]), if there is one.
    pub fn transposed(&self) -> Option<&Tensor> {
        self.transposed.as_deref()
    }

    /// This frozen weight with its values once more in a texture (`Gpu::texels`, copied from its
    /// buffer on the device), riding along: a matmul reading it as B reads the texture instead
    /// where the launcher can (`kernels::matmul`). An error where they would not fit one texture.
    pub fn with_texels(self) -> Result<Tensor> {
        let texels = self.gpu.texels(&format!("texels of a {:?} weight", self.shape), &self.buffer, self.numel())?;
        Ok(Tensor { texels: Some(Arc::new(texels)), ..self })
    }

    /// The texels made at load ([`Tensor::with_texels`]), if there are any.
    pub fn texels(&self) -> Option<&Texels> {
        self.texels.as_deref()
    }

    /// The same tensor without the copies a frozen weight carries (its transposed copy and its
    /// texels): for a leaf an optimizer updates in place, which would leave them behind.
    pub fn without_copies(self) -> Tensor {
        Tensor { transposed: None, texels: None, ..self }
    }

    /// Upload f32 host data.
    pub fn from_slice(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let n = numel_of("Tensor::from_slice", shape)?;
        if data.len() != n {
            return Err(Error::shape("Tensor::from_slice", format!("shape {shape:?} holds {n} elements but {} values were given", data.len())));
        }
        let buffer = gpu.alloc_init(&format!("tensor {shape:?}"), bytemuck::cast_slice(data))?;
        Ok(Tensor::new(gpu, buffer, shape))
    }

    /// Upload f16 host data, widened to f32.
    pub fn from_f16(gpu: &Gpu, shape: &[usize], data: &[f16]) -> Result<Tensor> {
        let wide: Vec<f32> = data.iter().map(|v| v.to_f32()).collect();
        Tensor::from_slice(gpu, shape, &wide)
    }

    /// Upload bf16 host data, widened to f32.
    pub fn from_bf16(gpu: &Gpu, shape: &[usize], data: &[bf16]) -> Result<Tensor> {
        let wide: Vec<f32> = data.iter().map(|v| v.to_f32()).collect();
        Tensor::from_slice(gpu, shape, &wide)
    }

    /// Upload values stored as f16 on the GPU (rounded to nearest): a frozen weight under
    /// `--precision f16`. An error where the adapter lacks SHADER_F16.
    pub fn from_f16_stored(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let n = numel_of("Tensor::from_f16_stored", shape)?;
        if data.len() != n {
            return Err(Error::shape("Tensor::from_f16_stored", format!("shape {shape:?} holds {n} elements but {} values were given", data.len())));
        }
        let half: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
        let buffer = gpu.alloc_init_f16(&format!("f16 tensor {shape:?}"), &half)?;
        Ok(Tensor::new(gpu, buffer, shape))
    }

    /// Upload values stored as `dtype`: as given ([`Tensor::from_slice`]), or rounded to f16
    /// ([`Tensor::from_f16_stored`]).
    pub fn from_slice_as(gpu: &Gpu, shape: &[usize], data: &[f32], dtype: DType) -> Result<Tensor> {
        match dtype {
            DType::F32 => Tensor::from_slice(gpu, shape, data),
            DType::F16 => Tensor::from_f16_stored(gpu, shape, data),
        }
    }

    /// How the values are stored.
    pub fn dtype(&self) -> DType {
        if self.buffer.holds_f16() {
            DType::F16
        } else {
            DType::F32
        }
    }

    /// A tensor of zeros (fresh wgpu buffers are zero-filled, so this uploads nothing).
    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let n = numel_of("Tensor::zeros", shape)?;
        let bytes = (n as u64).checked_mul(4).ok_or_else(|| Error::shape("Tensor::zeros", format!("shape {shape:?} is too large")))?;
        let buffer = gpu.alloc(&format!("tensor {shape:?}"), bytes)?;
        Ok(Tensor::new(gpu, buffer, shape))
    }

    /// A tensor of f16 zeros: room for values stored as f16 by a kernel (`kernels::halves`). Needs
    /// no SHADER_F16: the kernels that fill and read it see pairs of halves as u32.
    pub fn zeros_f16(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let n = numel_of("Tensor::zeros_f16", shape)?;
        let bytes = (n as u64).checked_mul(2).ok_or_else(|| Error::shape("Tensor::zeros_f16", format!("shape {shape:?} is too large")))?;
        let buffer = gpu.alloc_halves(&format!("f16 tensor {shape:?}"), bytes)?;
        Ok(Tensor::new(gpu, buffer, shape))
    }

    /// A tensor filled with one value.
    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        let n = numel_of("Tensor::full", shape)?;
        Tensor::from_slice(gpu, shape, &vec![value; n])
    }

    /// Download to the host (waits for every pending kernel). Native only: in a browser use
    /// [`Tensor::to_vec_async`] (`Gpu::read` says why).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.gpu.read(&self.buffer, self.stored_bytes())?;
        Ok(self.values_of(&bytes))
    }

    /// Download to the host without blocking: what a browser must use (`gpu/readback.rs`).
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        let bytes = self.gpu.read_async(&self.buffer, self.stored_bytes()).await?;
        Ok(self.values_of(&bytes))
    }

    /// The bytes to read back: 4 per f32, 2 per f16 (buffers are whole 4-byte words, so an odd
    /// count of halves has one of padding).
    fn stored_bytes(&self) -> u64 {
        match self.dtype() {
            DType::F16 => (self.numel() as u64 * 2).next_multiple_of(4),
            DType::F32 => self.numel() as u64 * 4,
        }
    }

    /// The values in bytes read back from this tensor's buffer, as f32.
    fn values_of(&self, bytes: &[u8]) -> Vec<f32> {
        match self.dtype() {
            DType::F16 => {
                let half: Vec<f16> = bytemuck::pod_collect_to_vec(bytes);
                half[..self.numel()].iter().map(|v| v.to_f32()).collect()
            }
            DType::F32 => bytemuck::pod_collect_to_vec(bytes),
        }
    }

    /// Download a one-element tensor as a number.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape("Tensor::to_scalar", format!("shape {:?} is not a single value", self.shape)));
        }
        Ok(self.to_vec()?[0])
    }

    /// The same storage seen with another shape of the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = numel_of("reshape", shape)?;
        if n != self.numel() {
            return Err(Error::shape("reshape", format!("cannot view {:?} ({} elements) as {shape:?} ({n} elements)", self.shape, self.numel())));
        }
        Ok(Tensor { gpu: self.gpu.clone(), buffer: self.buffer.clone(), shape: shape.to_vec(), transposed: None, texels: None })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Size of the last axis (the contiguous one).
    pub fn last_dim(&self) -> usize {
        *self.shape.last().expect("tensors always have at least one dimension")
    }
    /// Number of rows when the tensor is seen as `[rows, last_dim]`.
    pub fn rows(&self) -> usize {
        self.numel() / self.last_dim()
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    pub fn buffer(&self) -> &GpuBuffer {
        &self.buffer
    }
    /// Do two tensors share storage? (Used to refuse in-place ops that would alias.)
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }

    /// Overwrite this tensor's values with `src`'s (same shape), in place: for restoring saved
    /// training state into tensors an optimizer updates.
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if self.transposed.is_some() || self.texels.is_some() {
            return Err(Error::Internal { what: "Tensor::copy_from".into(), msg: format!("the weight {:?} carries a transposed copy or texels, which the write would leave behind", self.shape) });
        }
        if src.shape != self.shape || !self.gpu.same_device(&src.gpu) || src.dtype() != self.dtype() {
            return Err(Error::shape("Tensor::copy_from", format!("cannot copy {:?} {:?} into {:?} {:?}", src.shape, src.dtype(), self.shape, self.dtype())));
        }
        let bytes = match self.dtype() {
            DType::F32 => self.numel() as u64 * 4,
            DType::F16 => (self.numel() as u64 * 2).next_multiple_of(4),
        };
        self.gpu.copy(&src.buffer, &self.buffer, bytes)
    }

    /// An op's output: a zeroed tensor on the same device.
    pub(crate) fn empty_like_shape(&self, shape: &[usize]) -> Result<Tensor> {
        Tensor::zeros(&self.gpu, shape)
    }
}

/// Labels for classification: one `u32` class index per sample, on the GPU.
#[derive(Clone)]
pub struct Labels {
    buffer: Arc<GpuBuffer>,
    len: usize,
    num_classes: usize,
}

impl Labels {
    /// Upload class indices; each must be below `num_classes`.
    pub fn new(gpu: &Gpu, labels: &[u32], num_classes: usize) -> Result<Labels> {
        if labels.is_empty() {
            return Err(Error::shape("Labels::new", "no labels given"));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= num_classes) {
            return Err(Error::shape("Labels::new", format!("label {l} at position {i} is not below the {num_classes} classes")));
        }
        let buffer = gpu.alloc_init("labels", bytemuck::cast_slice(labels))?;
        Ok(Labels { buffer: Arc::new(buffer), len: labels.len(), num_classes })
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The class count every label was checked against on upload.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }
    pub fn buffer(&self) -> &GpuBuffer {
        &self.buffer
    }
}
