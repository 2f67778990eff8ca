//! One image file (native): read, decoded strictly and transformed, with errors that name the
//! file. The decoding and the transform are `transform.rs`'s.

use std::path::Path;

use image::RgbImage;

use super::listing::data_error;
use super::normalize::Normalization;
use super::transform::{decode_bytes, is_named_as_image, transform_image, Transform};
use crate::Result;

/// Decode one image (grey-scale, grey+alpha, RGBA and 16-bit converted to RGB8), transform,
/// normalise, and return CHW f32 [3, size, size]. `rng` supplies the crop/flip randomness.
pub fn load_image(path: &Path, transform: Transform, norm: Normalization, rng: &mut u64) -> Result<Vec<f32>> {
    let img = decode_rgb8(path)?;
    transform_image(&img, transform, norm, rng).map_err(|msg| data_error(path, msg))
}

/// Decode to 8-bit RGB ([`decode_bytes`]), with a hint for the user when it fails.
fn decode_rgb8(path: &Path) -> Result<RgbImage> {
    decode_strict(path).map_err(|why| {
        let hint = if path.exists() { "; replace or remove the file" } else { " (was it moved or deleted after the folder was scanned? rescan the folder)" };
        data_error(path, format!("{why}{hint}"))
    })
}

/// The largest image file read: a 16k × 16k PNG of noise is about 770 MB.
const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// Read and decode a JPEG or PNG file completely, as [`decode_bytes`] does. The error says why,
/// for the user.
pub fn decode_strict(path: &Path) -> std::result::Result<RgbImage, String> {
    let bytes = crate::io::read_regular_file(path, MAX_IMAGE_BYTES)?;
    decode_bytes(&bytes, is_named_as_image(&path.to_string_lossy()))
}

/// `check` of every path, on as many threads as the machine has (up to 8: decoding a whole data
/// set once is a scan's main cost), in the paths' order.
pub(super) fn check_all(paths: &[&Path], check: impl Fn(&Path) -> std::result::Result<(), String> + Sync) -> Vec<std::result::Result<(), String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = paths.len().div_ceil(threads).max(1);
    let check = &check;
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths.chunks(chunk).map(|part| scope.spawn(move || part.iter().map(|p| check(p)).collect::<Vec<_>>())).collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|_| vec![Err("the image decoder failed on it".to_string())])).collect()
    })
}
