//! The data pipeline of `vpt train/eval/predict`: an image folder (one sub-folder per class),
//! the seeded stratified train/val split, torchvision-style transforms, and an epoch loader that
//! decodes and augments on a background thread while the GPU works.
//!
//! Everything random comes from [`crate::rng`] seeded from the user's seed, so an epoch is the same
//! from run to run, whichever thread made a batch, and whether the run was resumed mid-epoch.
//!
//! Layouts: one image is CHW `[3, size, size]`; a batch is `[B, 3, size, size]`, row-major.

use crate::rng::{next_u64, next_unit};
use crate::{Error, Result};
use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, RgbImage};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------

/// Per-channel normalisation: x = (pixel/255 − mean) / std.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's ImageNet statistics, what timm's ImageNet-21k/1k ViTs were trained with.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// Parse `"0.5,0.5,0.5"`-style mean and std. Each needs three finite numbers; std must be > 0.
    pub fn parse(mean: &str, std: &str) -> Result<Normalization> {
        let mean = parse_triple("mean", mean)?;
        let std = parse_triple("std", std)?;
        if std.iter().any(|&s| s <= 0.0) {
            return Err(Error::shape(
                "normalization",
                format!("std {std:?} has a value ≤ 0; every channel's std must be positive, e.g. 0.229,0.224,0.225"),
            ));
        }
        Ok(Normalization { mean, std })
    }

    /// The inverse of [`Normalization::parse`]: `{}` prints the shortest decimal that parses back
    /// to the same f32, so a round trip is exact (what a checkpoint stores is what it loads).
    pub fn to_strings(&self) -> (String, String) {
        let join = |v: &[f32; 3]| format!("{},{},{}", v[0], v[1], v[2]);
        (join(&self.mean), join(&self.std))
    }
}

/// Three comma-separated finite numbers.
fn parse_triple(what: &str, text: &str) -> Result<[f32; 3]> {
    let bad = |why: String| {
        Error::shape(
            "normalization",
            format!("{what} {text:?}: {why}; give three comma-separated numbers, one per RGB channel, e.g. 0.485,0.456,0.406"),
        )
    };
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(bad(format!("found {} values", parts.len())));
    }
    let mut out = [0f32; 3];
    for (o, p) in out.iter_mut().zip(&parts) {
        *o = p.parse::<f32>().map_err(|_| bad(format!("{p:?} is not a number")))?;
        if !o.is_finite() {
            return Err(bad(format!("{p:?} is not finite")));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Image folder
// ---------------------------------------------------------------------------------------------

/// An image folder: one sub-folder per class (class names = sub-folder names, sorted), JPEG/PNG files inside.
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// Sorted by (class, file name): deterministic.
    pub samples: Vec<Sample>,
    /// Files that are not decodable images (or not where images belong), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// One image and its class index into [`ImageFolder::classes`].
#[derive(Clone, Debug)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}

impl ImageFolder {
    /// Scan `root`. Errors (naming the path): root missing or not a folder; no class sub-folders;
    /// a class sub-folder with no usable images. Non-image and corrupt files are skipped and
    /// recorded in `skipped`; hidden files (`.DS_Store`, `._foo`) are ignored silently.
    pub fn scan(root: &Path) -> Result<ImageFolder> {
        scan_folder(root, None)
    }

    /// Scan `root` and require exactly these class names; labels follow the given order, so an
    /// eval/val folder gets the label numbering the model was trained with.
    pub fn scan_with_classes(root: &Path, classes: &[String]) -> Result<ImageFolder> {
        scan_folder(root, Some(classes))
    }
}

/// Files passed over by a scan, each with the reason.
type Skipped = Vec<(PathBuf, String)>;

/// An error about a file or folder of the data set.
fn data_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), msg: msg.into() }
}

/// The shared body of `scan` and `scan_with_classes`.
fn scan_folder(root: &Path, expected: Option<&[String]>) -> Result<ImageFolder> {
    check_root(root)?;
    let (found, mut skipped) = list_class_dirs(root)?;
    if found.is_empty() {
        return Err(no_classes_error(root, skipped.len()));
    }
    let classes = match expected {
        None => found,
        Some(expected) => {
            check_same_classes(root, &found, expected)?;
            expected.to_vec()
        }
    };
    let mut samples = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let (paths, bad) = scan_class(&root.join(class))?;
        if paths.is_empty() {
            return Err(empty_class_error(root, class, &bad));
        }
        samples.extend(paths.into_iter().map(|path| Sample { path, label }));
        skipped.extend(bad);
    }
    Ok(ImageFolder { root: root.to_path_buf(), classes, samples, skipped })
}

