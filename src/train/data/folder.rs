//! An image folder: one sub-folder per class, JPEG/PNG files inside, scanned once and
//! deterministically (sorted), with the files it cannot use named and skipped; or a split list
//! of the same images (`split_list.rs`), which `ImageFolder::open` takes as well.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::image_file::{check_all, decode_strict};
use super::listing::{data_error, empty_class_error, no_classes_error};
use super::split_list::{is_split_list, read_split_list};
use super::Sample;
use crate::{Error, Result};

/// An image folder: one sub-folder per class (class names = sub-folder names, sorted), JPEG/PNG files inside.
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// Sorted by (class, file name): deterministic.
    pub samples: Vec<Sample>,
    /// Files that are not decodable images (or not where images belong), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl ImageFolder {
    /// The images of `data`: an image folder, or a split list (`split_list.rs`) whose paths are
    /// relative to `root` (default: the list's folder). `root` with a folder is an error: it
    /// would mean nothing.
    pub fn open(data: &Path, root: Option<&Path>) -> Result<ImageFolder> {
        open_data(data, root, None)
    }

    /// [`ImageFolder::open`], with the labels indexing `classes` (a validation or test set, a
    /// task's images).
    pub fn open_with_classes(data: &Path, root: Option<&Path>, classes: &[String]) -> Result<ImageFolder> {
        open_data(data, root, Some(classes))
    }

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

/// The shared body of `open` and `open_with_classes`.
fn open_data(data: &Path, root: Option<&Path>, expected: Option<&[String]>) -> Result<ImageFolder> {
    if is_split_list(data) {
        let (classes, samples) = read_split_list(data, root, expected)?;
        return Ok(ImageFolder { root: data.to_path_buf(), classes, samples, skipped: Vec::new() });
    }
    if let Some(root) = root {
        return Err(Error::invalid("root", format!("{} applies to a split list's paths, but {} is a folder; leave `root` out", root.display(), data.display())));
    }
    scan_folder(data, expected)
}

/// Files passed over by a scan, each with the reason.
type Skipped = Vec<(PathBuf, String)>;

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
        Ok(_) => Err(data_error(root, "is a file, not a folder; pass the image folder (one sub-folder per class, e.g. ROOT/cat/001.jpg)")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(data_error(root, "no such folder; check the path (an image folder has one sub-folder per class, e.g. ROOT/cat/001.jpg)")),
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
    let paths: Vec<PathBuf> = sorted_entries(dir)?.into_iter().map(|(_, path)| path).collect();
    let verdicts = check_images(&paths);
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for (path, verdict) in paths.into_iter().zip(verdicts) {
        match verdict {
            Ok(()) => images.push(path),
            Err(why) => skipped.push((path, why)),
        }
    }
    Ok((images, skipped))
}

/// [`check_image`] of every path, on as many threads as the machine has (decoding a whole data
/// set once is the scan's main cost), in the paths' order.
fn check_images(paths: &[PathBuf]) -> Vec<std::result::Result<(), String>> {
    check_all(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>(), check_image)
}

/// Can this file be trained on? A folder cannot, nor anything that is not a JPEG or PNG that
/// decodes completely ([`decode_strict`]): a truncated or corrupt file is found here, at the
/// scan, never later in the middle of an epoch.
fn check_image(path: &Path) -> std::result::Result<(), String> {
    if std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false) {
        return Err("a folder inside a class folder; images must sit directly in ROOT/<class>/".to_string());
    }
    decode_strict(path).map(drop)
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
