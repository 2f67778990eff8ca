//! PyTorch's `.pth` (`torch.save`'s zip format): `ARCHIVE/data.pkl`, a pickle of the saved
//! object, and `ARCHIVE/data/KEY`, each tensor storage's raw little-endian bytes.
//!
//! A pickle is a program: unpickling one with Python runs whatever functions it names. This
//! reader runs nothing. It is a small stack machine for the opcodes `torch.save` writes
//! (protocols 2 to 5), and it knows exactly the names a state dict needs: `OrderedDict`, the
//! tensor-rebuild functions and the storage types. Any other name (`os.system`, `argparse.
//! Namespace`, a model class) is an error that names it, raised when the name is met, before
//! anything else. No crate fits: `serde-pickle` has no persistent ids, which is how `torch.save`
//! refers to its storages.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use crate::error::{Error, Result};

/// What a pickle may hold, as far as a state dict needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Insertion order kept.
    Dict(Vec<(Value, Value)>),
    /// One of the names this reader knows (`Known`), to be called by REDUCE.
    Known(Known),
    /// A storage: its element type ("Float", "Half", "BFloat16", …) and its key in `data/`.
    Storage {
        kind: String,
        key: String,
    },
    Tensor(TensorRef),
}

/// The names a state dict's pickle uses, and nothing else.
#[derive(Clone, Debug, PartialEq)]
pub enum Known {
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    /// `torch.FloatStorage` and the like: the element type.
    StorageType(String),
}

/// A tensor as the pickle describes it: a view of a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub kind: String,
    pub key: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// The name a GLOBAL refers to, if this reader knows it; else an error naming it.
fn known(module: &str, name: &str) -> std::result::Result<Known, String> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Known::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Known::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Ok(Known::RebuildParameter),
        ("torch", storage) if storage.ends_with("Storage") => Ok(Known::StorageType(storage.trim_end_matches("Storage").to_string())),
        _ => Err(format!("its pickle calls {module}.{name}, which a checkpoint of tensors has no need of; it was not run (only tensors, dicts, lists and numbers are read)")),
    }
}

/// The object a pickle holds, built without running anything. (Public for the loaders' fuzzing,
/// `tests/fuzz_loaders.rs`.)
pub fn unpickle(bytes: &[u8]) -> std::result::Result<Value, String> {
    let mut m = Machine { stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), at: 0, bytes };
    loop {
        let op = m.byte()?;
        match op {
            0x80 => drop(m.byte()?),             // PROTO
            0x95 => drop(m.take(8)?),            // FRAME
            b'.' => return m.pop(),              // STOP
            b'(' => m.marks.push(m.stack.len()), // MARK
            b'N' => m.stack.push(Value::None),   // NONE
            0x88 => m.stack.push(Value::Bool(true)),
            0x89 => m.stack.push(Value::Bool(false)),
            b'J' => {
                let v = m.u32()? as i32;
                m.stack.push(Value::Int(v as i64))
            }
            b'K' => {
                let v = m.byte()?;
                m.stack.push(Value::Int(v as i64))
            }
            b'M' => {
                let v = u16::from_le_bytes(m.take(2)?.try_into().expect("2 bytes"));
                m.stack.push(Value::Int(v as i64))
            }
            0x8a => {
                // LONG1: a little-endian two's-complement integer of n bytes
                let n = m.byte()? as usize;
                let v = m.take(n)?;
                if n > 8 {
                    return Err(format!("an integer of {n} bytes, larger than any a checkpoint needs"));
                }
                let mut full = [if v.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 }; 8];
                full[..n].copy_from_slice(v);
                m.stack.push(Value::Int(i64::from_le_bytes(full)))
            }
            b'G' => {
                let v = f64::from_be_bytes(m.take(8)?.try_into().expect("8 bytes"));
                m.stack.push(Value::Float(v))
            }
            b'X' => {
                let n = m.u32()? as usize;
                m.push_str(n)?
            }
            0x8c => {
                let n = m.byte()? as usize;
                m.push_str(n)?
            }
            0x8d => {
                let n = u64::from_le_bytes(m.take(8)?.try_into().expect("8 bytes")) as usize;
                m.push_str(n)?
            }
            b'C' | b'B' | 0x8e => return Err("holds raw bytes, which a checkpoint of tensors does not".into()),
            b']' => m.stack.push(Value::List(Vec::new())),
            b')' => m.stack.push(Value::Tuple(Vec::new())),
            b'}' => m.stack.push(Value::Dict(Vec::new())),
            b'l' => {
                let items = m.pop_mark()?;
                m.stack.push(Value::List(items))
            }
            b't' => {
                let items = m.pop_mark()?;
                m.stack.push(Value::Tuple(items))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let items = m.pop_n(n)?;
                m.stack.push(Value::Tuple(items))
            }
            b'a' => {
                let v = m.pop()?;
                match m.stack.last_mut() {
                    Some(Value::List(items)) => items.push(v),
                    _ => return Err("APPEND to something that is not a list".into()),
                }
            }
            b'e' => {
                let items = m.pop_mark()?;
                match m.stack.last_mut() {
                    Some(Value::List(list)) => list.extend(items),
                    _ => return Err("APPENDS to something that is not a list".into()),
                }
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.set_items(vec![k, v])?
            }
            b'u' => {
                let items = m.pop_mark()?;
                m.set_items(items)?
            }
            b'c' => {
                let module = m.line()?;
                let name = m.line()?;
                m.stack.push(Value::Known(known(&module, &name)?))
            }
            0x93 => {
                // STACK_GLOBAL
                let name = m.pop()?;
                let module = m.pop()?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => m.stack.push(Value::Known(known(&module, &name)?)),
                    _ => return Err("STACK_GLOBAL without two names".into()),
                }
            }
            b'R' => {
                let args = m.pop()?;
                let callable = m.pop()?;
                m.stack.push(call(callable, args)?)
            }
            b'b' => {
                // BUILD: a state set on the object below it. A dict's (OrderedDict's `_metadata`)
                // and a tensor's are of no use here; anything else was refused when its name came.
                drop(m.pop()?);
            }
            b'Q' => {
                // BINPERSID: torch.save's reference to a storage
                let pid = m.pop()?;
                m.stack.push(storage_of(pid)?)
            }
            b'q' => {
                let i = m.byte()? as u32;
                m.put(i)?
            }
            b'r' => {
                let i = m.u32()?;
                m.put(i)?
            }
            0x94 => {
                let i = m.memo.len() as u32;
                m.put(i)?
            }
            b'h' => {
                let i = m.byte()? as u32;
                m.get(i)?
            }
            b'j' => {
                let i = m.u32()?;
                m.get(i)?
            }
            other => return Err(format!("opcode 0x{other:02x} at byte {} is not one torch.save writes for a state dict", m.at - 1)),
        }
    }
}

