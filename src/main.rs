//! The `vpt` command-line tool. Each subcommand is a thin layer over the library: parse the
//! arguments, call it, print the result; any error is printed and the exit code is non-zero
//! (1; 2 for arguments the parser refuses; 130 for a training run stopped by Ctrl-C).
//!
//! One concern, the command line, in one file of about 900 lines: every clap type lives here (the
//! flags of every command with their help text, which is most of the file), so that the library
//! holds none, and each command's body is a few lines of glue.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vpt_wgsl::bench::{BenchOptions, Preset};
use vpt_wgsl::gpu::{backends_from_env, list_adapters, AdapterReport, TimingMethod};
use vpt_wgsl::io::TensorFile;
use vpt_wgsl::lab::Workload;
use vpt_wgsl::model::methods::method::Method;
use vpt_wgsl::model::methods::options::MethodOptions;
use vpt_wgsl::model::plan::{AttentionChoice, BlockPlan, Recompute};
use vpt_wgsl::model::vit::{LoadOptions, Precision, StateDict, Vit};
use vpt_wgsl::model::vpt::{self, Pool, VptTask};
use vpt_wgsl::train::config::{Depth, TrainConfig};
use vpt_wgsl::train::data::{default_resize, ImageFolder, Normalization, Transform};
use vpt_wgsl::train::fit;
use vpt_wgsl::train::outputs::check_new_output;
use vpt_wgsl::train::progress::ProgressBar;
use vpt_wgsl::train::task::{backbone_fingerprint, check_trained_on, parse_size, TaskFile};
use vpt_wgsl::train::Optimizer;
use vpt_wgsl::{Gpu, Result, Tensor};

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
    /// method with prompts in TASK), `grad.head.weight`, `grad.head.bias`, and `grad.<timm name>`
    /// for every backbone tensor the method trains (`grad.blocks.3.attn.qkv.bias`, `grad.pos_embed`).
    Grad {
        #[command(flatten)]
        inputs: ModelInputs,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        method: MethodArgs,
    },
    /// Logits only (no labels needed in BATCH); OUT gets `logits`.
    Forward {
        #[command(flatten)]
        inputs: ModelInputs,
        #[command(flatten)]
        output: Output,
    },
    /// The bundled demo: prompt-tune a small pretrained ViT on handwritten digits it never saw
    /// (linear probe, VPT-shallow, VPT-deep) and compare with the PyTorch reference.
    Demo {
        /// The demo's folder (backbone, images, PyTorch reference).
        #[arg(long, value_parser = non_empty_path)]
        dir: Option<PathBuf>,
        /// Where the task files go.
        #[arg(long, default_value = "vpt-demo", value_parser = non_empty_path)]
        out_dir: PathBuf,
        /// Override the reference recipe's epochs (then the comparison is no longer like for like).
        #[arg(long)]
        epochs: Option<usize>,
        /// Run every method with each of the reference's five seeds, as PyTorch did, and print
        /// both spreads (five times as long).
        #[arg(long)]
        seeds: bool,
        /// Only these variants, comma-separated (linear, shallow, deep, bias, partial-1, adapter,
        /// lora, ia3, dora, full); default all.
        #[arg(long, value_delimiter = ',')]
        variants: Option<Vec<String>>,
        #[command(flatten)]
        precision: PrecisionArg,
    },
    /// Prompt-tune the backbone on a folder of images (one sub-folder per class).
    Train(TrainArgs),
    /// The paper's comparison on your images: train each method (--methods) with one recipe
    /// and report trainable parameters, task file size, top-1, images/s and peak memory as a
    /// table, OUT_DIR/compare.json and OUT_DIR/compare.svg (top-1 against trainable parameters).
    Compare(CompareArgs),
    /// Measure which kernel variant is fastest on this adapter at the shapes of one training step
    /// (the matmul kernel per shape and layout, the row kernels' reduction) and
    /// write the winners to this adapter's tune cache, which every later command uses. Never runs
    /// by itself: the same inputs on the same machine always take the same kernels.
    Tune(TuneArgs),
    /// Prove every kernel correct on this adapter: each kernel and variant (every matmul kernel,
    /// the fused attention, the row kernels with and without subgroups) against the PyTorch
    /// fixtures embedded in the binary and against f64 references at awkward shapes. Prints each
    /// comparison's worst error beside its tolerance; exits non-zero if any fails.
    Check {
        /// GPU API to use; default: WGPU_BACKEND if set, else the best adapter of any.
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
        /// Compile the kernels from this copy of the repository's `wgsl/` folder instead of the
        /// sources built into the binary (to check an edited kernel without rebuilding).
        #[arg(long)]
        wgsl_dir: Option<PathBuf>,
    },
    /// Record the engine's GPU work into a trace file that any browser can replay (`vpt lab`):
    /// every buffer, upload, kernel launch (with its WGSL), copy and read-back, in order.
    ///
    /// WORKLOAD `kernels`: everything `vpt check` runs (every kernel and variant, forward and
    /// backward); `step`: one VPT-deep training step of a small ViT, its loss read back. The
    /// trace is refused if `vpt check` fails here. Format: docs/trace.md.
    Record {
        /// kernels or step.
        workload: String,
        /// The trace file to write (default: WORKLOAD.trace in this folder).
        #[arg(long, value_parser = non_empty_path)]
        out: Option<PathBuf>,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
        /// GPU API to record on; default: WGPU_BACKEND if set, else the best adapter of any.
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
    },
    /// Serve the browser lab on 127.0.0.1: a page that replays traces on the browser's WebGPU,
    /// checks every kernel against the engine's results and times it. Prints the URL to open;
    /// runs until stopped (Ctrl-C). Without --traces it first records `kernels` and `step` here.
    Lab {
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 8321)]
        port: u16,
        /// Serve the .trace files in this folder instead of recording new ones.
        #[arg(long, value_parser = non_empty_path)]
        traces: Option<PathBuf>,
        /// GPU API to record on (without --traces).
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
    },
    /// Time every kernel of a ViT training step (matmul variants side by side, LayerNorm,
    /// softmax, GELU, cross-entropy; forward and backward) on this machine's GPU.
    Bench(BenchArgs),
    /// Top-1 and per-class accuracy of a task on a folder of images.
    Eval {
        #[arg(long, value_parser = non_empty)]
        model: String,
        #[arg(long, value_parser = non_empty)]
        task: String,
        /// Images in class sub-folders named as the task's classes.
        #[arg(long, value_parser = non_empty_path)]
        data: PathBuf,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long)]
        num_heads: Option<usize>,
        #[command(flatten)]
        precision: PrecisionArg,
    },
    /// Top-k classes for images, from one or more tasks served by one backbone in one batch.
    Predict {
        #[arg(long, value_parser = non_empty)]
        model: String,
        /// Task files (repeat --task to ask several tasks at once).
        #[arg(long = "task", required = true, value_parser = non_empty)]
        tasks: Vec<String>,
        #[arg(long, default_value_t = 3)]
        top_k: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long)]
        num_heads: Option<usize>,
        #[command(flatten)]
        precision: PrecisionArg,
        /// Image files (JPEG or PNG).
        #[arg(required = true, value_parser = non_empty_path)]
        images: Vec<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum PoolArg {
    Cls,
    Image,
    Prompt,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum OptimizerArg {
    Sgd,
    Adamw,
}

/// `vpt train` arguments. Defaults follow the paper's recipe (SGD, momentum 0.9, warm-up then
/// cosine, LR = base LR × batch / 256).
/// `--method` and how it makes what it adds (train, grad).
#[derive(clap::Args, Clone, Debug)]
struct MethodArgs {
    /// What trains besides the head, as parts joined by +: prompt (VPT), linear (the head alone),
    /// bias (every backbone bias), partial-K (the last K blocks and the final norm), full (every
    /// backbone tensor), adapter (a Pfeiffer adapter per block), lora (LoRA on every qkv), ia3
    /// (IA³: keys, values and the MLP hidden rescaled), dora (DoRA on every qkv: a magnitude per
    /// row and a low-rank direction); e.g. prompt+bias.
    #[arg(long, default_value = "prompt")]
    method: String,
    #[command(flatten)]
    options: MethodSizes,
}

impl MethodArgs {
    fn method(&self) -> Result<Method> {
        self.options.parse(&self.method)
    }
}

/// How the methods that add tensors make them (adapter, LoRA).
#[derive(clap::Args, Clone, Debug)]
struct MethodSizes {
    /// adapter: width D/R of the adapters it makes (where the task has none).
    #[arg(long, default_value_t = 8)]
    adapter_reduction: usize,
    /// lora, dora: rank R of the pairs they make (where the task has none).
    #[arg(long, default_value_t = 8)]
    lora_rank: usize,
    /// lora, dora: α of the scale α/R of B·A; default R. A task's own pairs keep its file's
    /// lora_alpha.
    #[arg(long)]
    lora_alpha: Option<f32>,
}

impl MethodSizes {
    /// The method `name` (`--method`), made with these sizes.
    fn parse(&self, name: &str) -> Result<Method> {
        let options = MethodOptions::default().with("adapter_reduction", self.adapter_reduction as f64).with("lora_rank", self.lora_rank as f64);
        let options = match self.lora_alpha {
            Some(a) => options.with("lora_alpha", a as f64),
            None => options,
        };
        Method::parse(name, &options)
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    method: MethodArgs,
    /// The task file to write (after every epoch).
    #[arg(long, value_parser = non_empty)]
    out: String,
    /// Continue the run whose task file is --out, from its last finished epoch.
    #[arg(long)]
    resume: bool,
    /// Replace the task file, resume state and metrics of an earlier run at --out.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
}

/// `vpt compare`: several methods trained with one recipe.
#[derive(clap::Args)]
struct CompareArgs {
    /// The methods, comma-separated, each as `--method` takes it.
    #[arg(long, default_value = "linear,prompt,bias,partial-1,adapter,lora,ia3,dora,full")]
    methods: String,
    #[command(flatten)]
    options: MethodSizes,
    /// The folder for each method's task file and the report (compare.json, compare.svg).
    #[arg(long, value_parser = non_empty_path)]
    out_dir: PathBuf,
    /// Replace files of an earlier comparison in --out-dir.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
}

/// The backbone, the data and how to train: what `vpt train` and `vpt compare` share.
#[derive(clap::Args)]
struct RecipeArgs {
    /// Backbone checkpoint with timm names (.safetensors).
    #[arg(long, value_parser = non_empty)]
    model: String,
    /// Training images: one sub-folder per class.
    #[arg(long, value_parser = non_empty_path)]
    data: PathBuf,
    /// Validation images (same class folders); default: a seeded 90/10 split of --data.
    #[arg(long, value_parser = non_empty_path)]
    val: Option<PathBuf>,
    /// Prompt tokens per layer (0: linear probe).
    #[arg(long, default_value_t = 50)]
    prompts: usize,
    /// Prompted layers: shallow (the first), deep (all), or a number.
    #[arg(long, default_value = "deep", value_parser = clap::value_parser!(Depth))]
    depth: Depth,
    /// Output pooling: the CLS token, the mean of the image tokens, or the mean of the prompts.
    #[arg(long, value_enum, default_value_t = PoolArg::Cls)]
    pool: PoolArg,
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Base learning rate; the rate used is lr × batch / 256. The paper searches
    /// {50, 25, 10, 5, 2.5, 1, 0.5, 0.25, 0.1, 0.05}.
    #[arg(long, default_value_t = 0.5)]
    lr: f64,
    /// Weight decay (the paper searches {0.01, 1e-3, 1e-4, 0}).
    #[arg(long, default_value_t = 1e-4)]
    wd: f32,
    /// Warm-up epochs: the rate rises linearly from 0 over them, then follows half a cosine. A
    /// warm-up as long as the run or longer is kept as given (the rate never leaves it), and the
    /// run warns and says the highest rate it will reach.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// sgd (momentum 0.9, the paper's) or adamw (β = 0.9, 0.999).
    #[arg(long, value_enum, default_value_t = OptimizerArg::Sgd)]
    optimizer: OptimizerArg,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Crop size; default: the checkpoint's image size.
    #[arg(long)]
    img_size: Option<usize>,
    /// No horizontal flips at training (for images that are not mirror-symmetric, like digits).
    #[arg(long)]
    no_flip: bool,
    /// Prompt dropout (the paper uses 0.1 for VPT-deep).
    #[arg(long, default_value_t = 0.0)]
    prompt_dropout: f32,
    /// Normalisation mean "r,g,b"; default: the checkpoint's metadata, else ImageNet's.
    #[arg(long, requires = "std")]
    mean: Option<String>,
    #[arg(long, requires = "mean")]
    std: Option<String>,
    #[arg(long)]
    num_heads: Option<usize>,
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    precision: PrecisionArg,
}

/// The flags of `vpt bench` (and of `cargo bench -- ...`).
#[derive(clap::Args, Clone, Debug)]
struct BenchArgs {
    /// Sizes: `small` (ViT-B widths, batch 1, 60 tokens: minutes on lavapipe) or `vit-b` (ViT-B/16
    /// with 50 VPT prompts: 247 tokens, batch 32 unless --batch says otherwise).
    #[arg(long, value_enum, default_value_t = PresetArg::Small)]
    preset: PresetArg,
    /// Images per step, replacing the preset's.
    #[arg(long)]
    batch: Option<usize>,
    /// Timed repetitions per case (each after one untimed run).
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// GPU API to use; default: WGPU_BACKEND if set, else the best adapter of any.
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Only the cases whose "kernel variant" contains one of these words, comma-separated
    /// (e.g. `fc1`, `reg16x8`, `softmax,gelu`).
    #[arg(long, value_delimiter = ',')]
    filter: Vec<String>,
    /// `gpu`: timestamps written by the GPU around each kernel; `wall`: the host clock around each
    /// kernel submitted alone; `auto`: `gpu` where the adapter supports it.
    #[arg(long, value_enum, default_value_t = TimingArg::Auto)]
    timing: TimingArg,
    /// Print one JSON object at the end instead of the table (progress goes to stderr).
    #[arg(long)]
    json: bool,
    /// How the timed training step's blocks run.
    #[command(flatten)]
    plan: PlanArgs,
    /// The adapter's FP32 peak in GFLOP/s (from its maker's data sheet): adds a "% peak" column.
    #[arg(long, value_parser = positive_f64)]
    peak_gflops: Option<f64>,
    /// How the weights are stored in the linear layers' matmuls and the timed training step:
    /// `f32`, or `f16` (read widened to f32).
    #[command(flatten)]
    precision: PrecisionArg,
}

/// The flags of `vpt tune`.
#[derive(clap::Args, Clone, Debug)]
struct TuneArgs {
    /// The step to tune for: `small` (ViT-B widths at 112 pixels, batch 1) or `vit-b` (ViT-B/16
    /// with 50 prompts, batch 32 unless --batch says otherwise). Tune at the batch you train with.
    #[arg(long, value_enum, default_value_t = PresetArg::VitB)]
    preset: PresetArg,
    /// Images per step, replacing the preset's.
    #[arg(long)]
    batch: Option<usize>,
    /// Timed repetitions per candidate (each after one untimed run).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// GPU API to tune; default: WGPU_BACKEND if set, else the best adapter of any.
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Only the cases whose "kernel variant" contains one of these words, comma-separated.
    #[arg(long, value_delimiter = ',')]
    filter: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PresetArg {
    Small,
    VitB,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BackendArg {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum TimingArg {
    Auto,
    Gpu,
    Wall,
}

/// The device a `--backend` flag asks for, with this adapter's tune cache in use if `vpt tune`
/// wrote one.
fn open_gpu(backend: Option<BackendArg>) -> Result<Gpu> {
    let gpu = open_device(backend)?;
    gpu.load_tune_cache()?;
    Ok(gpu)
}

/// The device a `--backend` flag asks for, picking kernels by the fixed rule (`vpt check`, which
/// runs every variant itself).
fn open_device(backend: Option<BackendArg>) -> Result<Gpu> {
    match backend {
        None => Gpu::new(),
        Some(b) => Gpu::with_backends(match b {
            BackendArg::Vulkan => wgpu::Backends::VULKAN,
            BackendArg::Metal => wgpu::Backends::METAL,
            BackendArg::Dx12 => wgpu::Backends::DX12,
            BackendArg::Gl => wgpu::Backends::GL,
        }),
    }
}

fn positive_f64(value: &str) -> std::result::Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{value:?} is not a positive number")),
    }
}

impl BenchArgs {
    /// The device the flags ask for.
    fn gpu(&self) -> Result<Gpu> {
        open_gpu(self.backend)
    }

    fn options(&self) -> BenchOptions {
        let preset = match self.preset {
            PresetArg::Small => Preset::Small,
            PresetArg::VitB => Preset::VitB,
        };
        BenchOptions {
            reps: self.reps,
            filter: self.filter.clone(),
            timing: match self.timing {
                TimingArg::Auto => None,
                TimingArg::Gpu => Some(TimingMethod::GpuTimestamps),
                TimingArg::Wall => Some(TimingMethod::WallClock),
            },
            train_step: true,
            plan: self.plan.plan(),
            peak_gflops: self.peak_gflops,
            precision: self.precision.precision,
            ..BenchOptions::new(preset.shape(self.batch))
        }
    }
}

/// `vpt bench`: the device and options the flags ask for, then the table (or JSON).
fn bench(args: &BenchArgs) -> Result<()> {
    vpt_wgsl::bench::run_and_print(&args.gpu()?, &args.options(), args.json)
}

/// A path or name that must not be empty: clap refuses "" naming the flag.
fn non_empty(value: &str) -> std::result::Result<String, String> {
    match value.trim() {
        "" => Err("is empty; give a path".to_string()),
        _ => Ok(value.to_string()),
    }
}

fn non_empty_path(value: &str) -> std::result::Result<PathBuf, String> {
    non_empty(value).map(PathBuf::from)
}

/// How the ViT's blocks run, for `train`, `grad` and `bench`. Results are the same either way:
/// to f32 rounding between the attention paths, bit for bit between recompute settings.
#[derive(clap::Args, Clone, Debug)]
struct PlanArgs {
    /// Attention: `fused` (FlashAttention-style kernels; keeps a log-sum-exp per row instead of
    /// the [B, H, T, T] probabilities), `unfused` (q·kᵀ, softmax, ·v: the readable reference), or
    /// `auto`: fused wherever its kernels take the head width (up to 128, every timm ViT).
    #[arg(long, default_value = "auto", value_parser = clap::value_parser!(AttentionChoice))]
    attention: AttentionChoice,
    /// What the backward recomputes instead of keeping: `none`; `mlp` (fc1 again, from its input);
    /// `block` (every block again, from its input: the least memory, one more forward in time).
    #[arg(long, default_value = "none", value_parser = clap::value_parser!(Recompute))]
    recompute: Recompute,
}

impl PlanArgs {
    fn plan(&self) -> BlockPlan {
        BlockPlan { attention: self.attention, recompute: self.recompute, max_images: None }
    }
}

/// `--precision`, on every command that loads a backbone.
#[derive(clap::Args, Clone, Copy, Debug)]
struct PrecisionArg {
    /// How the frozen weights, and the largest activations kept for the backward, are stored on
    /// the GPU: `f32`, or `f16` (half their memory; read widened to f32, so every sum stays
    /// f32; needs an adapter with SHADER_F16, see `vpt info`).
    #[arg(long, default_value = "f32", value_parser = clap::value_parser!(Precision))]
    precision: Precision,
}

/// The file `grad` and `forward` write.
#[derive(clap::Args)]
struct Output {
    #[arg(long, value_parser = non_empty)]
    out: String,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// The files `grad` and `forward` read.
#[derive(clap::Args)]
struct ModelInputs {
    /// Backbone checkpoint with timm names (.safetensors).
    #[arg(long, value_parser = non_empty)]
    model: String,
    /// Task file: prompts, head, pooling.
    #[arg(long, value_parser = non_empty)]
    task: String,
    /// Batch file: images (and labels).
    #[arg(long, value_parser = non_empty)]
    batch: String,
    /// Attention heads, when the checkpoint's metadata has neither `num_heads` nor `preset`.
    #[arg(long)]
    num_heads: Option<usize>,
    #[command(flatten)]
    precision: PrecisionArg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Grad { inputs, output, plan, method } => method.method().and_then(|m| grad(&inputs, &output, plan.plan(), &m)),
        Command::Forward { inputs, output } => forward(&inputs, &output),
        Command::Train(args) => train(args),
        Command::Compare(args) => compare(&args),
        Command::Demo { dir, out_dir, epochs, seeds, variants, precision } => demo(dir, &out_dir, epochs, seeds, variants.as_deref(), precision.precision),
        Command::Eval { model, task, data, batch, num_heads, precision } => eval(&model, &task, &data, batch, num_heads, precision.precision),
        Command::Predict { model, tasks, top_k, batch, num_heads, precision, images } => predict(&model, &tasks, top_k, batch, num_heads, precision.precision, &images),
        Command::Bench(args) => bench(&args),
        Command::Tune(args) => tune(&args),
        Command::Check { backend, wgsl_dir } => check(backend, wgsl_dir.as_deref()),
        Command::Record { workload, out, force, backend } => record(&workload, out, force, backend),
        Command::Lab { port, traces, backend } => lab(port, traces.as_deref(), backend),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ vpt_wgsl::Error::Interrupted { .. }) => {
            eprintln!("{e}");
            ExitCode::from(130) // the shell's code for a run ended by SIGINT
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<()> {
    let backends = backends_from_env()?;
    let adapters = list_adapters(backends);
    if adapters.is_empty() {
        return Err(vpt_wgsl::Error::NoAdapter { backends: format!("{backends:?}") });
    }
    for (i, adapter) in adapters.iter().enumerate() {
        print_adapter(i, adapter);
    }
    let chosen = Gpu::new()?;
    println!("default choice: {} (override with WGPU_BACKEND / WGPU_ADAPTER_NAME)", chosen.describe());
    match (chosen.tune_cache_path(), chosen.load_tune_cache()?) {
        (_, Some(path)) => {
            let c = chosen.choices().expect("just loaded");
            println!("tune cache: {} ({} choices, measured on {})", path.display(), c.choices.len(), c.measured_on);
        }
        (Some(path), None) => println!("tune cache: none (`vpt tune` would write {}); the fixed rule picks kernels", path.display()),
        (None, None) => println!("tune cache: none (no cache folder; set VPT_CACHE_DIR); the fixed rule picks kernels"),
    }
    Ok(())
}

/// Load backbone, task and batch; the batch's image size decides the size the model runs at.
/// A task written by `vpt train` records its backbone and image size: both are checked here too.
fn load_inputs(gpu: &Gpu, inputs: &ModelInputs) -> Result<(Vit, VptTask, Tensor, Vec<u32>)> {
    let (images, labels) = vpt::read_batch(gpu, &inputs.batch)?;
    let img_size = (images.shape()[2], images.shape()[3]);
    let task_file = TensorFile::read(&inputs.task)?;
    let task = VptTask::from_file(gpu, &task_file)?;
    let sd = StateDict::read(&inputs.model)?;
    if let Some(trained_on) = task_file.metadata.get("backbone") {
        check_trained_on(trained_on, &backbone_fingerprint(&sd), &inputs.task, &inputs.model)?;
    }
    if let Some(trained_at) = task_file.metadata.get("img_size").and_then(|s| parse_size(s)) {
        if trained_at != img_size {
            return Err(vpt_wgsl::Error::invalid(
                "--batch",
                format!("{}: its images are {}×{} but the task {} was trained on {}×{} images", inputs.batch, img_size.0, img_size.1, inputs.task, trained_at.0, trained_at.1),
            ));
        }
    }
    let vit = Vit::from_state_dict(
        gpu,
        &sd,
        &LoadOptions { num_heads: inputs.num_heads, precision: inputs.precision.precision, img_size: Some(img_size), size_from: Some(format!("the images of --batch {}", inputs.batch)) },
    )?;
    task.check_against(&vit)?;
    Ok((vit, task, images, labels))
}

impl ModelInputs {
    /// The files read, by flag: none may be an output.
    fn files(&self) -> [(&'static str, &str); 3] {
        [("--model", &self.model), ("--task", &self.task), ("--batch", &self.batch)]
    }
}

fn grad(inputs: &ModelInputs, output: &Output, plan: BlockPlan, method: &Method) -> Result<()> {
    let out = &output.out;
    check_new_output("--out", out, &inputs.files(), output.force)?;
    let gpu = open_gpu(None)?;
    let (mut vit, task, images, labels) = load_inputs(&gpu, inputs)?;
    vit.plan = plan;
    let step = vpt::vpt_grad_for(&gpu, &vit, &task, &images, &labels, method)?;
    vpt::write_step(out, &step)?;
    println!("loss {:.6} → {out}", step.loss.to_scalar()?);
    Ok(())
}

fn forward(inputs: &ModelInputs, output: &Output) -> Result<()> {
    let out = &output.out;
    check_new_output("--out", out, &inputs.files(), output.force)?;
    let gpu = open_gpu(None)?;
    let (vit, task, images, _) = load_inputs(&gpu, inputs)?;
    let logits = vpt::vpt_forward(&gpu, &vit, &task, &images)?;
    let data = logits.to_vec()?;
    vpt_wgsl::io::write_f32_tensors(out, &[("logits", logits.shape(), &data)], Default::default())?;
    println!("logits {:?} → {out}", logits.shape());
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    let cfg = a.recipe.config(a.out, a.method.method()?, a.resume, a.force)?;
    let gpu = open_gpu(None)?;
    let mut bar = ProgressBar::new().stopping_on_ctrl_c();
    let last = fit::fit(&gpu, &cfg, &mut bar)?;
    bar.finish();
    println!("task written to {} (metrics: {}); validation accuracy {:.2}%", cfg.out, vpt_wgsl::train::outputs::metrics_path(&cfg.out), 100.0 * last.val_accuracy);
    Ok(())
}

/// `vpt compare`: each method trained with the same recipe, then the report.
fn compare(a: &CompareArgs) -> Result<()> {
    let methods = a.methods.split(',').map(|m| a.options.parse(m.trim())).collect::<Result<Vec<Method>>>()?;
    let recipe = a.recipe.config(String::new(), Method::prompt(), false, a.force)?;
    let gpu = open_gpu(None)?;
    let mut bar = ProgressBar::new().stopping_on_ctrl_c();
    let rows = vpt_wgsl::train::compare::compare(&gpu, &recipe, &methods, &a.out_dir, &mut bar)?;
    bar.finish();
    vpt_wgsl::train::compare::write_report(&rows, &a.out_dir)?;
    print!("{}", vpt_wgsl::train::compare::table(&rows));
    println!("report: {0}/compare.json, {0}/compare.svg", a.out_dir.display());
    Ok(())
}

impl RecipeArgs {
    /// The training configuration these flags give, writing `out`.
    fn config(&self, out: String, method: Method, resume: bool, force: bool) -> Result<TrainConfig> {
        let norm = match (&self.mean, &self.std) {
            (Some(m), Some(s)) => Some(Normalization::parse(m, s)?),
            _ => None,
        };
        let optimizer = match self.optimizer {
            OptimizerArg::Sgd => Optimizer::sgd(self.wd),
            OptimizerArg::Adamw => Optimizer::adamw(self.wd),
        };
        Ok(TrainConfig {
            model: self.model.clone(),
            data: self.data.clone(),
            val: self.val.clone(),
            out,
            num_prompts: self.prompts,
            depth: self.depth,
            pool: match self.pool {
                PoolArg::Cls => Pool::Cls,
                PoolArg::Image => Pool::Image,
                PoolArg::Prompt => Pool::Prompt,
            },
            epochs: self.epochs,
            batch: self.batch,
            base_lr: self.lr,
            warmup_epochs: self.warmup,
            optimizer,
            seed: self.seed,
            img_size: self.img_size,
            flip: !self.no_flip,
            prompt_dropout: self.prompt_dropout,
            norm,
            num_heads: self.num_heads,
            resume,
            force,
            plan: self.plan.plan(),
            precision: self.precision.precision,
            method,
        })
    }
}

fn demo(dir: Option<PathBuf>, out_dir: &std::path::Path, epochs: Option<usize>, seeds: bool, variants: Option<&[String]>, precision: Precision) -> Result<()> {
    let gpu = open_gpu(None)?;
    let dir = dir.unwrap_or_else(vpt_wgsl::demo::default_dir);
    let start = std::time::Instant::now();
    let mut bar = ProgressBar::new();
    let rows = vpt_wgsl::demo::run_demo(&gpu, &dir, out_dir, epochs, precision, seeds, variants, &mut bar)?;
    bar.finish();
    print!("{}", vpt_wgsl::demo::format_table(&rows));
    println!("\nbackbone pretrained on digits 0–4, tuned on digits 5–9 (test: {}), on {} in {:.0} s", dir.join("digits-5to9/test").display(), gpu.describe(), start.elapsed().as_secs_f64());
    Ok(())
}

/// A backbone plus tasks checked to belong to it.
fn load_tasks(gpu: &Gpu, model: &str, tasks: &[String], num_heads: Option<usize>, precision: Precision) -> Result<(Vit, Vec<TaskFile>)> {
    let first = TaskFile::read(gpu, &tasks[0])?;
    let opts = LoadOptions { num_heads, precision, img_size: Some(first.img_size), size_from: Some(format!("the task {}", tasks[0])) };
    let (vit, fingerprint, _) = fit::load_backbone(gpu, model, &opts)?;
    let mut files = vec![first];
    for path in &tasks[1..] {
        files.push(TaskFile::read(gpu, path)?);
    }
    for (file, path) in files.iter().zip(tasks) {
        file.check_backbone(&fingerprint, path, model)?;
    }
    Ok((vit, files))
}

fn eval(model: &str, task: &str, data: &std::path::Path, batch: usize, num_heads: Option<usize>, precision: Precision) -> Result<()> {
    let gpu = open_gpu(None)?;
    let (vit, files) = load_tasks(&gpu, model, &[task.to_string()], num_heads, precision)?;
    let t = &files[0];
    let folder = ImageFolder::scan_with_classes(data, &t.classes)?;
    if !folder.skipped.is_empty() {
        eprintln!("{}", vpt_wgsl::train::data::skipped_warning(&folder.skipped));
    }
    let size = t.img_size.0;
    let result = vpt_wgsl::train::evaluate::evaluate(&gpu, &vit, &t.task, &folder.samples, Transform::Eval { size, resize: default_resize(size) }, t.norm, batch)?;
    println!("top-1 accuracy: {:.2}% on {} images", 100.0 * result.top1, folder.samples.len());
    for (name, (correct, total)) in t.classes.iter().zip(&result.per_class) {
        println!("  {name:<24} {:6.2}%  ({correct}/{total})", 100.0 * *correct as f64 / (*total).max(1) as f64);
    }
    Ok(())
}

fn predict(model: &str, tasks: &[String], top_k: usize, batch: usize, num_heads: Option<usize>, precision: Precision, images: &[PathBuf]) -> Result<()> {
    let gpu = open_gpu(None)?;
    let (vit, files) = load_tasks(&gpu, model, tasks, num_heads, precision)?;
    let results = vpt_wgsl::train::predict::predict(&gpu, &vit, &files, images, top_k, batch)?;
    for (image, per_task) in images.iter().zip(results) {
        println!("{}", image.display());
        for (task, guesses) in tasks.iter().zip(per_task) {
            let shown: Vec<String> = guesses.iter().map(|g| format!("{} {:.1}%", g.class, 100.0 * g.probability)).collect();
            println!("  {task}: {}", shown.join(", "));
        }
    }
    Ok(())
}

fn tune(args: &TuneArgs) -> Result<()> {
    let gpu = open_gpu(args.backend)?;
    let preset = match args.preset {
        PresetArg::Small => Preset::Small,
        PresetArg::VitB => Preset::VitB,
    };
    let options = BenchOptions { reps: args.reps, filter: args.filter.clone(), ..BenchOptions::new(preset.shape(args.batch)) };
    eprintln!("tuning on {}: every candidate of each kernel choice, {} timed runs each", gpu.describe(), args.reps);
    let (choices, measured) = vpt_wgsl::bench::tune::tune(&gpu, &options, |r| eprint!("\r{:<60}", format!("{} {}", r.kernel, r.variant)))?;
    eprintln!();
    println!("{:<32} {:<12} {:>12}   (the others)", "choice", "fastest", "median");
    for m in &measured {
        println!("{}", m.line());
    }
    let path = vpt_wgsl::bench::tune::write_cache(&gpu, &choices)?;
    println!("wrote {} ({} choices); every command on this adapter now uses them", path.display(), choices.choices.len());
    Ok(())
}

fn check(backend: Option<BackendArg>, wgsl_dir: Option<&std::path::Path>) -> Result<()> {
    let gpu = open_device(backend)?;
    if let Some(dir) = wgsl_dir {
        gpu.use_wgsl_dir(dir)?;
    }
    println!("checking every kernel on {}", gpu.describe());
    println!("{:<5} {:<28} {:<30} {:<8} {:>9}  tolerance  device", "", "kernel", "case", "against", "error");
    let rows = vpt_wgsl::check::run_all(&gpu, |row| println!("{}", row.line()))?;
    let failed = rows.iter().filter(|r| !r.passed()).count();
    println!("{} of {} comparisons within tolerance", rows.len() - failed, rows.len());
    if failed > 0 {
        return Err(vpt_wgsl::Error::invalid("check", format!("{failed} of {} comparisons failed on {} (the FAIL lines above)", rows.len(), gpu.describe())));
    }
    Ok(())
}

/// `vpt record`: run the workload with the trace recording, then write the trace file.
fn record(workload: &str, out: Option<PathBuf>, force: bool, backend: Option<BackendArg>) -> Result<()> {
    let workload: Workload = workload.parse()?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.trace", workload.name())));
    let out_str = out.display().to_string();
    check_new_output("--out", &out_str, &[], force)?;
    let gpu = open_gpu(backend)?;
    eprintln!("recording {} on {}", workload.name(), gpu.describe());
    let recording = vpt_wgsl::lab::record(&gpu, workload)?;
    vpt_wgsl::io::write_atomically(&out, &recording.bytes)?;
    println!("wrote {out_str}: {}", recording.summary);
    Ok(())
}

/// `vpt lab`: the traces (recorded now, or read from --traces), then the server, until stopped.
fn lab(port: u16, traces: Option<&std::path::Path>, backend: Option<BackendArg>) -> Result<()> {
    let listener = vpt_wgsl::lab::server::bind(port)?;
    let traces = match traces {
        Some(dir) => vpt_wgsl::lab::read_trace_folder(dir)?,
        None => {
            let gpu = open_gpu(backend)?;
            let mut traces = Vec::new();
            for workload in Workload::ALL {
                eprintln!("recording {} on {}", workload.name(), gpu.describe());
                let recording = vpt_wgsl::lab::record(&gpu, workload)?;
                eprintln!("  {}", recording.summary);
                traces.push((recording.name, recording.bytes));
            }
            traces
        }
    };
    let address = listener.local_addr().map_err(|e| vpt_wgsl::Error::invalid("--port", e.to_string()))?;
    let names: Vec<&str> = traces.iter().map(|(n, _)| n.as_str()).collect();
    println!("vpt lab: serving {} at http://{address}/ — open it in a browser with WebGPU; add ?run=NAME to replay one at once (Ctrl-C stops)", names.join(", "));
    use std::io::Write;
    std::io::stdout().flush().ok();
    vpt_wgsl::lab::server::serve(listener, std::sync::Arc::new(traces))
}

fn print_adapter(index: usize, a: &AdapterReport) {
    let yes_no = |f: wgpu::Features| if a.features.contains(f) { "yes" } else { "no" };
    let l = &a.limits;
    println!("adapter {index}: {}", a.info.name);
    println!("  backend:        {:?}", a.info.backend);
    println!("  device type:    {:?}", a.info.device_type);
    println!("  driver:         {}", format!("{} {}", a.info.driver, a.info.driver_info).trim());
    println!("  vendor/device:  {:#06x}/{:#06x}", a.info.vendor, a.info.device);
    println!(
        "  features:       timestamp queries {}, timestamps inside passes {}, shader f16 {}, subgroups {}",
        yes_no(wgpu::Features::TIMESTAMP_QUERY),
        yes_no(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
        yes_no(wgpu::Features::SHADER_F16),
        yes_no(wgpu::Features::SUBGROUP)
    );
    println!("  max buffer size:                  {}", human_bytes(l.max_buffer_size));
    println!("  max storage buffer binding size:  {}", human_bytes(l.max_storage_buffer_binding_size));
    println!("  max storage buffers per stage:    {}", l.max_storage_buffers_per_shader_stage);
    println!("  max workgroup storage:            {}", human_bytes(l.max_compute_workgroup_storage_size as u64));
    println!("  max invocations per workgroup:    {}", l.max_compute_invocations_per_workgroup);
    println!("  max workgroup size (x, y, z):     ({}, {}, {})", l.max_compute_workgroup_size_x, l.max_compute_workgroup_size_y, l.max_compute_workgroup_size_z);
    println!("  max workgroups per dimension:     {}", l.max_compute_workgroups_per_dimension);
}

fn human_bytes(b: u64) -> String {
    const MIB: u64 = 1 << 20;
    if b >= MIB {
        format!("{b} bytes ({:.1} MiB)", b as f64 / MIB as f64)
    } else {
        format!("{b} bytes ({:.1} KiB)", b as f64 / 1024.0)
    }
}
