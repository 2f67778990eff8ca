//! torchvision-style transforms from decoded pixels: resize the shorter side, crop (random or
//! centre), flip, then normalise into CHW f32; and the strict JPEG/PNG decoding of a file's bytes.
//! Core: no file is read here (`image_file.rs`, native, reads them).

use image::imageops::FilterType;
use image::{ImageFormat, RgbImage};

use super::normalize::Normalization;
use crate::rng::{below, next_unit};

#[derive(Clone, Copy, Debug)]
pub enum Transform {
    /// Resize the shorter side to `resize`, random crop `size`×`size`, horizontal flip with probability 0.5 if `flip`.
    Train { size: usize, resize: usize, flip: bool },
    /// Resize the shorter side to `resize`, centre crop `size`×`size`.
    Eval { size: usize, resize: usize },
}

impl Transform {
    /// The side of the square output.
    pub fn size(&self) -> usize {
        match *self {
            Transform::Train { size, .. } | Transform::Eval { size, .. } => size,
        }
    }

    fn resize(&self) -> usize {
        match *self {
            Transform::Train { resize, .. } | Transform::Eval { resize, .. } => resize,
        }
    }
}

/// The usual resize for a crop: round(size · 256/224), e.g. 256 for 224 and 512 for 448.
/// (KMnP/vpt's own table uses 438 for 384 where this gives 439; pass `resize` to match it exactly.)
pub fn default_resize(size: usize) -> usize {
    // Integer form of round(size · 256 / 224) = round(size · 8 / 7), halves rounded up.
    (size * 8 * 2 + 7) / 14
}

/// Crop (random or centre), flip, normalise: CHW f32 [3, size, size] from decoded pixels. `rng`
/// supplies the crop/flip randomness. The error says why, for the user.
pub fn transform_image(img: &RgbImage, transform: Transform, norm: Normalization, rng: &mut u64) -> std::result::Result<Vec<f32>, String> {
    Ok(choose_window(img, transform, rng)?.to_chw(norm))
}

/// Does a file's name say JPEG or PNG (`.jpg`, `.jpeg`, `.png`, any case)? For the message of
/// [`decode_bytes`].
pub fn is_named_as_image(name: &str) -> bool {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_lowercase());
    extension.is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.as_str()) && !name.ends_with(&format!("/.{e}")))
}

/// Decode a JPEG or PNG's bytes completely to 8-bit RGB, refusing what a lenient decoder would
/// pass: an empty image, or a JPEG without its end-of-image marker (cut short: the decoder would
/// fill the missing rows with grey and say nothing). Alpha is dropped, grey is repeated, 16-bit
/// is rounded to 8 bits: what PIL's `convert("RGB")` in torchvision's ImageFolder loader does.
/// Like that loader, the EXIF orientation is not applied. `named_as_image`: whether the file's
/// name says JPEG or PNG, for the message. The error says why, for the user.
pub fn decode_bytes(bytes: &[u8], named_as_image: bool) -> std::result::Result<RgbImage, String> {
    let format = image::guess_format(bytes).map_err(|_| match named_as_image {
        true => "corrupt image: its contents are not the JPEG or PNG its name says".to_string(),
        false => "not a JPEG or PNG image".to_string(),
    })?;
    match format {
        ImageFormat::Png => {}
        ImageFormat::Jpeg if jpeg_is_complete(bytes) => {}
        ImageFormat::Jpeg => return Err("a truncated JPEG (no end-of-image marker)".to_string()),
        other => return Err(format!("a {other:?} image; only JPEG and PNG are supported, convert it")),
    }
    let img = image::load_from_memory_with_format(bytes, format).map_err(|e| format!("corrupt image: {e}"))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(format!("empty image ({}x{})", img.width(), img.height()));
    }
    Ok(img.into_rgb8())
}

/// Does a JPEG end with its end-of-image marker (FF D9), give or take padding after it?
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let end = bytes.iter().rposition(|&b| b != 0 && !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    end >= 2 && bytes[end - 2..end] == [0xFF, 0xD9]
}

