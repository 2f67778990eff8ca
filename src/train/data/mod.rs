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

/// "warning: skipped 3 files that are not readable images: a.jpg (why), ...": the first few by
/// name, then how many more.
pub fn skipped_warning(skipped: &[(PathBuf, String)]) -> String {
    const SHOWN: usize = 5;
    let named: Vec<String> = skipped.iter().take(SHOWN).map(|(p, why)| format!("{} ({why})", p.display())).collect();
    let more = if skipped.len() > SHOWN { format!(", and {} more", skipped.len() - SHOWN) } else { String::new() };
    format!("warning: skipped {} files that are not readable images: {}{more}", skipped.len(), named.join(", "))
}

/// A fingerprint of a set of samples: each file's name, class and size, in order. Two scans of
/// an unchanged folder give the same one; an image added, removed, renamed, moved to another
/// class or rewritten with another size gives another.
pub fn data_fingerprint(samples: &[Sample]) -> String {
    let mut hash = crate::hash::Fnv1a::default();
    for s in samples {
        hash.feed(s.path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        hash.feed(&(s.label as u64).to_le_bytes());
        hash.feed(&std::fs::metadata(&s.path).map_or(u64::MAX, |m| m.len()).to_le_bytes());
    }
    format!("fnv1a64:{:016x} over {} images", hash.finish(), samples.len())
}

use std::path::{Path, PathBuf};

use crate::Error;

/// An error about a file or folder of the data set.
fn data_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), msg: msg.into() }
}
