//! Training and using a task: the layer above the model.
//!
//! Core (builds for wasm32):
//! - [`optim`]: the optimizer step and its state ([`Trainer`]), one training step on a batch;
//! - [`start`]: a run's beginning (the recipe checked, the backbone, the task initialised, the
//!   optimizer and schedule), the same natively and in a browser;
//! - [`step`]: one batch of a run (a training step with its loss and hits, an evaluation batch's
//!   predictions), async at its read-back so that a browser can await it;
//! - [`schedule`]: warm-up + cosine learning rate;
//! - [`config`]: everything `vpt train` is told ([`config::TrainConfig`]);
//! - [`recipe`]: the same, given as `name=value` settings with the flags' names and defaults
//!   (how a browser page says it);
//! - [`observer`]: what a run reports as it goes, step by step and epoch by epoch;
//! - [`task`]: the task file `vpt train` writes and `vpt eval` / `vpt predict` read, to and from
//!   bytes;
//! - [`data`]: the train/val split, the epoch's order, transforms from decoded pixels; natively,
//!   image folders and the threaded epoch loader.
//!
//! Native (files, folders, threads):
//! - [`fit`]: a whole `vpt train` run (epochs, validation, stopping on divergence or when asked);
//! - [`outputs`]: the files a command writes and the policy that keeps the user's files safe;
//! - [`resume`]: the state saved after every epoch, the settings recorded with it, the metrics;
//! - [`evaluate`]: accuracy on labelled images;
//! - `files`: task files on disk;
//! - [`predict`]: several tasks served from one backbone in one batch;
//! - [`compare`]: `vpt compare`, every method with one recipe (or each with its own search), as
//!   the paper's table and plot;
//! - [`sweep`]: `vpt sweep`, the paper's learning-rate × weight-decay search, refit and test.

pub mod config;
pub mod data;
pub mod observer;
pub mod optim;
pub mod recipe;
pub mod schedule;
pub mod start;
pub mod step;
pub mod task;
// Native: what needs files, folders or threads.
#[cfg(feature = "native")]
pub mod compare;
#[cfg(feature = "native")]
pub mod evaluate;
#[cfg(feature = "native")]
mod files;
#[cfg(feature = "native")]
pub mod fit;
#[cfg(feature = "native")]
pub mod outputs;
#[cfg(feature = "native")]
mod plot;
#[cfg(feature = "native")]
pub mod predict;
#[cfg(feature = "native")]
pub mod resume;
#[cfg(feature = "native")]
pub mod sweep;

pub use optim::{Optimizer, Trainer};
pub use schedule::WarmupCosine;