/// The resized image and the square window of it that becomes the output.
struct Window {
    img: RgbImage,
    top: usize,
    left: usize,
    size: usize,
    flip: bool,
}

/// torchvision's Resize(int) then RandomCrop (+ RandomHorizontalFlip) or CenterCrop. Random
/// numbers are drawn in torchvision's order: crop top, crop left, flip.
fn choose_window(img: &RgbImage, transform: Transform, rng: &mut u64) -> std::result::Result<Window, String> {
    let (size, resize) = (transform.size(), transform.resize());
    if size == 0 || resize == 0 {
        return Err(format!("transform {transform:?} has a zero size; use e.g. size 224, resize 256"));
    }
    let img = resize_shorter_side(img, resize);
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < size || h < size {
        return Err(format!("is {w}x{h} after resizing the shorter side to {resize}, smaller than the {size}x{size} crop; use resize ≥ size"));
    }
    let (top, left, flip) = match transform {
        Transform::Train { flip, .. } => {
            let top = below(h - size + 1, rng);
            let left = below(w - size + 1, rng);
            (top, left, flip && next_unit(rng) < 0.5)
        }
        Transform::Eval { .. } => (center_offset(h - size), center_offset(w - size), false),
    };
    Ok(Window { img, top, left, size, flip })
}

/// Resize so the shorter side is `resize`, with antialiased bilinear (close to torchvision's default).
fn resize_shorter_side(img: &RgbImage, resize: usize) -> RgbImage {
    let (w, h) = resized_dims(img.width() as usize, img.height() as usize, resize);
    // `resize` returns a plain copy when the size is unchanged.
    image::imageops::resize(img, w as u32, h as u32, FilterType::Triangle)
}

/// torchvision's Resize(int) output size (width, height): the shorter side becomes `resize`, the
/// longer `int(resize · long / short)` (truncated; the integer division gives the same value).
fn resized_dims(w: usize, h: usize, resize: usize) -> (usize, usize) {
    if w <= h {
        (resize, resize * h / w)
    } else {
        (resize * w / h, resize)
    }
}

/// CenterCrop's offset for `excess` spare pixels: `int(round(excess / 2))` with Python's
/// round-half-to-even, so 1 → 0, 3 → 2, 5 → 2.
fn center_offset(excess: usize) -> usize {
    let half = excess / 2;
    if excess % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

impl Window {
    /// Crop, flip, scale to [0, 1] and normalise; HWC u8 in, CHW f32 [3, size, size] out. The
    /// arithmetic is torchvision's in f32: ToTensor's /255, then Normalize's (x − mean) / std.
    fn to_chw(&self, norm: Normalization) -> Vec<f32> {
        let s = self.size;
        let mut out = vec![0f32; 3 * s * s];
        for y in 0..s {
            for x in 0..s {
                let src_x = if self.flip { s - 1 - x } else { x };
                let px = self.img.get_pixel((self.left + src_x) as u32, (self.top + y) as u32);
                for c in 0..3 {
                    out[(c * s + y) * s + x] = (px.0[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_dims_truncate_the_long_side_like_torchvision() {
        // torchvision: Resize(256) of 500×375 (w×h) → 341×256 (int(256 · 500/375) = int(341.33)).
        assert_eq!(resized_dims(500, 375, 256), (341, 256));
        assert_eq!(resized_dims(375, 500, 256), (256, 341));
        assert_eq!(resized_dims(300, 300, 256), (256, 256));
        assert_eq!(resized_dims(3, 1000, 256), (256, 85333));
    }

    #[test]
    fn center_offset_rounds_half_to_even_like_python() {
        // Python: [int(round(e / 2.0)) for e in range(9)]
        let want = [0, 0, 1, 2, 2, 2, 3, 4, 4];
        assert_eq!((0..9).map(center_offset).collect::<Vec<_>>(), want);
    }
}
