//! The core/native line (docs/architecture.md, "Core and native"): the library's core — every
//! module not declared under `#[cfg(feature = "native")]` — uses no file system, thread, process,
//! signal or file lock, so that it runs in a browser (wasm32 on WebGPU). The wasm32 build
//! (`web/build.sh`) proves it compiles there; it cannot prove this, because Rust's std for
//! wasm32 has a file system and threads that compile and then fail when called. This test reads
//! the sources instead. Needs no GPU.

use std::path::{Path, PathBuf};

/// What the core must not use, each with what it is.
const FORBIDDEN: &[(&str, &str)] = &[
    ("std::fs", "the file system"),
    ("fs::", "the file system"),
    ("File::", "a file"),
    ("OpenOptions", "a file"),
    ("try_lock(", "a file lock"),
    ("thread::spawn", "a thread"),
    ("thread::scope", "a thread"),
    ("thread::Builder", "a thread"),
    ("thread::sleep", "a blocked thread"),
    ("std::process", "the process"),
    ("ctrlc", "a signal"),
    ("indicatif", "the terminal"),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The files and folders that `file` declares under `#[cfg(feature = "native")]`: `mod x;` on the
/// line after the attribute is `x.rs` or the folder `x/` beside it (or below it, for a `mod.rs` or
/// `lib.rs`).
fn native_modules(file: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let dir = match file.file_name().unwrap().to_str().unwrap() {
        "mod.rs" | "lib.rs" => file.parent().unwrap().to_path_buf(),
        _ => file.with_extension(""),
    };
    let mut out = Vec::new();
    for pair in lines.windows(2) {
        if pair[0] != "#[cfg(feature = \"native\")]" {
            continue;
        }
        let Some(name) = pair[1].trim_start_matches("pub ").strip_prefix("mod ").and_then(|m| m.strip_suffix(';')) else { continue };
        out.push(dir.join(format!("{name}.rs")));
        out.push(dir.join(name));
    }
    out
}

/// The library's core files: every file under `src/` but the command line's, the binary's and the
/// native modules'.
fn core_files() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = rust_files(&src);
    let native: Vec<PathBuf> = all.iter().flat_map(|f| native_modules(f)).collect();
    let outside = [src.join("cli"), src.join("main.rs")];
    all.into_iter().filter(|f| !native.iter().chain(&outside).any(|n| f.starts_with(n))).collect()
}

/// A file's code without its unit tests (`#[cfg(test)]` to the end: tests run natively) and
/// without comments.
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap();
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Does `code` use `pattern` as a name of its own: not the tail of a longer name (`TaskFile::`,
/// `TensorFile::` are ours, not `std::fs::File::`)?
fn uses(code: &str, pattern: &str) -> bool {
    code.match_indices(pattern).any(|(i, _)| !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
}

#[test]
fn the_core_uses_no_file_system_thread_process_or_signal() {
    let files = core_files();
    // The line is where the docs say: the layers below train are core, and so are these of train.
    for core in [
        "gpu/mod.rs",
        "model/methods/tuner.rs",
        "train/optim.rs",
        "train/schedule.rs",
        "train/task.rs",
        "train/start.rs",
        "train/step.rs",
        "train/recipe.rs",
        "train/data/transform.rs",
        "train/data/listing.rs",
        "io/mod.rs",
        "check/mod.rs",
    ] {
        assert!(files.iter().any(|f| f.ends_with(core)), "src/{core} should be core, but is declared native (or is gone)");
    }
    for native in ["io/files.rs", "train/fit.rs", "train/resume.rs", "train/outputs.rs", "train/data/loader.rs", "gpu/tune_cache.rs", "lab/mod.rs", "lab/web.rs"] {
        assert!(!files.iter().any(|f| f.ends_with(native)), "src/{native} should be native");
    }
    let mut found = Vec::new();
    for file in &files {
        let code = code_of(file);
        for (pattern, what) in FORBIDDEN {
            if uses(&code, pattern) {
                found.push(format!("{} uses {what} ({pattern})", file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core must build and run on wasm32 in a browser; move this code into a native module (declared under #[cfg(feature = \"native\")]) and give the core bytes or values:\n{}",
        found.join("\n")
    );
}
