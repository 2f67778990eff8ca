//! `.safetensors` to and from bytes: checkpoints, task files, batches, resume states, fixtures.
//!
//! Floating-point tensors stored as f32, f16 or bf16 are all read as f32 (f16/bf16 widened with
//! `half`); integer tensors (labels) as i64.
//!
//! `npz.rs` reads NumPy's `.npz` (Google's JAX checkpoints) from bytes; `pickle.rs` PyTorch's
//! `.pth`, without running its pickle.
//!
//! This file is core (it builds for wasm32); `files.rs`, native, reads and writes them on disk:
//! bounded by what a header declares, and atomically (a temporary file renamed into place), so an
//! interrupted write never leaves a half-written file behind.

#[cfg(feature = "native")]
mod files;
pub mod npz;
pub mod pickle;
#[cfg(feature = "native")]
pub use files::{bundled, read_regular_file, read_regular_text, read_safetensors_file, write_atomically, write_f32_tensors};

use std::collections::HashMap;

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// A tensor's values on the host.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// One tensor read from a file.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
    /// The dtype it was stored as ("F32", "F16", "BF16", "I64", ...), for error messages.
    pub stored_as: String,
}

/// Every tensor of a `.safetensors` file plus its `__metadata__` strings.
pub struct TensorFile {
    pub path: String,
    pub tensors: HashMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Parse a `.safetensors` file already in memory (`vpt check`'s embedded fixtures); `path`
    /// names it in errors.
    pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<TensorFile> {
        let path_str = path.to_string();
        let format_err = |msg: String| Error::Format { path: path_str.clone(), msg };
        check_header_length(bytes).map_err(format_err)?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format_err(format!("not a safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(bytes).map_err(|e| format_err(format!("not a safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in file.tensors() {
            let tensor = decode(&view).map_err(|msg| format_err(format!("tensor {name:?}: {msg}")))?;
            tensors.insert(name, tensor);
        }
        Ok(TensorFile { path: path_str, tensors, metadata })
    }

    /// A float tensor as f32, or an error naming the tensor and what was expected.
    pub fn f32(&self, name: &str) -> Result<(&[usize], &[f32])> {
        let t = self.get(name)?;
        match &t.data {
            HostData::F32(v) => Ok((&t.shape, v)),
            HostData::I64(_) => Err(self.err(format!("tensor {name:?} is {} but a float tensor was expected", t.stored_as))),
        }
    }

    /// A float tensor as [`TensorFile::f32`] gives it, checked as every tensor of a model, task,
    /// batch or resume state must be: no dimension of size 0, and every value finite.
    pub fn checked_f32(&self, name: &str) -> Result<(&[usize], &[f32])> {
        let (shape, data) = self.f32(name)?;
        if shape.contains(&0) {
            return Err(self.err(format!("tensor {name:?} has shape {shape:?}: every dimension must be at least 1")));
        }
        self.check_finite(name, data)?;
        Ok((shape, data))
    }

    /// [`TensorFile::checked_f32`] of a tensor that must have exactly `shape`.
    pub fn checked_f32_shaped(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let data = self.f32_shaped(name, shape)?;
        self.check_finite(name, data)?;
        Ok(data)
    }

    /// Error unless every value of tensor `name` is finite.
    pub fn check_finite(&self, name: &str, data: &[f32]) -> Result<()> {
        match first_non_finite(data) {
            Some(i) => Err(self.err(format!("tensor {name:?} holds {} at index {i}: every value must be finite (a diverged or corrupted file?)", data[i]))),
            None => Ok(()),
        }
    }

    /// An integer tensor as i64.
    pub fn i64(&self, name: &str) -> Result<(&[usize], &[i64])> {
        let t = self.get(name)?;
        match &t.data {
            HostData::I64(v) => Ok((&t.shape, v)),
            HostData::F32(_) => Err(self.err(format!("tensor {name:?} is {} but an integer tensor was expected", t.stored_as))),
        }
    }

    /// A float tensor that must have exactly `shape`.
    pub fn f32_shaped(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (found, data) = self.f32(name)?;
        if found != shape {
            return Err(self.err(format!("tensor {name:?} has shape {found:?}, expected {shape:?}")));
        }
        Ok(data)
    }

    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors.get(name).ok_or_else(|| self.err(format!("missing tensor {name:?}")))
    }

    /// A `__metadata__` value parsed as `T`.
    pub fn meta<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let raw = self.metadata.get(key).ok_or_else(|| self.err(format!("missing metadata key {key:?}")))?;
        raw.parse().map_err(|_| self.err(format!("metadata {key:?} = {raw:?} is not a valid value")))
    }

    /// Elements in all its tensors together (a task file's: the parameters it trained).
    pub fn total_elements(&self) -> usize {
        self.tensors.values().map(|t| t.shape.iter().product::<usize>()).sum()
    }

    pub fn err(&self, msg: String) -> Error {
        Error::Format { path: self.path.clone(), msg }
    }
}

/// The first 8 bytes of a safetensors file are the header's length: it must fit in the file.
fn check_header_length(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(prefix) = bytes.get(..8) else {
        return Err(format!("not a safetensors file: {} bytes, shorter than the 8-byte header length", bytes.len()));
    };
    let n = u64::from_le_bytes(prefix.try_into().expect("8 bytes"));
    if n > bytes.len() as u64 - 8 {
        return Err(format!("not a safetensors file: its header claims {n} bytes but the file has {} after the length", bytes.len() - 8));
    }
    Ok(())
}

/// The index of the first value that is NaN or infinite, if any.
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    values.iter().position(|v| !v.is_finite())
}