fn check_root(root: &Path) -> Result<()> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(data_error(
            root,
            "is a file, not a folder; pass the image folder (one sub-folder per class, e.g. ROOT/cat/001.jpg)",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(data_error(
            root,
            "no such folder; check the path (an image folder has one sub-folder per class, e.g. ROOT/cat/001.jpg)",
        )),
        Err(e) => Err(Error::Io { path: root.display().to_string(), source: e }),
    }
}

/// The non-hidden entries of a folder, sorted by file name so that nothing depends on the order
/// the file system happens to list them in.
fn sorted_entries(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let io_err = |e| Error::Io { path: dir.display().to_string(), source: e };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        // Hidden files are OS litter (.DS_Store, AppleDouble ._foo.jpg, .git): not data, not news.
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        entries.push((name, entry.path()));
    }
    entries.sort();
    Ok(entries)
}

/// The class sub-folders of `root` (sorted names) and the loose files beside them (skipped).
fn list_class_dirs(root: &Path) -> Result<(Vec<String>, Skipped)> {
    let mut classes = Vec::new();
    let mut skipped = Vec::new();
    for (name, path) in sorted_entries(root)? {
        // fs::metadata follows symlinks, so a linked class folder counts as a folder.
        if !std::fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
            let why = "not inside a class sub-folder; images belong in ROOT/<class>/";
            skipped.push((path, why.to_string()));
            continue;
        }
        let Some(name) = name.to_str() else {
            return Err(data_error(&path, "class folder name is not valid UTF-8; rename the folder"));
        };
        classes.push(name.to_string());
    }
    Ok((classes, skipped))
}

fn no_classes_error(root: &Path, loose_files: usize) -> Error {
    let hint = if loose_files > 0 {
        format!(" ({loose_files} files lie directly in it; move them into one sub-folder per class)")
    } else {
        String::new()
    };
    data_error(
        root,
        format!("no class sub-folders{hint}; an image folder needs one sub-folder per class with the images inside, e.g. ROOT/cat/001.jpg"),
    )
}

/// The folder must hold exactly the expected classes (the order may differ: labels follow `expected`).
fn check_same_classes(root: &Path, found: &[String], expected: &[String]) -> Result<()> {
    let mut sorted = expected.to_vec();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(data_error(root, format!("the expected class list names {:?} twice", w[0])));
    }
    let missing: Vec<&String> = expected.iter().filter(|c| !found.contains(c)).collect();
    let extra: Vec<&String> = found.iter().filter(|c| !expected.contains(c)).collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    Err(data_error(
        root,
        format!(
            "class sub-folders do not match the training classes: missing {missing:?}, unexpected {extra:?}; \
             the folder must have exactly one sub-folder for each training class {expected:?}"
        ),
    ))
}

/// The usable images of one class folder (sorted by file name) and the files skipped, with why.
fn scan_class(dir: &Path) -> Result<(Vec<PathBuf>, Skipped)> {
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for (_, path) in sorted_entries(dir)? {
        if std::fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
            let why = "a folder inside a class folder; images must sit directly in ROOT/<class>/";
            skipped.push((path, why.to_string()));
            continue;
        }
        match probe_image(&path) {
            Ok(()) => images.push(path),
            Err(why) => skipped.push((path, why)),
        }
    }
    Ok((images, skipped))
}

/// Check that a file is a JPEG or PNG whose header decodes, without decoding the pixels: cheap
/// enough for a whole data set, and it catches non-images and garbage at scan time, not mid-epoch.
fn probe_image(path: &Path) -> std::result::Result<(), String> {
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("cannot read: {e}"))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(format!("a {other:?} image; only JPEG and PNG are supported, convert it"));
        }
        None => return Err("not a JPEG or PNG image".to_string()),
    }
    let (w, h) = reader.into_dimensions().map_err(|e| format!("corrupt image: {e}"))?;
    if w == 0 || h == 0 {
        return Err(format!("empty image ({w}x{h})"));
    }
    Ok(())
}

