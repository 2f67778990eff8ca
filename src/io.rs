//! Reading and writing `.safetensors` files: PyTorch fixtures now, checkpoints and task files later.
//!
//! Floating-point tensors stored as f32, f16 or bf16 are all read as f32 (f16/bf16 widened with
//! `half`); integer tensors (labels) as i64. Writes go to a temporary file that is renamed into
//! place, so an interrupted write never leaves a half-written file behind.

use std::collections::HashMap;
use std::path::Path;

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
    pub fn read(path: impl AsRef<Path>) -> Result<TensorFile> {
        let path_str = path.as_ref().display().to_string();
        let bytes = std::fs::read(path.as_ref()).map_err(|source| Error::Io { path: path_str.clone(), source })?;
        let format_err = |msg: String| Error::Format { path: path_str.clone(), msg };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format_err(format!("not a safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(&bytes).map_err(|e| format_err(format!("not a safetensors file: {e}")))?;
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

    fn err(&self, msg: String) -> Error {
        Error::Format { path: self.path.clone(), msg }
    }
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

/// Write f32 tensors and metadata to `path` atomically (temporary file in the same directory,
/// then rename).
pub fn write_f32_tensors(path: impl AsRef<Path>, tensors: &[(&str, &[usize], &[f32])], metadata: HashMap<String, String>) -> Result<()> {
    let path = path.as_ref();
    let path_str = path.display().to_string();
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.to_vec(), bytemuck::cast_slice(data))
                .map(|v| (name.to_string(), v))
                .map_err(|e| Error::Format { path: path_str.clone(), msg: format!("tensor {name:?} with shape {shape:?}: {e}") })
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Format { path: path_str.clone(), msg: e.to_string() })?;
    let tmp = path.with_extension("safetensors.tmp");
    let io_err = |source| Error::Io { path: path_str.clone(), source };
    std::fs::write(&tmp, &bytes).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}
