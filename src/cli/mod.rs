//! The `vpt` command line, kept apart from the library in three places, as uv keeps them:
//!
//! - [`args`]: the flags, as clap types: the groups several commands share, declared once
//!   (`shared.rs`: model, data, recipe, device, …), and each command's own (`commands.rs`);
//! - [`settings`]: the one place flags become library settings (`TrainConfig`, `Method`,
//!   `BlockPlan`, a `Gpu`, …); [`flags`]: the way back, the library's setting names (`lr`) in
//!   what it says shown as their flags (--lr);
//! - [`commands`]: one file per command, each a `run` that calls the library and prints;
//! - [`progress`]: the terminal's side of a training run, the progress bar and Ctrl-C.

pub mod args;
pub mod commands;
pub mod flags;
pub mod progress;
pub mod settings;
