//! The data pipeline of `vpt train/eval/predict`: an image folder (one sub-folder per class),
//! the seeded stratified train/val split, torchvision-style transforms, and an epoch loader that
//! decodes and augments on a background thread while the GPU works.
//!
//! Everything random comes from [`crate::rng`] seeded from the user's seed, so an epoch is the same
//! from run to run, whichever thread made a batch, and whether the run was resumed mid-epoch.
//!
//! Layouts: one image is CHW `[3, size, size]`; a batch is `[B, 3, size, size]`, row-major.

mod folder;
mod loader;
mod normalize;
mod split;
mod transform;

pub use folder::{ImageFolder, Sample};
pub use loader::{Batch, EpochLoader};
pub use normalize::Normalization;
pub use split::split_train_val;
pub use transform::{default_resize, load_image, Transform};

use std::path::Path;

use crate::Error;

/// An error about a file or folder of the data set.
fn data_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), msg: msg.into() }
}
