//! The `vpt` command-line tool. Each subcommand is a thin layer over the library: parse the
//! arguments, call it, print the result; any error is printed and the exit code is non-zero
//! (1; 2 for arguments the parser refuses; 130 for a training run stopped by Ctrl-C).
//!
//! This file lists the commands; `cli/` holds their flags (`args/`), the mapping of flags to
//! library settings (`settings.rs`) and one file per command (`commands/`).

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::args::commands::*;
use cli::commands;

#[derive(Parser)]
#[command(name = "vpt", version, about = "Visual Prompt Tuning on hand-written WGSL kernels (wgpu: Vulkan, Metal, DX12, GL)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter with its backend, driver, optional features and the limits that
    /// matter for large tensors. Honours WGPU_BACKEND (e.g. `vulkan`, `gl`).
    Info,
    /// One VPT forward and backward pass: logits, loss and the gradients of what a tuning method
    /// trains (prompts and head by default).
    ///
    /// MODEL: timm state dict (.safetensors, f32/f16/bf16); TASK: `prompts` [depth, P, D],
    /// `head.weight` [C, D], `head.bias` [C], metadata `pool`; BATCH: `images` f32 [B, 3, H, W]
    /// (normalised), `labels` i64 [B]. OUT gets `logits`, `loss`, `grad.prompts` (a `prompt`
    /// method with prompts in TASK), `grad.head.weight`, `grad.head.bias`, and `grad.<name>` for
    /// every other tensor the method trains (`grad.blocks.3.attn.qkv.bias`, `grad.lora.0.qkv.a`).
    Grad(GradArgs),
    /// Logits only (no labels needed in BATCH); OUT gets `logits`.
    Forward(ForwardArgs),
    /// The bundled demo: prompt-tune a small pretrained ViT on handwritten digits it never saw,
    /// every way the paper compares, beside the PyTorch reference.
    Demo(DemoArgs),
    /// Prompt-tune the backbone on a folder of images (one sub-folder per class).
    Train(TrainArgs),
    /// The paper's comparison on your images: train each method (--methods) with one recipe
    /// and report trainable parameters, task file size, top-1, images/s and peak memory as a
    /// table, OUT_DIR/compare.json and OUT_DIR/compare.svg (top-1 against trainable parameters).
    Compare(CompareArgs),
    /// The paper's search on your images: train every pair of --lr × --wd (default: the paper's
    /// 10 × 4 grid), pick the best by validation top-1, train it again on train + val
    /// (OUT_DIR/best.safetensors) and report its top-1 on --test. Writes OUT_DIR/sweep.json and
    /// OUT_DIR/sweep.svg (a heatmap) as it goes; --resume continues a sweep that was stopped.
    Sweep(SweepArgs),
    /// Measure which kernel variant is fastest on this adapter at the shapes of one training step
    /// (the matmul kernel per shape and layout, the row kernels' reduction) and
    /// write the winners to this adapter's tune cache, which every later command uses. Never runs
    /// by itself: the same inputs on the same machine always take the same kernels.
    Tune(TuneArgs),
    /// Prove every kernel correct on this adapter: each kernel and variant (every matmul kernel,
    /// the fused attention, the row kernels with and without subgroups) against the PyTorch
    /// fixtures embedded in the binary and against f64 references at awkward shapes. Prints each
    /// comparison's worst error beside its tolerance; exits non-zero if any fails.
    Check(CheckArgs),
    /// Record the engine's GPU work into a trace file that any browser can replay (`vpt lab`):
    /// every buffer, upload, kernel launch (with its WGSL), copy and read-back, in order.
    ///
    /// WORKLOAD `kernels`: everything `vpt check` runs (every kernel and variant, forward and
    /// backward); `step`: one VPT-deep training step of a small ViT, its loss read back. The
    /// trace is refused if `vpt check` fails here. Format: docs/trace.md.
    Record(RecordArgs),
    /// Serve the browser lab on 127.0.0.1: a page that replays traces on the browser's WebGPU,
    /// checks every kernel against the engine's results and times it. Prints the URL to open;
    /// runs until stopped (Ctrl-C). Without --traces it first records `kernels` and `step` here.
    Lab(LabArgs),
    /// Time every kernel of a ViT training step (matmul variants side by side, LayerNorm,
    /// softmax, GELU, cross-entropy; forward and backward) on this machine's GPU.
    Bench(BenchArgs),
    /// Top-1 and per-class accuracy of a task on a folder of images.
    Eval(EvalArgs),
    /// Top-k classes for images, from one or more tasks served by one backbone in one batch.
    Predict(PredictArgs),
    /// Write a backbone published in another layout (Google's JAX .npz, a Hugging Face hub
    /// folder of config.json + model.safetensors, a PyTorch .pth; every --model takes these too) as timm-named
    /// .safetensors with its heads, mean and std in the metadata, which later commands load
    /// directly.
    Convert(ConvertArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Info => commands::info::run(),
        Command::Grad(a) => commands::grad::run(&a),
        Command::Forward(a) => commands::forward::run(&a),
        Command::Demo(a) => commands::demo::run(&a),
        Command::Train(a) => commands::train::run(&a),
        Command::Compare(a) => commands::compare::run(&a),
        Command::Sweep(a) => commands::sweep::run(&a),
        Command::Tune(a) => commands::tune::run(&a),
        Command::Check(a) => commands::check::run(&a),
        Command::Record(a) => commands::record::run(&a),
        Command::Lab(a) => commands::lab::run(&a),
        Command::Bench(a) => commands::bench::run(&a),
        Command::Eval(a) => commands::eval::run(&a),
        Command::Predict(a) => commands::predict::run(&a),
        Command::Convert(a) => commands::convert::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ vpt_wgsl::Error::Interrupted { .. }) => {
            eprintln!("{}", cli::flags::error_text(&e));
            ExitCode::from(130) // the shell's code for a run ended by SIGINT
        }
        Err(e) => {
            eprintln!("error: {}", cli::flags::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The flags are well formed (clap's own checks), and every flag and argument of every
    /// command says what it is for in `vpt COMMAND --help`.
    #[test]
    fn every_flag_has_help_text() {
        let cli = super::Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        for command in cli.get_subcommands() {
            for arg in command.get_arguments().filter(|a| !["help", "version"].contains(&a.get_id().as_str())) {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("vpt {} {}", command.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "flags without help text: {missing:?}");
    }

    /// Every flag the library's settings are shown as (`cli/flags.rs`) is a flag of some command.
    #[test]
    fn every_setting_is_shown_as_a_real_flag() {
        let cli = super::Cli::command();
        let longs: Vec<String> = cli.get_subcommands().flat_map(|c| c.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect::<Vec<_>>()).collect();
        let unknown: Vec<&str> = super::cli::flags::FLAGS.iter().map(|(_, flag)| *flag).filter(|flag| !longs.iter().any(|l| l == flag)).collect();
        assert!(unknown.is_empty(), "no command has these flags: {unknown:?}");
    }

    /// A recipe given as settings (a browser page's query string, `train/recipe.rs`) takes the
    /// same defaults as `vpt train`'s flags, and each of its names is a flag of `vpt train`.
    #[test]
    fn recipe_settings_have_the_flags_names_and_defaults() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from(["vpt", "train", "--model", "m", "--data", "d", "--out", "o"]).unwrap();
        let super::Command::Train(a) = cli.command else { unreachable!("parsed as train") };
        let mut from_flags = a.recipe.config(&a.out, a.method.method().unwrap(), a.rates.lr, a.rates.wd, false, false).unwrap();
        from_flags.out = String::new();
        let from_settings = vpt_wgsl::train::recipe::config_from_settings(&[], "m", "d").unwrap();
        assert_eq!(format!("{from_flags:?}"), format!("{from_settings:?}"));
        let train = super::Cli::command().find_subcommand("train").unwrap().clone();
        for (name, _) in vpt_wgsl::train::recipe::RECIPE_SETTINGS {
            assert!(train.get_arguments().any(|arg| arg.get_long() == Some(name)), "`vpt train` has no --{name}");
        }
    }
}
