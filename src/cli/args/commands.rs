//! Each command's own flags, beside the shared groups it flattens in (`shared.rs`).

use std::path::PathBuf;

use super::shared::{non_empty_path, positive_f64, DeviceArgs, MethodArgs, MethodSizes, ModelArgs, OutputArgs, PlanArgs, PrecisionArg, PresetArg, RateArgs, RecipeArgs, SearchArgs, TimingArg};

/// The files `grad` and `forward` read.
#[derive(clap::Args)]
pub struct StepInputs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Task file: prompts, head, pooling (and what a method added).
    #[arg(long, value_parser = non_empty_path)]
    pub task: PathBuf,
    /// Batch file: images (and labels).
    #[arg(long, value_parser = non_empty_path)]
    pub batch: PathBuf,
}

#[derive(clap::Args)]
pub struct GradArgs {
    #[command(flatten)]
    pub inputs: StepInputs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub method: MethodArgs,
}

#[derive(clap::Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub inputs: StepInputs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The demo's folder (backbone, images, PyTorch reference).
    #[arg(long, value_parser = non_empty_path)]
    pub dir: Option<PathBuf>,
    /// Where the task files go.
    #[arg(long, default_value = "vpt-demo", value_parser = non_empty_path)]
    pub out_dir: PathBuf,
    /// Override the reference recipe's epochs (then the comparison is no longer like for like).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Run every method with each of the reference's five seeds, as PyTorch did, and print
    /// both spreads (five times as long).
    #[arg(long)]
    pub seeds: bool,
    /// Only these variants, comma-separated (linear, shallow, deep, bias, partial-1, adapter,
    /// lora, ia3, dora, full); default all.
    #[arg(long, value_delimiter = ',')]
    pub variants: Option<Vec<String>>,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

/// `vpt train` arguments. Defaults follow the paper's recipe (SGD, momentum 0.9, warm-up then
/// cosine, LR = base LR × batch / 256).
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub method: MethodArgs,
    /// The task file to write (after every epoch).
    #[arg(long, value_parser = non_empty_path)]
    pub out: PathBuf,
    /// Continue the run whose task file is --out, from its last finished epoch.
    #[arg(long)]
    pub resume: bool,
    /// Replace the task file, resume state and metrics of an earlier run at --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub rates: RateArgs,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

/// `vpt sweep`: the paper's search over learning rate × weight decay, the best pair refit on
/// train + val.
#[derive(clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub method: MethodArgs,
    /// The folder for sweep.json, sweep.svg, best.safetensors and the runs' metrics (runs/).
    #[arg(long, value_parser = non_empty_path)]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Keep every run's task file and resume state in OUT_DIR/runs (by default a finished run
    /// keeps only its metrics).
    #[arg(long)]
    pub keep_runs: bool,
    /// Continue the sweep in --out-dir: finished pairs are not run again, a run cut off
    /// continues from its last epoch.
    #[arg(long)]
    pub resume: bool,
    /// Replace the files of an earlier sweep in --out-dir.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

/// `vpt compare`: several methods trained with one recipe.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// The methods, comma-separated, each as `--method` takes it.
    #[arg(long, default_value = "linear,prompt,bias,partial-1,adapter,lora,ia3,dora,full")]
    pub methods: String,
    #[command(flatten)]
    pub sizes: MethodSizes,
    /// The folder for each method's task file and the report (compare.json, compare.svg).
    #[arg(long, value_parser = non_empty_path)]
    pub out_dir: PathBuf,
    /// Replace files of an earlier comparison in --out-dir.
    #[arg(long)]
    pub force: bool,
    /// Give each method its own search (`vpt sweep` over --lr × --wd, in OUT_DIR/METHOD/), and
    /// report each with its best pair refit on train + val.
    #[arg(long)]
    pub sweep: bool,
    #[command(flatten)]
    pub search: SearchArgs,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

