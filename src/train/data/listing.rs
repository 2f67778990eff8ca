//! An image folder given as a list of files, as a browser sees a folder dropped on its page: each
//! file's path under the folder ("cat/001.jpg") and a verdict on its bytes. The same rules as the
//! native scan (`folder.rs`), so the same folder gives the same classes, samples and labels
//! either way: class names are the sub-folders' names, sorted; images sorted by file name inside
//! each; hidden entries (`.DS_Store`, `._foo.jpg`) ignored; loose files, nested folders and files
//! that are not complete JPEGs or PNGs skipped with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Sample;
use crate::{Error, Result};

/// What a list of files makes: the classes, their samples (paths under `root`), and the files
/// passed over, each with the reason.
pub struct ListedFolder {
    pub classes: Vec<String>,
    /// Sorted by (class, file name), as the native scan sorts them.
    pub samples: Vec<Sample>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// The image folder named `root` that holds `paths` ("class/file.jpg", '/'-separated, relative to
/// `root`). `verdict(i)` says whether `paths[i]` decodes as an image (`decode_bytes` of its
/// bytes); it is asked only of files where an image belongs. Errors as the native scan's: no
/// class sub-folders, or a class without a usable image.
pub fn list_folder(root: &str, paths: &[String], verdict: impl Fn(usize) -> std::result::Result<(), String>) -> Result<ListedFolder> {
    let root = Path::new(root);
    let mut classes: BTreeMap<String, Vec<(String, usize)>> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut nested = std::collections::BTreeSet::new();
    for (i, path) in paths.iter().enumerate() {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        // Hidden entries anywhere on the way are OS litter, not data: ignored silently.
        if parts.is_empty() || parts.iter().any(|p| p.starts_with('.')) {
            continue;
        }
        match parts.as_slice() {
            [file] => skipped.push((root.join(file), "not inside a class sub-folder; images belong in ROOT/<class>/".to_string())),
            [class, file] => classes.entry(class.to_string()).or_default().push((file.to_string(), i)),
            [class, folder, ..] => {
                classes.entry(class.to_string()).or_default();
                if nested.insert((class.to_string(), folder.to_string())) {
                    skipped.push((root.join(class).join(folder), "a folder inside a class folder; images must sit directly in ROOT/<class>/".to_string()));
                }
            }
            [] => unreachable!("empty paths were passed over"),
        }
    }
    if classes.is_empty() {
        return Err(no_classes_error(root, skipped.len()));
    }
    let mut samples = Vec::new();
    for (label, (class, files)) in classes.iter_mut().enumerate() {
        files.sort();
        let mut bad = Vec::new();
        for (file, i) in files.iter() {
            let path = root.join(class).join(file);
            match verdict(*i) {
                Ok(()) => samples.push(Sample { path, label }),
                Err(why) => bad.push((path, why)),
            }
        }
        if !samples.iter().any(|s| s.label == label) {
            bad.extend(skipped.iter().filter(|(p, _)| p.starts_with(root.join(class.as_str()))).cloned());
            return Err(empty_class_error(root, class, &bad));
        }
        skipped.extend(bad);
    }
    Ok(ListedFolder { classes: classes.into_keys().collect(), samples, skipped })
}

/// An error about a file or folder of the data set.
pub(super) fn data_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), msg: msg.into() }
}

/// The folder has no class sub-folders (`loose_files` files lie directly in it).
pub(super) fn no_classes_error(root: &Path, loose_files: usize) -> Error {
    let hint = if loose_files > 0 { format!(" ({loose_files} files lie directly in it; move them into one sub-folder per class)") } else { String::new() };
    data_error(root, format!("no class sub-folders{hint}; an image folder needs one sub-folder per class with the images inside, e.g. ROOT/cat/001.jpg"))
}

/// Class `class` has no usable image; `skipped` says what was passed over in it, and why.
pub(super) fn empty_class_error(root: &Path, class: &str, skipped: &[(PathBuf, String)]) -> Error {
    let reasons: Vec<String> = skipped.iter().take(3).map(|(p, why)| format!("{}: {why}", p.file_name().unwrap_or_default().to_string_lossy())).collect();
    let detail = match skipped.len() {
        0 => "it is empty".to_string(),
        n => format!("{n} files skipped: {}{}", reasons.join("; "), if n > 3 { "; …" } else { "" }),
    };
    data_error(&root.join(class), format!("class {class:?} has no usable JPEG or PNG images ({detail}); add images to it or remove the folder"))
}

/// "warning: skipped 3 files that are not readable images: a.jpg (why), ...": the first few by
/// name, then how many more.
pub fn skipped_warning(skipped: &[(PathBuf, String)]) -> String {
    const SHOWN: usize = 5;
    let named: Vec<String> = skipped.iter().take(SHOWN).map(|(p, why)| format!("{} ({why})", p.display())).collect();
    let more = if skipped.len() > SHOWN { format!(", and {} more", skipped.len() - SHOWN) } else { String::new() };
    format!("warning: skipped {} files that are not readable images: {}{more}", skipped.len(), named.join(", "))
}

#[cfg(test)]
mod tests {
    use super::list_folder;

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn classes_and_files_are_sorted_and_litter_is_ignored() {
        let p = paths(&["b/2.png", "a/z.jpg", ".DS_Store", "a/._z.jpg", "b/1.png", "loose.jpg", "a/sub/x.jpg", "a/sub/y.jpg", ".hidden/q.png"]);
        let listed = list_folder("root", &p, |_| Ok(())).unwrap();
        assert_eq!(listed.classes, ["a", "b"]);
        let got: Vec<(String, usize)> = listed.samples.iter().map(|s| (s.path.display().to_string(), s.label)).collect();
        assert_eq!(got, [("root/a/z.jpg".to_string(), 0), ("root/b/1.png".into(), 1), ("root/b/2.png".into(), 1)]);
        let skipped: Vec<String> = listed.skipped.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(skipped, ["root/loose.jpg", "root/a/sub"]);
    }

    #[test]
    fn a_class_of_broken_files_and_no_classes_are_errors_naming_the_folder() {
        let p = paths(&["a/1.png", "b/notes.txt"]);
        let err = list_folder("root", &p, |i| if i == 1 { Err("not a JPEG or PNG image".into()) } else { Ok(()) }).err().unwrap().to_string();
        assert!(err.contains("root/b") && err.contains("class \"b\" has no usable JPEG or PNG images") && err.contains("notes.txt: not a JPEG or PNG image"), "{err}");
        let err = list_folder("root", &paths(&["loose.png"]), |_| Ok(())).err().unwrap().to_string();
        assert!(err.contains("no class sub-folders (1 files lie directly in it"), "{err}");
    }
}
