//! Tuning methods, one file each: what a run trains besides the head (`--method`), and where in
//! the model each method acts. HF PEFT's layout: one home per method, owning its options, its
//! tensors and their names.
//!
//! - [`tuner`]: the interface every method implements ([`tuner::Tuner`]) and what it is handed;
//! - one file per method: [`prompt`], [`bias`], [`partial`], [`full`] pick what trains;
//!   [`adapter`], [`lora`], [`ia3`], [`dora`] add tensors of their own and act inside the
//!   blocks ([`low_rank`]: what LoRA and DoRA share);
//! - [`options`]: the sizes methods make their tensors with (reduction, rank, α);
//! - [`method`]: one run's methods, parsed from `--method` ([`method::Method`]);
//! - [`tuned`]: what a task holds besides prompts and head ([`tuned::Tuned`]);
//! - [`leaves`]: all of it as graph leaves for a step ([`leaves::BackboneVars`]);
//! - here, the registry: every method in one list ([`METHODS`]), how `--method` names it and how
//!   a task file's tensors are recognised as its. The list's order is the order a method's parts
//!   are named, described, trained, written to a task file and applied inside a block.
//!
//! Adding a method: one file beside this one implementing [`tuner::Tuner`], its `mod` line and
//! its line in [`METHODS`].

pub mod adapter;
pub mod bias;
pub mod dora;
pub mod full;
pub mod ia3;
pub mod leaves;
pub mod lora;
pub mod low_rank;
pub mod method;
pub mod options;
pub mod partial;
pub mod prompt;
pub mod tuned;
pub mod tuner;

use std::sync::Arc;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::io::TensorFile;
use options::MethodOptions;
use tuner::{Added, Tuner};

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