/// The unpickler's state.
struct Machine<'a> {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    at: usize,
    bytes: &'a [u8],
}

impl Machine<'_> {
    fn byte(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian u32 (lengths, memo keys, BININT).
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("the pickle is cut short")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn line(&mut self) -> std::result::Result<String, String> {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("the pickle is cut short")?;
        self.at += end + 1;
        String::from_utf8(rest[..end].to_vec()).map_err(|_| "a name in the pickle is not text".into())
    }

    fn push_str(&mut self, n: usize) -> std::result::Result<(), String> {
        let text = String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a string in the pickle is not UTF-8")?;
        self.stack.push(Value::Str(text));
        Ok(())
    }

    fn pop(&mut self) -> std::result::Result<Value, String> {
        self.stack.pop().ok_or_else(|| "the pickle pops an empty stack".into())
    }

    fn pop_n(&mut self, n: usize) -> std::result::Result<Vec<Value>, String> {
        let at = self.stack.len().checked_sub(n).ok_or("the pickle pops an empty stack")?;
        Ok(self.stack.split_off(at))
    }

    fn pop_mark(&mut self) -> std::result::Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("the pickle has no mark to pop to")?;
        if mark > self.stack.len() {
            return Err("the pickle's mark lies above its stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn set_items(&mut self, items: Vec<Value>) -> std::result::Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with a key and no value".into());
        }
        let Some(Value::Dict(dict)) = self.stack.last_mut() else {
            return Err("SETITEM on something that is not a dict".into());
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.push((k, v));
        }
        Ok(())
    }

    fn put(&mut self, i: u32) -> std::result::Result<(), String> {
        let top = self.stack.last().ok_or("MEMOIZE with an empty stack")?.clone();
        self.memo.insert(i, top);
        Ok(())
    }

    fn get(&mut self, i: u32) -> std::result::Result<(), String> {
        let v = self.memo.get(&i).ok_or_else(|| format!("the pickle refers to memo {i}, which it never stored"))?.clone();
        self.stack.push(v);
        Ok(())
    }
}

/// REDUCE: one of the known names called with `args`.
fn call(callable: Value, args: Value) -> std::result::Result<Value, String> {
    let Value::Tuple(args) = args else { return Err("REDUCE without an argument tuple".into()) };
    match callable {
        Value::Known(Known::OrderedDict) => Ok(Value::Dict(Vec::new())),
        Value::Known(Known::RebuildParameter) => args.into_iter().next().ok_or_else(|| "_rebuild_parameter without a tensor".into()),
        Value::Known(Known::RebuildTensor) => {
            let [storage, offset, size, stride, ..] = &args[..] else { return Err("_rebuild_tensor_v2 with too few arguments".into()) };
            let Value::Storage { kind, key } = storage else { return Err("_rebuild_tensor_v2 of something that is not a storage".into()) };
            Ok(Value::Tensor(TensorRef { kind: kind.clone(), key: key.clone(), offset: index(offset)?, shape: sizes(size)?, stride: sizes(stride)? }))
        }
        other => Err(format!("the pickle calls {other:?}, which cannot be called")),
    }
}

