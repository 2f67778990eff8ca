//! Every tuning method, in one list: how `--method` names it, and how a task file's tensors are
//! recognised as its. The list's order is the order a method's parts are named, described,
//! trained, written to a task file and applied inside a block.
//!
//! Adding a method: one file beside this one implementing [`Tuner`], and one line here.

use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::{Added, Tuner};
use super::{adapter, bias, dora, full, ia3, lora, partial, prompt};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::io::TensorFile;

/// How a method reads a part of `--method`: itself made with the options, or None if the part
/// names another.
pub type ParsePart = fn(part: &str, options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>>;

/// How a method that adds tensors finds its own in a task file (None: the file holds none).
pub type ReadAdded = fn(&Gpu, &TensorFile) -> Result<Option<Added>>;

/// One method: its part parser, and (for a method that adds tensors) its task-file reader.
pub struct Entry {
    /// How `--method` writes it, for the list in an error ("partial-K (K ≥ 1)").
    pub spelled: &'static str,
    /// The method a part of `--method` names, made with `options`; None if the part is not it.
    pub parse: ParsePart,
    /// The tensors this method added to a task file, if the file holds any.
    pub read: Option<ReadAdded>,
}

pub const METHODS: [Entry; 8] = [
    Entry { spelled: "prompt", parse: prompt::parse, read: None },
    Entry { spelled: "bias", parse: bias::parse, read: None },
    Entry { spelled: "partial-K (K ≥ 1)", parse: partial::parse, read: None },
    Entry { spelled: "full", parse: full::parse, read: None },
    Entry { spelled: "adapter", parse: adapter::parse, read: Some(adapter::read) },
    Entry { spelled: "lora", parse: lora::parse, read: Some(lora::read) },
    Entry { spelled: "ia3", parse: ia3::parse, read: Some(ia3::read) },
    Entry { spelled: "dora", parse: dora::parse, read: Some(dora::read) },
];

/// The method a part of `--method` names, and its place in [`METHODS`]; None if no method is it.
pub fn parse_part(part: &str, options: &MethodOptions) -> Option<Result<(usize, Arc<dyn Tuner>)>> {
    METHODS.iter().enumerate().find_map(|(rank, entry)| (entry.parse)(part, options).map(|made| made.map(|tuner| (rank, tuner))))
}

/// Every method's tensors in a task file, in [`METHODS`] order.
pub fn read_added(gpu: &Gpu, f: &TensorFile) -> Result<Vec<Added>> {
    let mut out = Vec::new();
    for read in METHODS.iter().filter_map(|e| e.read) {
        out.extend(read(gpu, f)?);
    }
    Ok(out)
}

/// The place in [`METHODS`] of the method named `name` (a [`Tuner::name`]).
pub fn rank_of(name: &str) -> usize {
    METHODS.iter().position(|e| (e.parse)(name, &MethodOptions::default()).is_some()).unwrap_or(METHODS.len())
}

/// "prompt, linear, bias, …": every method as `--method` writes it, for an error.
pub fn spelled() -> String {
    let names: Vec<&str> = std::iter::once("linear").chain(METHODS.iter().map(|e| e.spelled)).collect();
    names.join(", ")
}
