//! `cargo bench`: the kernel benchmarks of `vpt bench`, with the same flags after `--`:
//!
//! ```sh
//! cargo bench                                            # the small preset
//! cargo bench -- --preset vit-b --batch 1 --filter fc1   # one matmul at ViT-B/16 sizes
//! ```

use std::process::ExitCode;

use clap::Parser;
use vpt_wgsl::bench::{run_cli, BenchArgs};

#[derive(Parser)]
#[command(name = "cargo bench --", about = "Time every kernel of a ViT training step (the flags of `vpt bench`)")]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() -> ExitCode {
    // Cargo adds `--bench` for every bench target (libtest uses it); it is not one of ours.
    let cli = Cli::parse_from(std::env::args().filter(|a| a != "--bench"));
    match run_cli(&cli.bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