/// BINPERSID's ('storage', storage type, key, location, numel).
fn storage_of(pid: Value) -> std::result::Result<Value, String> {
    match pid {
        Value::Tuple(t) => match &t[..] {
            [Value::Str(tag), Value::Known(Known::StorageType(kind)), Value::Str(key), ..] if tag == "storage" => Ok(Value::Storage { kind: kind.clone(), key: key.clone() }),
            _ => Err(format!("a persistent id {t:?} that is not a torch storage")),
        },
        other => Err(format!("a persistent id {other:?} that is not a torch storage")),
    }
}

fn index(v: &Value) -> std::result::Result<usize, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(format!("{other:?} where a tensor's offset or size belongs")),
    }
}

fn sizes(v: &Value) -> std::result::Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) => items.iter().map(index).collect(),
        other => Err(format!("{other:?} where a tensor's shape belongs")),
    }
}

/// A `torch.save` zip: the object its pickle holds, and each storage's bytes by key.
pub struct TorchFile {
    pub object: Value,
    pub storages: HashMap<String, Vec<u8>>,
}

/// Read a `torch.save` zip from `bytes`; `name` names it in errors.
pub fn read_torch_zip(name: &str, bytes: &[u8]) -> Result<TorchFile> {
    let err = |msg: String| Error::Format { path: name.to_string(), msg };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| err(format!("not a PyTorch zip checkpoint (torch.save since 1.6): {e}; an older (legacy) one must be saved again with a recent torch")))?;
    let mut pickle = None;
    let mut storages = HashMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| err(format!("entry {i}: {e}")))?;
        let entry_name = entry.name().map_err(|e| err(format!("entry {i}: {e}")))?.to_string();
        let Some((_, inner)) = entry_name.split_once('/') else { continue };
        if entry.size() > bytes.len() as u64 * 1032 {
            return Err(err(format!("{entry_name}: declares {} bytes, more than this archive can hold", entry.size())));
        }
        let wanted = inner == "data.pkl" || inner.starts_with("data/");
        if !wanted {
            continue;
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|e| err(format!("{entry_name}: {e}")))?;
        match inner.strip_prefix("data/") {
            Some(key) => drop(storages.insert(key.to_string(), data)),
            None => pickle = Some(data),
        }
    }
    let pickle = pickle.ok_or_else(|| err("has no data.pkl: not a torch.save checkpoint".into()))?;
    let object = unpickle(&pickle).map_err(err)?;
    Ok(TorchFile { object, storages })
}

impl TorchFile {
    /// A tensor's values as f32 (stored as f32, f16, bf16 or f64), read through its strides.
    pub fn values(&self, t: &TensorRef) -> std::result::Result<Vec<f32>, String> {
        let bytes = self.storages.get(&t.key).ok_or_else(|| format!("its storage {} is missing from the archive", t.key))?;
        let width = match t.kind.as_str() {
            "Float" => 4,
            "Half" | "BFloat16" => 2,
            "Double" => 8,
            other => return Err(format!("its storage holds {other} values, not floating point")),
        };
        let count = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= bytes.len()).ok_or("its shape holds more values than its storage")?;
        let past = || "a view reaches past its storage".to_string();
        let mut out = Vec::with_capacity(count);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..count {
            let step = index.iter().zip(&t.stride).try_fold(t.offset, |at, (i, s)| i.checked_mul(*s).and_then(|x| at.checked_add(x)));
            let start = step.and_then(|at| at.checked_mul(width)).ok_or_else(past)?;
            let raw = bytes.get(start..start.checked_add(width).ok_or_else(past)?).ok_or_else(past)?;
            out.push(match width {
                4 => f32::from_le_bytes(raw.try_into().expect("4 bytes")),
                8 => f64::from_le_bytes(raw.try_into().expect("8 bytes")) as f32,
                _ if t.kind == "Half" => half::f16::from_le_bytes(raw.try_into().expect("2 bytes")).to_f32(),
                _ => half::bf16::from_le_bytes(raw.try_into().expect("2 bytes")).to_f32(),
            });
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{unpickle, Value};

    #[test]
    fn a_global_outside_the_list_is_refused_by_name() {
        // pickle.dumps of os.system("echo pwned") as protocol 2: c posix\nsystem\n ... R
        let evil = b"\x80\x02cposix\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let err = unpickle(evil).unwrap_err();
        assert!(err.contains("posix.system") && err.contains("not run"), "{err}");
    }

    #[test]
    fn dicts_numbers_and_strings() {
        // {'epoch': 300, 'arch': 'vit', 'ok': True} as protocol 2
        let p = b"\x80\x02}q\x00(X\x05\x00\x00\x00epochq\x01M,\x01X\x04\x00\x00\x00archq\x02X\x03\x00\x00\x00vitq\x03X\x02\x00\x00\x00okq\x04\x88u.";
        let Value::Dict(items) = unpickle(p).unwrap() else { panic!("not a dict") };
        assert_eq!(items[0], (Value::Str("epoch".into()), Value::Int(300)));
        assert_eq!(items[2], (Value::Str("ok".into()), Value::Bool(true)));
    }
}