/// The flags of `vpt tune`.
#[derive(clap::Args, Clone, Debug)]
pub struct TuneArgs {
    /// The step to tune for: `small` (ViT-B widths at 112 pixels, batch 1) or `vit-b` (ViT-B/16
    /// with 50 prompts, batch 32 unless --batch says otherwise). Tune at the batch you train with.
    #[arg(long, value_enum, default_value_t = PresetArg::VitB)]
    pub preset: PresetArg,
    /// Images per step, replacing the preset's.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed repetitions per candidate (each after one untimed run).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Only the cases whose "kernel variant" contains one of these words, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Compile the kernels from this copy of the repository's `wgsl/` folder instead of the
    /// sources built into the binary (to check an edited kernel without rebuilding).
    #[arg(long, value_parser = non_empty_path)]
    pub wgsl_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RecordArgs {
    /// kernels or step.
    pub workload: String,
    /// The trace file to write (default: WORKLOAD.trace in this folder).
    #[arg(long, value_parser = non_empty_path)]
    pub out: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(clap::Args)]
pub struct LabArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8321)]
    pub port: u16,
    /// Serve the .trace files in this folder instead of recording new ones.
    #[arg(long, value_parser = non_empty_path)]
    pub traces: Option<PathBuf>,
    /// The browser package `bash web/build.sh` wrote, for /train and /check (default: web/pkg of
    /// this repository).
    #[arg(long, value_parser = non_empty_path)]
    pub web: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// The flags of `vpt bench` (and of `cargo bench -- ...`).
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Sizes: `small` (ViT-B widths, batch 1, 60 tokens: minutes on lavapipe) or `vit-b` (ViT-B/16
    /// with 50 VPT prompts: 247 tokens, batch 32 unless --batch says otherwise).
    #[arg(long, value_enum, default_value_t = PresetArg::Small)]
    pub preset: PresetArg,
    /// Images per step, replacing the preset's.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed repetitions per case (each after one untimed run).
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Only the cases whose "kernel variant" contains one of these words, comma-separated
    /// (e.g. `fc1`, `reg16x8`, `softmax,gelu`).
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// `gpu`: timestamps written by the GPU around each kernel; `wall`: the host clock around each
    /// kernel submitted alone; `auto`: `gpu` where the adapter supports it.
    #[arg(long, value_enum, default_value_t = TimingArg::Auto)]
    pub timing: TimingArg,
    /// Print one JSON object at the end instead of the table (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// How the timed training step's blocks run.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// The adapter's FP32 peak in GFLOP/s (from its maker's data sheet): adds a "% peak" column.
    #[arg(long, value_parser = positive_f64)]
    pub peak_gflops: Option<f64>,
    /// How the weights are stored in the linear layers' matmuls and the timed training step:
    /// `f32`, or `f16` (read widened to f32).
    #[command(flatten)]
    pub precision: PrecisionArg,
}

/// The flags of `vpt convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The backbone: timm-named .safetensors, Google's JAX .npz, a Hugging Face hub folder
    /// (config.json + model.safetensors), or a PyTorch .pth (.pth.tar, .pt, .bin).
    #[arg(long, value_parser = non_empty_path)]
    pub model: PathBuf,
    /// Attention heads, when the source says neither in its metadata nor by its architecture.
    #[arg(long)]
    pub num_heads: Option<usize>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task file to evaluate.
    #[arg(long, value_parser = non_empty_path)]
    pub task: PathBuf,
    /// Images in class sub-folders named as the task's classes, or a split list (`relative/path
    /// label` lines, the labels indexing the task's classes).
    #[arg(long, value_parser = non_empty_path)]
    pub data: PathBuf,
    /// The folder a split list's paths are relative to (default: the list's own folder).
    #[arg(long, value_parser = non_empty_path)]
    pub root: Option<PathBuf>,
    /// Images per batch.
    #[arg(long, default_value_t = vpt_wgsl::train::evaluate::EVAL_BATCH)]
    pub batch: usize,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Task files (repeat --task to ask several tasks at once).
    #[arg(long = "task", required = true, value_parser = non_empty_path)]
    pub tasks: Vec<PathBuf>,
    /// Classes to print per image and task, the likeliest first.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Image files (JPEG or PNG).
    #[arg(required = true, value_parser = non_empty_path)]
    pub images: Vec<PathBuf>,
}
