//! The files a command writes, and the policy that keeps the user's files safe:
//! - an output is never one of the command's inputs;
//! - an existing output is replaced only by the run that wrote it resuming (`--resume`), or when
//!   the user says so (`--force`);
//! - `vpt train` holds a lock on its output for the whole run, so a second run on the same
//!   `--out` is refused at once instead of interleaving with the first; the lock file never costs
//!   the user a file (a file of theirs under its name is locked as it is and left there, an input
//!   under its name is refused);
//! - the output's folder is checked before any work, not after the first epoch.
//!
//! (Each file itself is written atomically through a temporary file of this process's own, see
//! `io::write_atomically`.)

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{setting, Error, Result};

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

/// Check that `out`, given as the setting `what` (`out`, `out_dir`, or a phrase naming one in
/// backticks), can be written: not empty, its folder exists, and it is none of `inputs` (setting,
/// path). Does not look at whether it exists.
pub fn check_output_path(what: &str, out: &str, inputs: &[(&str, &str)]) -> Result<()> {
    if out.trim().is_empty() {
        return Err(Error::invalid(what, "is empty; give the path of the file to write"));
    }
    let path = Path::new(out);
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(Error::invalid(what, format!("{out}: the folder {} does not exist; create it first", folder.display())));
    }
    if path.is_dir() {
        return Err(Error::invalid(what, format!("{out} is a folder; give the path of a file to write")));
    }
    if let Err(e) = can_create_in(&folder) {
        return Err(Error::invalid(what, format!("{out}: no file can be created in {} ({e}); choose a folder you can write", folder.display())));
    }
    for (input_setting, input) in inputs {
        if same_file(Path::new(input), path) {
            return Err(Error::invalid(what, format!("{out} is also the {} input: writing it would destroy it; choose another {}", setting(input_setting), setting(what))));
        }
    }
    Ok(())
}

/// Check [`check_output_path`], and that `out` does not exist unless `force` allows replacing
/// it: what `vpt forward` and `vpt grad` do before computing anything.
pub fn check_new_output(what: &str, out: &str, inputs: &[(&str, &str)], force: bool) -> Result<()> {
    check_output_path(what, out, inputs)?;
    if !force && Path::new(out).exists() {
        return Err(Error::invalid(what, format!("{out} exists; pass `force` to replace it, or choose another {}", setting(what))));
    }
    Ok(())
}

