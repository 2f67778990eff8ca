//! Files on disk (native): a `.safetensors` read bounded by what its header declares, any other
//! file read only if it is regular and of a stated size at most, and an atomic write. What the
//! bytes of a `.safetensors` mean is `mod.rs`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{f32_tensors_to_bytes, TensorFile};
use crate::error::{Error, Result};

/// The most bytes a safetensors header may have (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

impl TensorFile {
    /// Read a whole `.safetensors` file, bounded by what its header declares (see
    /// [`read_safetensors_file`]).
    pub fn read(path: impl AsRef<Path>) -> Result<TensorFile> {
        let bytes = read_safetensors_file(path.as_ref())?;
        TensorFile::from_bytes(&path.as_ref().display().to_string(), &bytes)
    }
}

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
fn not_a_regular_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    if meta.is_file() {
        None
    } else if meta.is_dir() {
        Some("a folder")
    } else {
        Some("not a regular file (a pipe, socket or device)")
    }
}

/// The bytes of a regular file of at most `max_bytes`, and no more than it had when looked at: a
/// FIFO (which would block for ever), a device such as `/dev/zero` (which never ends), a folder,
/// or a file over the limit is refused from its metadata alone. The error says why, for the user;
/// the caller names the file.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if let Some(kind) = not_a_regular_file(&meta) {
        return Err(format!("is {kind}"));
    }
    if meta.len() > max_bytes {
        return Err(format!("has {} bytes, more than the {max_bytes} this kind of file may have", meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(meta.len()).read_to_end(&mut bytes)).map_err(|e| format!("cannot be read: {e}"))?;
    Ok(bytes)
}

/// [`read_regular_file`] as text.
pub fn read_regular_text(path: &Path, max_bytes: u64) -> std::result::Result<String, String> {
    String::from_utf8(read_regular_file(path, max_bytes)?).map_err(|_| "is not UTF-8 text".to_string())
}

/// Write f32 tensors and metadata to `path` atomically (a temporary file of this process's own in
/// the same folder, then renamed over `path`; removed if anything fails). The header's keys are
/// sorted, so the same tensors and metadata always give the same bytes.
pub fn write_f32_tensors(path: impl AsRef<Path>, tensors: &[(&str, &[usize], &[f32])], metadata: HashMap<String, String>) -> Result<()> {
    let path = path.as_ref();
    write_atomically(path, &f32_tensors_to_bytes(&path.display().to_string(), tensors, metadata)?)
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

/// A path of the repository's (`fixtures/demo`, `web/pkg`): under the current folder where it is
/// there, else under the crate's own folder, so that a command finds it from anywhere.
pub fn bundled(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
    }
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