fn empty_class_error(root: &Path, class: &str, skipped: &[(PathBuf, String)]) -> Error {
    let reasons: Vec<String> = skipped
        .iter()
        .take(3)
        .map(|(p, why)| format!("{}: {why}", p.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    let detail = match skipped.len() {
        0 => "it is empty".to_string(),
        n => format!("{n} files skipped: {}{}", reasons.join("; "), if n > 3 { "; …" } else { "" }),
    };
    data_error(
        &root.join(class),
        format!("class {class:?} has no usable JPEG or PNG images ({detail}); add images to it or remove the folder"),
    )
}

// ---------------------------------------------------------------------------------------------
// Train/val split
// ---------------------------------------------------------------------------------------------

/// Stream tags for [`derive_seed`], so the split, the shuffle and the augmentation never share
/// random numbers even under the same user seed.
const SPLIT_STREAM: u64 = 1;
const SHUFFLE_STREAM: u64 = 2;
const AUGMENT_STREAM: u64 = 3;

/// A seed for one purpose (tag) and position (epoch, sample, class...) from the user's seed:
/// each part is folded in through one SplitMix64 step.
fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(seed, |s, &p| {
        let mut state = s ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        next_u64(&mut state)
    })
}

/// A uniform integer in [0, n), n ≥ 1.
fn below(n: usize, rng: &mut u64) -> usize {
    ((next_unit(rng) * n as f64) as usize).min(n - 1)
}

/// Fisher–Yates shuffle.
fn shuffle<T>(items: &mut [T], rng: &mut u64) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(i + 1, rng));
    }
}

/// The paper's split when there is no validation folder: a seeded split, stratified per class
/// (each class keeps ~`val_fraction` for validation, at least 1 when the class has ≥ 2 images,
/// and always at least 1 for training). Both halves keep the input order. Each class is drawn
/// with its own seed, so adding images to one class leaves the other classes' splits alone.
pub fn split_train_val(samples: &[Sample], val_fraction: f64, seed: u64) -> (Vec<Sample>, Vec<Sample>) {
    let num_classes = samples.iter().map(|s| s.label + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, s) in samples.iter().enumerate() {
        by_class[s.label].push(i);
    }
    let mut is_val = vec![false; samples.len()];
    for (label, members) in by_class.iter_mut().enumerate() {
        let mut rng = derive_seed(seed, &[SPLIT_STREAM, label as u64]);
        shuffle(members, &mut rng);
        for &i in &members[..val_count(members.len(), val_fraction)] {
            is_val[i] = true;
        }
    }
    let (val, train): (Vec<_>, Vec<_>) = samples.iter().zip(&is_val).partition(|(_, &v)| v);
    let unzip = |v: Vec<(&Sample, &bool)>| v.into_iter().map(|(s, _)| s.clone()).collect();
    (unzip(train), unzip(val))
}

/// How many of a class's `n` images go to validation.
fn val_count(n: usize, fraction: f64) -> usize {
    if n < 2 || fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
}

// ---------------------------------------------------------------------------------------------
// Transforms
// ---------------------------------------------------------------------------------------------

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

/// Decode one image (grey-scale, grey+alpha, RGBA and 16-bit converted to RGB8), transform,
/// normalise, and return CHW f32 [3, size, size]. `rng` supplies the crop/flip randomness.
pub fn load_image(path: &Path, transform: Transform, norm: Normalization, rng: &mut u64) -> Result<Vec<f32>> {
    let img = decode_rgb8(path)?;
    let window = choose_window(&img, transform, rng).map_err(|msg| data_error(path, msg))?;
    Ok(window.to_chw(norm))
}

/// Decode to 8-bit RGB. Alpha is dropped, grey is repeated, 16-bit is rounded to 8 bits: what
/// PIL's `convert("RGB")` in torchvision's ImageFolder loader does. Like that loader, the EXIF
/// orientation is not applied.
fn decode_rgb8(path: &Path) -> Result<RgbImage> {
    let reader = ImageReader::open(path).and_then(|r| r.with_guessed_format()).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (was it moved or deleted after the folder was scanned? rescan the folder)"
        } else {
            ""
        };
        data_error(path, format!("cannot read the image: {e}{hint}"))
    })?;
    let img = reader.decode().map_err(|e| {
        data_error(path, format!("cannot decode the image: {e}; replace or remove the file"))
    })?;
    Ok(img.into_rgb8())
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
        return Err(format!(
            "is {w}x{h} after resizing the shorter side to {resize}, smaller than the {size}x{size} crop; use resize ≥ size"
        ));
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