fn decode(view: &TensorView) -> std::result::Result<HostTensor, String> {
    let bytes = view.data();
    let data = match view.dtype() {
        Dtype::F32 => HostData::F32(bytemuck::pod_collect_to_vec(bytes)),
        Dtype::F16 => HostData::F32(bytemuck::pod_collect_to_vec::<u8, f16>(bytes).iter().map(|v| v.to_f32()).collect()),
        Dtype::BF16 => HostData::F32(bytemuck::pod_collect_to_vec::<u8, bf16>(bytes).iter().map(|v| v.to_f32()).collect()),
        Dtype::F64 => HostData::F32(bytemuck::pod_collect_to_vec::<u8, f64>(bytes).iter().map(|&v| v as f32).collect()),
        Dtype::I64 => HostData::I64(bytemuck::pod_collect_to_vec(bytes)),
        Dtype::I32 => HostData::I64(bytemuck::pod_collect_to_vec::<u8, i32>(bytes).iter().map(|&v| v as i64).collect()),
        other => return Err(format!("dtype {other:?} is not supported (use F32, F16, BF16, F64, I64 or I32)")),
    };
    Ok(HostTensor { shape: view.shape().to_vec(), data, stored_as: format!("{:?}", view.dtype()) })
}

/// The bytes of a safetensors file holding these f32 tensors and metadata (`name`, the file's
/// name or path, only for errors). The header's keys are sorted, so the same tensors and metadata
/// always give the same bytes.
pub fn f32_tensors_to_bytes(name: &str, tensors: &[(&str, &[usize], &[f32])], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(tensor, shape, data)| {
            TensorView::new(Dtype::F32, shape.to_vec(), bytemuck::cast_slice(data))
                .map(|v| (tensor.to_string(), v))
                .map_err(|e| Error::Format { path: name.to_string(), msg: format!("tensor {tensor:?} with shape {shape:?}: {e}") })
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Format { path: name.to_string(), msg: e.to_string() })?;
    with_sorted_header(&bytes).map_err(|msg| Error::Format { path: name.to_string(), msg })
}

/// A serialized safetensors file with its header's keys (tensor names, `__metadata__` keys) in
/// sorted order: the serializer writes the metadata map in hash order, which changes from run to
/// run. Tensor offsets are relative to the end of the header, so they stay valid.
fn with_sorted_header(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    use std::collections::BTreeMap;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| e.to_string())?;
    if let Some(meta) = header.get_mut("__metadata__") {
        let sorted: BTreeMap<String, serde_json::Value> = serde_json::from_value(meta.take()).map_err(|e| e.to_string())?;
        *meta = serde_json::to_value(sorted).map_err(|e| e.to_string())?;
    }
    let mut text = serde_json::to_string(&header).map_err(|e| e.to_string())?.into_bytes();
    // The format pads the header with spaces to a multiple of 8 bytes, so the data stays aligned.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}
