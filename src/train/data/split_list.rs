//! A split list: a text file of `relative/path label` lines, as the VPT-line repositories
//! distribute VTAB-1k (`train800.txt`, `val200.txt`, `train800val200.txt`, `test.txt`). `--data`
//! and `--val` take one wherever they take an image folder.
//!
//! - The label is the class index. Class names come from a `classes.txt` beside the list (one
//!   name per line, line i naming class i) when there is one, else from the indices ("0", "1", …).
//! - Paths are relative to the list's folder, or to `--root` when given.
//! - Every listed image is decoded once here, as a folder's are; but where a folder skips what it
//!   cannot use, a list is a fixed protocol (VTAB-1k's 800 and 200 images), so a line that names
//!   a missing or broken image is an error naming the list's file and line, never a silent skip.

use std::path::{Path, PathBuf};

use super::image_file::{check_all, decode_strict};
use super::Sample;
use crate::{Error, Result};

/// The file beside a list that names its classes.
pub const CLASSES_FILE: &str = "classes.txt";

/// The largest list read (VTAB-1k's lists are a few kilobytes; ImageNet's 1.3M lines are ~50 MB).
const MAX_LIST_BYTES: u64 = 256 << 20;

/// Is `path` a split list rather than an image folder? (A regular file; a folder is a folder.)
pub fn is_split_list(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// The classes and samples of the list at `list`, images under `root` (default: the list's
/// folder). `expected`: the classes the labels must index (a validation or test list, a task's),
/// else those of `classes.txt` beside the list, else as many as the largest label says.
pub fn read_split_list(list: &Path, root: Option<&Path>, expected: Option<&[String]>) -> Result<(Vec<String>, Vec<Sample>)> {
    let text = crate::io::read_regular_text(list, MAX_LIST_BYTES).map_err(|why| list_error(list, None, format!("it {why}")))?;
    let base = images_root(list, root);
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        lines.push((i + 1, parse_line(list, i + 1, line)?));
    }
    if lines.is_empty() {
        return Err(list_error(list, None, "lists no images; each line is `relative/path label`, e.g. `images/0001.jpg 3`".into()));
    }
    let classes = classes_of(list, expected, lines.iter().map(|(_, (_, label))| *label).max().unwrap_or(0))?;
    let mut samples = Vec::with_capacity(lines.len());
    for (number, (path, label)) in lines {
        if label >= classes.len() {
            return Err(list_error(list, Some(number), format!("label {label} is not a class index: there are {} classes (0 to {})", classes.len(), classes.len() - 1)));
        }
        samples.push((number, Sample { path: base.join(path), label }));
    }
    check_images(list, &samples)?;
    Ok((classes, samples.into_iter().map(|(_, s)| s).collect()))
}

/// `relative/path label`: the label is the last word, the path all before it.
fn parse_line(list: &Path, number: usize, line: &str) -> Result<(String, usize)> {
    let bad = |why: String| list_error(list, Some(number), format!("{why}; each line is `relative/path label`, e.g. `images/0001.jpg 3`"));
    let Some((path, label)) = line.rsplit_once(char::is_whitespace) else {
        return Err(bad(format!("{line:?} has no label")));
    };
    let label: usize = label.parse().map_err(|_| bad(format!("label {label:?} is not a class index (0, 1, 2, …)")))?;
    let path = path.trim();
    if Path::new(path).is_absolute() {
        return Err(bad(format!("{path:?} is not relative to the list's folder (or `root`)")));
    }
    Ok((path.to_string(), label))
}

/// The class names: `expected`, or `classes.txt` beside the list, or the indices up to `largest`.
fn classes_of(list: &Path, expected: Option<&[String]>, largest: usize) -> Result<Vec<String>> {
    let beside = list.with_file_name(CLASSES_FILE);
    let named = match beside.is_file() {
        true => Some(read_classes(&beside)?),
        false => None,
    };
    match (expected, named) {
        (Some(expected), Some(named)) if named != expected => {
            Err(list_error(&beside, None, format!("names the classes {named:?}, but the training classes are {expected:?}: a list's labels must index the same classes")))
        }
        (Some(expected), _) => Ok(expected.to_vec()),
        (None, Some(named)) => Ok(named),
        (None, None) => Ok((0..=largest).map(|i| i.to_string()).collect()),
    }
}

/// One class name per line, line i naming class i; blank lines at the end ignored.
fn read_classes(path: &Path) -> Result<Vec<String>> {
    let text = crate::io::read_regular_text(path, MAX_LIST_BYTES).map_err(|why| list_error(path, None, format!("it {why}")))?;
    let names: Vec<String> = text.trim_end().lines().map(|l| l.trim().to_string()).collect();
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(list_error(path, Some(i + 1), "is empty: each line names one class, line i naming class i".into()));
    }
    if let Some(w) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
        return Err(list_error(path, Some(w.0 + 1), format!("names {:?} a second time: every class needs its own name", w.1)));
    }
    Ok(names)
}

/// Every listed image decodes; the first that does not is an error naming its line.
fn check_images(list: &Path, samples: &[(usize, Sample)]) -> Result<()> {
    let paths: Vec<&Path> = samples.iter().map(|(_, s)| s.path.as_path()).collect();
    let verdicts = check_all(&paths, |p| decode_strict(p).map(drop));
    match samples.iter().zip(verdicts).find_map(|((number, s), v)| v.err().map(|why| (number, s, why))) {
        Some((number, s, why)) => Err(list_error(list, Some(*number), format!("{}: {why}; fix the image or remove the line", s.path.display()))),
        None => Ok(()),
    }
}

/// An error about a list (or its classes file), at a line when one is at fault.
fn list_error(path: &Path, line: Option<usize>, msg: String) -> Error {
    let at = match line {
        Some(n) => format!("{}:{n}", path.display()),
        None => path.display().to_string(),
    };
    Error::Format { path: at, msg }
}

/// Where a list's images are: `root`, else the list's folder.
fn images_root(list: &Path, root: Option<&Path>) -> PathBuf {
    root.map(Path::to_path_buf).unwrap_or_else(|| list.parent().map(Path::to_path_buf).unwrap_or_default())
}