// ---------------------------------------------------------------------------------------------
// Batches and the epoch loader
// ---------------------------------------------------------------------------------------------

/// One batch on the host: images [B, 3, size, size] flattened, labels [B], paths for reporting.
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub paths: Vec<PathBuf>,
    pub size: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// [B, 3, size, size].
    pub fn shape(&self) -> [usize; 4] {
        [self.len(), 3, self.size, self.size]
    }
}

/// The shape, labels and paths; not the hundreds of thousands of pixel values.
impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("shape", &self.shape())
            .field("labels", &self.labels)
            .field("paths", &self.paths)
            .finish()
    }
}

/// Batches prepared ahead of the consumer: enough to hide a slow batch, little memory
/// (a 64 × 3 × 224 × 224 f32 batch is 38 MB).
const PREFETCH: usize = 2;
/// Most threads decoding one batch at once; more rarely helps and would crowd the GPU driver.
const MAX_DECODE_THREADS: usize = 8;

/// What the background thread needs to make any batch of the epoch.
struct EpochPlan {
    samples: Vec<Sample>,
    /// Sample indices in epoch order.
    order: Vec<usize>,
    transform: Transform,
    norm: Normalization,
    batch_size: usize,
    seed: u64,
    epoch: usize,
}

impl EpochPlan {
    fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Batch `k`: decoded on up to MAX_DECODE_THREADS threads, each sample with its own seed, so
    /// the result does not depend on how the work was shared out.
    fn make_batch(&self, k: usize, stop: &AtomicBool) -> Result<Batch> {
        let end = ((k + 1) * self.batch_size).min(self.order.len());
        let indices = &self.order[k * self.batch_size..end];
        let size = self.transform.size();
        let per_image = 3 * size * size;
        let mut images = vec![0f32; indices.len() * per_image];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_DECODE_THREADS);
        let chunk = indices.len().div_ceil(threads).max(1);
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = images
                .chunks_mut(chunk * per_image)
                .zip(indices.chunks(chunk))
                .map(|(out, idx)| scope.spawn(move || self.load_into(idx, out, stop)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        // Chunks are in batch order, so the error reported is the first failing sample's.
        results.into_iter().collect::<Result<()>>()?;
        Ok(Batch {
            images,
            labels: indices.iter().map(|&i| self.samples[i].label as u32).collect(),
            paths: indices.iter().map(|&i| self.samples[i].path.clone()).collect(),
            size,
        })
    }

    /// Load samples `idx` into `out` ([idx.len(), 3, size, size]).
    fn load_into(&self, idx: &[usize], out: &mut [f32], stop: &AtomicBool) -> Result<()> {
        let per_image = out.len() / idx.len();
        for (&i, dst) in idx.iter().zip(out.chunks_mut(per_image)) {
            if stop.load(Ordering::Relaxed) {
                return Ok(()); // the loader was dropped: nobody will see this batch
            }
            let mut rng = derive_seed(self.seed, &[AUGMENT_STREAM, self.epoch as u64, i as u64]);
            let img = load_image(&self.samples[i].path, self.transform, self.norm, &mut rng)?;
            dst.copy_from_slice(&img);
        }
        Ok(())
    }
}

/// Sample indices in the order of one epoch: a seeded per-epoch permutation, or the identity.
fn epoch_order(n: usize, shuffle_samples: bool, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle_samples {
        let mut rng = derive_seed(seed, &[SHUFFLE_STREAM, epoch as u64]);
        shuffle(&mut order, &mut rng);
    }
    order
}

/// The batches of one epoch, made on a background thread (decode + augment overlap GPU work),
/// deterministic given (seed, epoch): shuffled with a per-epoch seed when `shuffle`, the random
/// crops/flips of sample i seeded from (seed, epoch, i), so batch k is the same whichever thread
/// made it, and whether or not earlier batches were consumed. `start_batch` skips the first
/// batches without decoding them (for resuming mid-epoch). The last batch may be smaller.
/// A file that fails to decode is an `Err` naming it, after which the iteration ends. Dropping
/// the loader stops its thread promptly.
pub struct EpochLoader {
    num_batches: usize,
    /// Index of the batch the next `next()` returns.
    next_batch: usize,
    rx: Option<mpsc::Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    /// An error to report instead of batches (a bad argument, a thread that would not start).
    pending: Option<Error>,
    /// Set once an error was returned: the iteration is over.
    failed: bool,
}

impl EpochLoader {
    #[allow(clippy::too_many_arguments)] // the owner's API: each argument is one plain setting
    pub fn new(
        samples: Vec<Sample>,
        transform: Transform,
        norm: Normalization,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        epoch: usize,
        start_batch: usize,
    ) -> EpochLoader {
        let mut loader = EpochLoader {
            num_batches: 0,
            next_batch: start_batch,
            rx: None,
            stop: Arc::new(AtomicBool::new(false)),
            worker: None,
            pending: None,
            failed: false,
        };
        if batch_size == 0 {
            loader.pending = Some(Error::shape("EpochLoader", "batch size is 0; use a batch size of at least 1"));
            return loader;
        }
        let order = epoch_order(samples.len(), shuffle, seed, epoch);
        let plan = EpochPlan { samples, order, transform, norm, batch_size, seed, epoch };
        loader.num_batches = plan.num_batches();
        if start_batch < loader.num_batches {
            loader.start(plan, start_batch);
        }
        loader
    }

