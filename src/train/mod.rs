//! Training and using a task: the layer above the model.
//!
//! - [`optim`]: the optimizer step and its state ([`Trainer`]), one training step on a batch;
//! - [`schedule`]: warm-up + cosine learning rate;
//! - [`config`]: everything `vpt train` is told ([`config::TrainConfig`]);
//! - [`fit`]: a whole `vpt train` run (epochs, validation, stopping on divergence or Ctrl-C);
//! - [`observer`]: what a run reports as it goes, step by step and epoch by epoch;
//! - [`outputs`]: the files a command writes and the policy that keeps the user's files safe;
//! - [`resume`]: the state saved after every epoch, the settings recorded with it, the metrics;
//! - [`evaluate`]: accuracy on labelled images;
//! - [`progress`]: the progress bar and Ctrl-C handling of the CLI;
//! - [`task`]: the task file `vpt train` writes and `vpt eval` / `vpt predict` read;
//! - [`predict`]: several tasks served from one backbone in one batch;
//! - [`compare`]: `vpt compare`, every method with one recipe, as the paper's table and plot;
//! - [`data`]: image folders, the train/val split, transforms, the epoch loader.

pub mod compare;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod fit;
pub mod observer;
pub mod optim;
pub mod outputs;
mod plot;
pub mod predict;
pub mod progress;
pub mod resume;
pub mod schedule;
pub mod task;

pub use optim::{Optimizer, Trainer};
pub use schedule::WarmupCosine;
