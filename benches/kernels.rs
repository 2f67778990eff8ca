//! `cargo bench`: the kernel benchmarks of `vpt bench`, with the same flags after `--`:
//!
//! ```sh
//! cargo bench                                            # the small preset
//! cargo bench -- --preset vit-b --batch 1 --filter fc1   # one matmul at ViT-B/16 sizes
//! ```
//!
//! It runs the `vpt` binary Cargo built alongside, `vpt bench FLAGS`, so the two can never differ
//! in flags or behaviour (the flags are defined once, in `src/main.rs`).

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // Cargo adds `--bench` for every bench target (libtest uses it); it is not one of ours.
    let flags = std::env::args().skip(1).filter(|a| a != "--bench");
    match Command::new(env!("CARGO_BIN_EXE_vpt")).arg("bench").args(flags).status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: could not run {}: {e}", env!("CARGO_BIN_EXE_vpt"));
            ExitCode::FAILURE
        }
    }
}