    /// Batches in the whole epoch, including any skipped by `start_batch`.
    pub fn num_batches(&self) -> usize {
        self.num_batches
    }

    /// Start the background thread at batch `first`.
    fn start(&mut self, plan: EpochPlan, first: usize) {
        let (tx, rx) = mpsc::sync_channel(PREFETCH);
        let stop = Arc::clone(&self.stop);
        let spawned = std::thread::Builder::new()
            .name("vpt-data".to_string())
            .spawn(move || produce(plan, first, tx, stop));
        match spawned {
            Ok(handle) => {
                self.worker = Some(handle);
                self.rx = Some(rx);
            }
            Err(e) => {
                self.pending = Some(Error::shape("EpochLoader", format!("could not start the data loading thread: {e}")))
            }
        }
    }

    /// The worker hung up early: it can only have panicked (a bug), so say so with its message.
    fn worker_died(&mut self) -> Error {
        let msg = match self.worker.take().map(JoinHandle::join) {
            Some(Err(panic)) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string()),
            _ => "it stopped early".to_string(),
        };
        Error::shape("EpochLoader", format!("the data loading thread failed: {msg}"))
    }
}

/// The background thread: make batches `first..` in order until done, an error, or a stop.
fn produce(plan: EpochPlan, first: usize, tx: mpsc::SyncSender<Result<Batch>>, stop: Arc<AtomicBool>) {
    for k in first..plan.num_batches() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let batch = plan.make_batch(k, &stop);
        let failed = batch.is_err();
        // A send error means the loader was dropped: stop quietly.
        if tx.send(batch).is_err() || failed {
            return;
        }
    }
}

impl Iterator for EpochLoader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.pending.take() {
            self.failed = true;
            return Some(Err(e));
        }
        if self.failed || self.next_batch >= self.num_batches {
            return None;
        }
        let item = match self.rx.as_ref()?.recv() {
            Ok(item) => item,
            Err(_) => Err(self.worker_died()),
        };
        self.failed = item.is_err();
        self.next_batch += 1;
        Some(item)
    }
}

impl Drop for EpochLoader {
    fn drop(&mut self) {
        // Ask the worker to stop between images, unblock a pending send by hanging up, then wait
        // for it: at most one image decode, and no thread outlives its loader.
        self.stop.store(true, Ordering::Relaxed);
        self.rx.take();
        if let Some(handle) = self.worker.take() {
            let _ = handle.join();
        }
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

    #[test]
    fn val_count_keeps_one_for_each_side() {
        assert_eq!([0, 1, 2, 3, 10, 15, 30].map(|n| val_count(n, 0.1)), [0, 0, 1, 1, 1, 2, 3]);
        assert_eq!(val_count(5, 1.0), 4);
        assert_eq!(val_count(5, f64::NAN), 0);
    }

    #[test]
    fn derived_seeds_differ_per_stream_and_position() {
        let a = derive_seed(1, &[AUGMENT_STREAM, 0, 5]);
        assert_ne!(a, derive_seed(1, &[AUGMENT_STREAM, 0, 6]));
        assert_ne!(a, derive_seed(1, &[AUGMENT_STREAM, 1, 5]));
        assert_ne!(a, derive_seed(2, &[AUGMENT_STREAM, 0, 5]));
        assert_ne!(derive_seed(1, &[SHUFFLE_STREAM, 0]), derive_seed(1, &[SPLIT_STREAM, 0]));
    }
}
