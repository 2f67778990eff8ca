//! The data pipeline of `vpt train/eval/predict`: an image folder (one sub-folder per class),
//! the seeded stratified train/val split, torchvision-style transforms, and an epoch loader that
//! decodes and augments on a background thread while the GPU works.
//!
//! Core: a folder given as a list of files, as a browser sees it (`listing.rs`), the split and
//! the epoch's order (`split.rs`), the normalisation, and the decoding and
//! transforms of an image's bytes (`transform.rs`). Native: the folder (`folder.rs`), a split list
//! of `path label` lines (`split_list.rs`), reading an image file (`image_file.rs`) and the
//! threaded loader (`loader.rs`).
//!
//! Everything random comes from [`crate::rng`] seeded from the user's seed, so an epoch is the same
//! from run to run, whichever thread made a batch, and whether the run was resumed mid-epoch.
//!
//! Layouts: one image is CHW `[3, size, size]`; a batch is `[B, 3, size, size]`, row-major.

mod listing;
mod normalize;
mod split;
mod transform;
// Native: folders, files and the loader's background threads.
#[cfg(feature = "native")]
mod folder;
#[cfg(feature = "native")]
mod image_file;
#[cfg(feature = "native")]
mod loader;
#[cfg(feature = "native")]
mod split_list;

pub use listing::{list_folder, skipped_warning, ListedFolder};
pub use normalize::Normalization;
pub use split::{augment_seed, epoch_order, split_train_val};
pub use transform::{decode_bytes, default_resize, is_named_as_image, transform_image, Transform};
#[cfg(feature = "native")]
pub use {
    folder::{data_fingerprint, ImageFolder},
    image_file::{decode_strict, load_image},
    loader::{Batch, EpochLoader},
    split_list::{read_split_list, CLASSES_FILE},
};

use std::path::PathBuf;

/// One image and its class index into the classes of its folder (or list).
#[derive(Clone, Debug)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}
