//! Tuning methods, one file each: what a run trains besides the head (`--method`), and where in
//! the model each method acts. HF PEFT's layout: one home per method, owning its options, its
//! tensors and their names.
//!
//! - [`tuner`]: the interface every method implements ([`tuner::Tuner`]) and what it is handed;
//! - one file per method: [`prompt`], [`bias`], [`partial`], [`full`] pick what trains;
//!   [`adapter`], [`lora`], [`ia3`], [`dora`] add tensors of their own and act inside the
//!   blocks ([`low_rank`]: what LoRA and DoRA share);
//! - [`registry`]: the list of methods, how `--method` names them and how task files are read;
//! - [`options`]: the sizes methods make their tensors with (reduction, rank, α);
//! - [`method`]: one run's methods, parsed from `--method` ([`method::Method`]);
//! - [`tuned`]: what a task holds besides prompts and head ([`tuned::Tuned`]);
//! - [`leaves`]: all of it as graph leaves for a step ([`leaves::BackboneVars`]).

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
pub mod registry;
pub mod tuned;
pub mod tuner;
