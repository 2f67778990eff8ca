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
    /// Read a whole `.safetensors` file, bounded by what its header declares (see
    /// [`read_safetensors_file`]).
    pub fn read(path: impl AsRef<Path>) -> Result<TensorFile> {
        let bytes = read_safetensors_file(path.as_ref())?;
        TensorFile::from_bytes(&path.as_ref().display().to_string(), &bytes)
    }

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

/// The most bytes a safetensors header may have (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The bytes of a `.safetensors` file, read as its header says and no further. Only a regular
/// file is opened (a folder, a FIFO or a device is an error naming it); then the header's length
/// (8 bytes) is read and checked against the file's size, then the header alone, whose tensors
/// declare how many bytes of data follow; only a file of exactly that size is read whole, and only
/// once the memory for it was granted. So a file of zeros, a huge sparse file or a header that
/// declares more than the file has is refused after reading a few bytes, never by running out of
/// memory.
pub fn read_safetensors_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let path_str = path.display().to_string();
    let io_err = |source| Error::Io { path: path_str.clone(), source };
    let format_err = |msg: String| Error::Format { path: path_str.clone(), msg };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if let Some(kind) = not_a_regular_file(&meta) {
        return Err(format_err(format!("is {kind}; give the path of a .safetensors file")));
    }
    let size = meta.len();
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut prefix = [0u8; 8];
    if size < 8 {
        return Err(format_err(format!("not a safetensors file: {size} bytes, shorter than the 8-byte header length")));
    }
    file.read_exact(&mut prefix).map_err(io_err)?;
    let n = u64::from_le_bytes(prefix);
    if n > size - 8 || n > MAX_HEADER_BYTES {
        return Err(format_err(format!("not a safetensors file: its header claims {n} bytes but the file has {} after the length (and a header has at most {MAX_HEADER_BYTES})", size - 8)));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io_err)?;
    let declared: safetensors::tensor::Metadata = serde_json::from_slice(&header).map_err(|e| format_err(format!("not a safetensors file: its header is not a safetensors header: {e}")))?;
    let total = 8 + n + declared.data_len() as u64;
    if total != size {
        return Err(format_err(format!("its header declares {} bytes of tensor data, so {total} bytes in all, but the file has {size}: cut short, or not a safetensors file", declared.data_len())));
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(total as usize).map_err(|_| format_err(format!("needs {total} bytes of memory to read, more than this machine can give")))?;
    bytes.extend_from_slice(&prefix);
    bytes.extend_from_slice(&header);
    file.take(total - 8 - n).read_to_end(&mut bytes).map_err(io_err)?;
    Ok(bytes)
}

/// What a path is when it is not a regular file ("a folder", "not a regular file (a pipe,
/// socket or device)"), which a loader must refuse before opening it: a FIFO would block for
/// ever, a device such as `/dev/zero` never end. `None` for a regular file.
pub fn not_a_regular_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    if meta.is_file() {
        None
    } else if meta.is_dir() {
        Some("a folder")
    } else {
        Some("not a regular file (a pipe, socket or device)")
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

/// Write f32 tensors and metadata to `path` atomically (a temporary file of this process's own in
/// the same folder, then renamed over `path`; removed if anything fails). The header's keys are
/// sorted, so the same tensors and metadata always give the same bytes.
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
    let bytes = with_sorted_header(&bytes).map_err(|msg| Error::Format { path: path_str.clone(), msg })?;
    write_atomically(path, &bytes)
}

/// Write `bytes` to `path` through a temporary file named after this process (two processes
/// never share one), renamed into place. The temporary file is created exclusively, so a file
/// already under that name (however unlikely) is never truncated: the next name is tried. It is
/// removed if anything fails after it was made.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let path_str = path.display().to_string();
    let io_err = |source| Error::Io { path: path_str.clone(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = path.with_file_name(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 99 => attempt += 1,
            Err(e) => return Err(io_err(e)),
        }
    };
    let written = file.write_all(bytes);
    drop(file); // closed before the rename, which Windows requires
    let written = written.and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io_err)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vpt-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// A sparse file of a terabyte of zeros: refused from its first bytes, never read or
    /// allocated (reading it whole aborted the process).
    #[test]
    fn a_terabyte_of_zeros_is_refused_without_reading_it() {
        let path = scratch("zeros.safetensors");
        std::fs::File::create(&path).unwrap().set_len(1 << 40).unwrap();
        let err = TensorFile::read(&path).err().expect("must be refused").to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("not a safetensors header"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    /// A header that declares more tensor data than the file has is refused before the data is
    /// read; one that declares less (bytes after the data) too.
    #[test]
    fn a_header_is_checked_against_the_file_size_before_the_data_is_read() {
        let path = scratch("short.safetensors");
        write_f32_tensors(&path, &[("w", &[2, 2][..], &[1.0, 2.0, 3.0, 4.0][..])], HashMap::new()).unwrap();
        let whole = std::fs::read(&path).unwrap();
        assert_eq!(TensorFile::read(&path).unwrap().f32("w").unwrap().1, [1.0, 2.0, 3.0, 4.0]);
        std::fs::write(&path, &whole[..whole.len() - 4]).unwrap();
        let err = TensorFile::read(&path).err().expect("a file cut short must be refused").to_string();
        assert!(err.contains("declares 16 bytes of tensor data") && err.contains("cut short"), "{err}");
        let mut longer = whole.clone();
        longer.extend([0u8; 4]);
        std::fs::write(&path, &longer).unwrap();
        assert!(TensorFile::read(&path).is_err(), "bytes after the declared data must be refused");
        std::fs::remove_file(&path).unwrap();
    }
}