/// Can a file be created in `folder`? Tried with a file of this process's own, created exclusively
/// (so nothing of the user's is touched) and removed at once: what is written later (a temporary
/// file renamed into place, a lock) needs exactly that, and a folder such as `/proc` refuses it.
fn can_create_in(folder: &Path) -> std::io::Result<()> {
    let probe = folder.join(format!(".vpt-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => std::fs::remove_file(&probe),
        // Someone's file under that name (not ours: it is left alone) shows files can be made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Make the output folder `dir` (given as the setting `what`) if it is not there, and check that
/// files can be created in it, before any work: `vpt compare`'s and `vpt demo`'s task files.
pub fn make_output_folder(what: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| can_create_in(dir))
        .map_err(|e| Error::invalid(what, format!("{}: cannot create the task files there ({e}); choose a folder you can write", dir.display())))
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
        check_output_path("out", out, inputs)?;
        let (task, resume_file, metrics, lock) = (out.to_string(), resume_path(out), metrics_path(out), lock_path(out));
        for (what, path) in [("`out` (its resume state)", &resume_file), ("`out` (its metrics)", &metrics)] {
            check_output_path(what, path, inputs)?;
        }
        // The lock sits beside the outputs, so it must not be an input either.
        if let Some((input_setting, _)) = inputs.iter().find(|(_, input)| same_file(Path::new(input), Path::new(&lock))) {
            return Err(Error::invalid(
                "out",
                format!("vpt train keeps a lock at {lock} while it writes {out}, and {lock} is the {} input; choose another `out`, or rename that input", setting(input_setting)),
            ));
        }
        let lock = take_lock(&lock, out)?;
        let existing: Vec<&String> = [&task, &resume_file, &metrics].into_iter().filter(|p| Path::new(p).exists()).collect();
        let start = match (resume, force) {
            (true, true) => return Err(Error::invalid("force", "and `resume` contradict each other: `resume` continues the run in `out`, `force` replaces it")),
            (true, false) if Path::new(&resume_file).exists() => Start::Resume,
            (true, false) if !existing.is_empty() => {
                return Err(Error::invalid(
                    "resume",
                    format!(
                        "{} exists but its resume state {resume_file} does not, so that run cannot be continued; pass `force` instead of `resume` to replace it, or choose another `out`",
                        existing[0]
                    ),
                ))
            }
            (false, false) if !existing.is_empty() => {
                return Err(Error::invalid("out", format!("{} exists; pass `resume` to continue that run, `force` to replace it, or choose another `out`", existing[0])));
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

/// What the first line of every lock file `vpt train` makes says: how a run tells a lock that a
/// vpt run made (one killed before it could remove it) from a user's file that has the name.
const LOCK_MARK: &str = "vpt train lock";

/// The most of an existing file at the lock path that is read to look for [`LOCK_MARK`].
const LOCK_READ_LIMIT: u64 = 4096;

/// A lock file, open and locked for the life of the run.
struct Lock {
    _file: File,
    path: String,
    /// What the file held when the run took it, if a vpt run made it (this run or a killed one):
    /// on the way out the file is removed only if it still holds exactly that. A file that was
    /// there and is not a vpt lock is locked as it is, never written, and never removed.
    made_by_vpt: Option<String>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(stamp) = &self.made_by_vpt {
            if read_head(&self.path).as_deref() == Some(stamp.as_str()) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Take the lock file without waiting: a run already holding it means a second run on the same
/// `--out`, refused at once.
///
/// The file is created exclusively, so a file already at `path` is never truncated. If one is
/// there, it is opened read-only and locked as it is: either a vpt lock that a killed run left
/// (it starts with [`LOCK_MARK`]; this run takes it over and removes it at the end), or a file of
/// the user's that happens to have the name (kept exactly as it was, and left there).
fn take_lock(path: &str, out: &str) -> Result<Lock> {
    let io_err = |source| Error::Io { path: path.to_string(), source };
    let (file, created) = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (File::open(path).map_err(io_err)?, false),
        Err(source) => return Err(io_err(source)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(Error::invalid("out", format!("another vpt train is writing {out} (it holds {path}); wait for it to end, or choose another `out`"))),
        Err(std::fs::TryLockError::Error(source)) => return Err(io_err(source)),
    }
    let made_by_vpt = if created {
        let stamp = lock_stamp(out);
        (&file).write_all(stamp.as_bytes()).map_err(io_err)?;
        Some(stamp)
    } else {
        read_head(path).filter(|text| text.starts_with(LOCK_MARK))
    };
    Ok(Lock { _file: file, path: path.to_string(), made_by_vpt })
}

/// What this run writes into the lock file it creates: the mark, and what tells this run's lock
/// from any other's (the process, and the time it was taken).
fn lock_stamp(out: &str) -> String {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{LOCK_MARK}: held while it writes {out}; removed when that run ends\npid {}\ntaken at {since} ns after the Unix epoch\n", std::process::id())
}

/// The first [`LOCK_READ_LIMIT`] bytes of the file at `path` as text; `None` if it cannot be read
/// or is not text.
fn read_head(path: &str) -> Option<String> {
    let mut head = Vec::new();
    File::open(path).ok()?.take(LOCK_READ_LIMIT).read_to_end(&mut head).ok()?;
    String::from_utf8(head).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder for one test, and the paths of a run's `--out` and its lock inside it.
    fn run_dir(name: &str) -> (PathBuf, String, String) {
        let dir = std::env::temp_dir().join(format!("vpt-outputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("run.safetensors").to_string_lossy().into_owned();
        let lock = lock_path(&out);
        (dir, out, lock)
    }

    #[test]
    fn the_lock_a_run_creates_is_removed_when_it_ends() {
        let (_dir, out, lock) = run_dir("created");
        let files = RunFiles::claim(&out, &[], false, false).unwrap();
        assert!(std::fs::read_to_string(&lock).unwrap().starts_with(LOCK_MARK));
        drop(files);
        assert!(!Path::new(&lock).exists(), "the run's own lock was left behind");
    }

    #[test]
    fn a_second_claim_on_the_same_out_is_refused_while_the_first_holds_it() {
        let (_dir, out, lock) = run_dir("second");
        let first = RunFiles::claim(&out, &[], false, false).unwrap();
        let err = RunFiles::claim(&out, &[], false, false).err().expect("a second claim must be refused").to_string();
        assert!(err.contains("another vpt train") && err.contains(&out), "{err}");
        assert!(Path::new(&lock).exists(), "the refused claim removed the first run's lock");
        drop(first);
        assert!(!Path::new(&lock).exists());
    }

    /// A user's file named like the lock is locked as it is: never written, never removed.
    #[test]
    fn a_users_file_at_the_lock_path_is_left_exactly_as_it_was() {
        let (_dir, out, lock) = run_dir("users-file");
        for contents in [&b"my notes about this run\n"[..], &b""[..], &[0xff, 0xfe, 0, 1][..]] {
            std::fs::write(&lock, contents).unwrap();
            let files = RunFiles::claim(&out, &[], false, false).unwrap();
            assert_eq!(std::fs::read(&lock).unwrap(), contents, "the run wrote into the user's file");
            // While the run holds it, a second run is still refused.
            assert!(RunFiles::claim(&out, &[], false, false).is_err());
            drop(files);
            assert_eq!(std::fs::read(&lock).unwrap(), contents, "the user's file was removed or changed when the run ended");
        }
    }

    /// What a run killed with SIGKILL leaves: its lock file, with its stamp. The next run (say,
    /// `--resume`) takes it over, and removes it when it ends.
    #[test]
    fn a_lock_left_by_a_killed_run_is_taken_over_and_removed() {
        let (_dir, out, lock) = run_dir("stale");
        std::fs::write(&lock, lock_stamp(&out)).unwrap();
        let files = RunFiles::claim(&out, &[], false, false).unwrap();
        drop(files);
        assert!(!Path::new(&lock).exists(), "the stale lock was left behind");
    }

    /// An input given under the lock's name (`--model run.lock`) is refused before anything.
    #[test]
    fn an_input_at_the_lock_path_is_refused_and_kept() {
        let (_dir, out, lock) = run_dir("input");
        std::fs::write(&lock, b"a checkpoint").unwrap();
        let err = RunFiles::claim(&out, &[("model", &lock)], false, false).err().expect("must be refused").to_string();
        assert!(err.contains("`model`") && err.starts_with("out:") && err.contains(&lock), "{err}");
        assert_eq!(std::fs::read(&lock).unwrap(), b"a checkpoint");
    }
}
