//! NumPy's `.npz`: a zip archive of `.npy` arrays, as Google publishes its JAX ViT checkpoints
//! (`np.savez`). The zip is the `zip` crate's; an `.npy` is a short header and the raw values,
//! read here (format 1.0 to 3.0: little-endian f32, f16 or f64, C order). Core: from bytes.

use std::io::{Cursor, Read};

use half::f16;

use crate::error::{Error, Result};

/// One array: its name in the archive (without `.npy`), shape and values widened to f32.
pub type NpyArray = (String, Vec<usize>, Vec<f32>);

/// Every array of the `.npz` in `bytes`; `name` names the file in errors.
pub fn read_npz(name: &str, bytes: &[u8]) -> Result<Vec<NpyArray>> {
    let err = |msg: String| Error::Format { path: name.to_string(), msg };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| err(format!("not an .npz (a zip of .npy arrays): {e}")))?;
    let mut arrays = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| err(format!("entry {i} of the archive: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let entry_name = entry.name().map_err(|e| err(format!("entry {i} of the archive has no readable name: {e}")))?.to_string();
        let Some(array_name) = entry_name.strip_suffix(".npy") else {
            return Err(err(format!("holds {entry_name:?}, which is not an .npy array")));
        };
        // The archive says how large the entry is; refuse a size it cannot have before reading it.
        if entry.size() > bytes.len() as u64 * 1032 {
            return Err(err(format!("{entry_name}: declares {} bytes, more than this archive can hold", entry.size())));
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|e| err(format!("{entry_name}: {e}")))?;
        let (shape, values) = parse_npy(&data).map_err(|why| err(format!("{entry_name}: {why}")))?;
        arrays.push((array_name.to_string(), shape, values));
    }
    Ok(arrays)
}

/// An `.npy` file's shape and values. (Public for the loaders' fuzzing, `tests/fuzz_loaders.rs`.)
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let rest = bytes.strip_prefix(b"\x93NUMPY").ok_or("not an .npy array (no \\x93NUMPY magic)")?;
    let (&major, rest) = rest.split_first().ok_or("cut short in its header")?;
    let rest = rest.get(1..).ok_or("cut short in its header")?;
    let (len, rest) = match major {
        1 => (u16::from_le_bytes(rest.get(..2).ok_or("cut short in its header")?.try_into().expect("2 bytes")) as usize, &rest[2..]),
        2 | 3 => (u32::from_le_bytes(rest.get(..4).ok_or("cut short in its header")?.try_into().expect("4 bytes")) as usize, &rest[4..]),
        v => return Err(format!(".npy format version {v} is not one this reads (1 to 3)")),
    };
    let header = std::str::from_utf8(rest.get(..len).ok_or("cut short in its header")?).map_err(|_| "its header is not text")?;
    let data = &rest[len..];
    let descr = dict_value(header, "descr").ok_or("its header has no 'descr'")?;
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("is stored in Fortran order; save it in C order (np.ascontiguousarray)".into());
    }
    let shape = parse_shape(dict_value(header, "shape").ok_or("its header has no 'shape'")?)?;
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= data.len()).ok_or_else(|| format!("its shape {shape:?} holds more values than its {} bytes", data.len()))?;
    let width = match quoted(descr).ok_or("its 'descr' is not a quoted dtype")? {
        "<f4" => 4,
        "<f2" => 2,
        "<f8" => 8,
        other => return Err(format!("dtype {other} is not one this reads (little-endian float32, float16 or float64)")),
    };
    let data = data.get(..count * width).ok_or_else(|| format!("holds {} bytes of values, fewer than its shape {shape:?} needs", data.len()))?;
    let values = match width {
        4 => bytemuck::pod_collect_to_vec(data),
        2 => bytemuck::pod_collect_to_vec::<u8, f16>(data).iter().map(|v| v.to_f32()).collect(),
        _ => bytemuck::pod_collect_to_vec::<u8, f64>(data).iter().map(|&v| v as f32).collect(),
    };
    Ok((shape, values))
}

/// The text after `'key':` in an .npy header dict, up to the end of the header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = header[at + key.len() + 2..].trim_start();
    Some(rest.strip_prefix(':')?.trim_start())
}

/// The text between the quotes that open `text` ('<f4' or "<f4").
fn quoted(text: &str) -> Option<&str> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    text[1..].split(quote).next()
}

/// "(768, 3, 16)" (or "()" for a scalar) at the start of `text`.
fn parse_shape(text: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = text.strip_prefix('(').and_then(|t| t.split_once(')')).map(|(inner, _)| inner).ok_or("its shape is not a tuple")?;
    inner.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse().map_err(|_| format!("its shape has {d:?}, not a size"))).collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_npy, parse_shape};

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn arrays_of_each_width_and_bad_ones() {
        let values = [1.5f32, -2.0, 3.25];
        let (shape, got) = parse_npy(&npy("<f4", "(3,)", bytemuck::cast_slice(&values))).unwrap();
        assert_eq!((shape, got), (vec![3], values.to_vec()));
        let wide: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        assert_eq!(parse_npy(&npy("<f8", "(1, 3)", bytemuck::cast_slice(&wide))).unwrap(), (vec![1, 3], values.to_vec()));
        assert_eq!(parse_shape("()").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_npy(&npy("<i8", "(3,)", &[0; 24])).unwrap_err(), "dtype <i8 is not one this reads (little-endian float32, float16 or float64)");
        assert!(parse_npy(&npy("<f4", "(4,)", bytemuck::cast_slice(&values))).unwrap_err().contains("fewer than its shape"));
        assert!(parse_npy(b"PK\x03\x04").unwrap_err().contains("magic"));
    }
}
