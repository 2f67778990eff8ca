//! The files a command writes, and the policy that keeps the user's files safe:
//! - an output is never one of the command's inputs;
//! - an existing output is replaced only by the run that wrote it resuming (`--resume`), or when
//!   the user says so (`--force`);
//! - `vpt train` holds a lock on its output for the whole run, so a second run on the same
//!   `--out` is refused at once instead of interleaving with the first;
//! - the output's folder is checked before any work, not after the first epoch.
//!
//! (Each file itself is written atomically through a temporary file of this process's own, see
//! `io::write_atomically`.)

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The resume file next to a task file.
pub fn resume_path(out: &str) -> String {
    format!("{}.resume.safetensors", out.strip_suffix(".safetensors").unwrap_or(out))
}

/// The metrics file next to a task file (one JSON object per epoch).
pub fn metrics_path(out: &str) -> String {
    format!("{}.metrics.jsonl", out.strip_suffix(".safetensors").unwrap_or(out))
}

/// The lock file next to a task file, held while `vpt train` writes it.
fn lock_path(out: &str) -> String {
    format!("{}.lock", out.strip_suffix(".safetensors").unwrap_or(out))
}

/// Check that `out`, given with `flag`, can be written: not empty, its folder exists, and it is
/// none of `inputs` (flag, path). Does not look at whether it exists.
pub fn check_output_path(flag: &str, out: &str, inputs: &[(&str, &str)]) -> Result<()> {
    if out.trim().is_empty() {
        return Err(Error::invalid(flag, "is empty; give the path of the file to write"));
    }
    let path = Path::new(out);
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(Error::invalid(flag, format!("{out}: the folder {} does not exist; create it first", folder.display())));
    }
    if path.is_dir() {
        return Err(Error::invalid(flag, format!("{out} is a folder; give the path of a file to write")));
    }
    for (input_flag, input) in inputs {
        if same_file(Path::new(input), path) {
            return Err(Error::invalid(flag, format!("{out} is also the {input_flag} input: writing it would destroy it; choose another {flag}")));
        }
    }
    Ok(())
}

/// Check [`check_output_path`], and that `out` does not exist unless `force` allows replacing
/// it: what `vpt forward` and `vpt grad` do before computing anything.
pub fn check_new_output(flag: &str, out: &str, inputs: &[(&str, &str)], force: bool) -> Result<()> {
    check_output_path(flag, out, inputs)?;
    if !force && Path::new(out).exists() {
        return Err(Error::invalid(flag, format!("{out} exists; pass --force to replace it, or choose another {flag}")));
    }
    Ok(())
}

/// Do two paths name the same existing file (however spelled: `./a`, `a`, a link)?
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What a training run may do with the files already at its `--out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Nothing of a run is there: start one.
    Fresh,
    /// Continue the run whose resume state is there.
    Resume,
}

/// The outputs of one `vpt train` run, claimed: checked, and locked until dropped.
pub struct RunFiles {
    pub task: String,
    pub resume: String,
    pub metrics: String,
    pub start: Start,
    /// Held for the life of the run.
    _lock: Lock,
}

impl RunFiles {
    /// Claim `out` for a training run, before any work: check the path (`inputs` are the files
    /// the run reads), take the lock, and decide from what is there and the flags whether the
    /// run starts fresh or resumes. With `force` (and without `resume`), an earlier run's files
    /// are removed so that nothing of it mixes with the new one.
    pub fn claim(out: &str, inputs: &[(&str, &str)], resume: bool, force: bool) -> Result<RunFiles> {
        check_output_path("--out", out, inputs)?;
        let (task, resume_file, metrics, lock) = (out.to_string(), resume_path(out), metrics_path(out), lock_path(out));
        for (what, path) in [("--out (its resume state)", &resume_file), ("--out (its metrics)", &metrics)] {
            check_output_path(what, path, inputs)?;
        }
        let lock = take_lock(&lock, out)?;
        let existing: Vec<&String> = [&task, &resume_file, &metrics].into_iter().filter(|p| Path::new(p).exists()).collect();
        let start = match (resume, force) {
            (true, true) => return Err(Error::invalid("--force", "and --resume contradict each other: --resume continues the run in --out, --force replaces it")),
            (true, false) if Path::new(&resume_file).exists() => Start::Resume,
            (true, false) if !existing.is_empty() => {
                return Err(Error::invalid(
                    "--resume",
                    format!("{} exists but its resume state {resume_file} does not, so that run cannot be continued; pass --force instead of --resume to replace it, or choose another --out", existing[0]),
                ))
            }
            (false, false) if !existing.is_empty() => {
                return Err(Error::invalid("--out", format!("{} exists; pass --resume to continue that run, --force to replace it, or choose another --out", existing[0])));
            }
            (false, true) => {
                for path in &existing {
                    std::fs::remove_file(path).map_err(|source| Error::Io { path: path.to_string(), source })?;
                }
                Start::Fresh
            }
            _ => Start::Fresh,
        };
        Ok(RunFiles { task, resume: resume_file, metrics, start, _lock: lock })
    }
}

/// A lock file, open and locked; removed when dropped (also when the claim that took it fails).
struct Lock {
    _file: File,
    path: String,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Create (or open) the lock file and lock it without waiting: a run already holding it means a
/// second run on the same `--out`, refused at once.
fn take_lock(path: &str, out: &str) -> Result<Lock> {
    let io_err = |source| Error::Io { path: path.to_string(), source };
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file, path: path.to_string() }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::invalid(
            "--out",
            format!("another vpt train is writing {out} (it holds {path}); wait for it to end, or choose another --out"),
        )),
        Err(std::fs::TryLockError::Error(source)) => Err(io_err(source)),
    }
}
