//! Flag groups several commands share, each declared once: the backbone (`ModelArgs`), the
//! training data (`DataArgs`), the recipe (`RecipeArgs`), the device (`DeviceArgs`), how the
//! blocks run (`PlanArgs`), the weights' precision, the tuning method, a written file; and the
//! checks clap runs on single values.

use std::path::PathBuf;

use clap::ValueEnum;
use vpt_wgsl::model::plan::{AttentionChoice, Recompute};
use vpt_wgsl::model::vit::Precision;
use vpt_wgsl::train::config::Depth;

/// The backbone: what every command that loads one takes.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Backbone checkpoint: timm-named .safetensors (f32/f16/bf16), Google's JAX .npz, a Hugging
    /// Face hub folder (config.json + model.safetensors) or a PyTorch .pth (.pth.tar, .pt, .bin).
    /// `vpt convert` writes any of them as .safetensors.
    #[arg(long, value_parser = non_empty_path)]
    pub model: PathBuf,
    /// Attention heads, when the checkpoint's metadata has neither `num_heads` nor `preset`.
    #[arg(long)]
    pub num_heads: Option<usize>,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

/// `--precision`, on every command that loads a backbone.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct PrecisionArg {
    /// How the frozen weights, and the largest activations kept for the backward, are stored on
    /// the GPU: `f32`, or `f16` (half their memory; read widened to f32, so every sum stays
    /// f32; needs an adapter with SHADER_F16, see `vpt info`).
    #[arg(long, default_value = "f32", value_parser = clap::value_parser!(Precision))]
    pub precision: Precision,
}

/// The training images: what `vpt train` and `vpt compare` learn from.
#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// Training images: a folder with one sub-folder per class, or a split list (a text file of
    /// `relative/path label` lines, class names from a classes.txt beside it).
    #[arg(long, value_parser = non_empty_path)]
    pub data: PathBuf,
    /// Validation images (a folder with the same class folders, or a split list); default: a
    /// seeded 90/10 split of --data.
    #[arg(long, value_parser = non_empty_path)]
    pub val: Option<PathBuf>,
    /// The folder a split list's paths are relative to (default: the list's own folder).
    #[arg(long, value_parser = non_empty_path)]
    pub root: Option<PathBuf>,
}

/// The backbone, the data and how to train, the learning rate and weight decay aside: what
/// `vpt train`, `vpt compare` and `vpt sweep` share.
#[derive(clap::Args)]
pub struct RecipeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Prompt tokens per layer (0: linear probe).
    #[arg(long, default_value_t = 50)]
    pub prompts: usize,
    /// Prompted layers: shallow (the first), deep (all), or a number.
    #[arg(long, default_value = "deep", value_parser = clap::value_parser!(Depth))]
    pub depth: Depth,
    /// Output pooling: the CLS token, the mean of the image tokens, or the mean of the prompts.
    #[arg(long, value_enum, default_value_t = PoolArg::Cls)]
    pub pool: PoolArg,
    /// Passes over the training images.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Images per training step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Warm-up epochs: the rate rises linearly from 0 over them, then follows half a cosine. A
    /// warm-up as long as the run or longer is kept as given (the rate never leaves it), and the
    /// run warns and says the highest rate it will reach.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// sgd (momentum 0.9, the paper's) or adamw (β = 0.9, 0.999).
    #[arg(long, value_enum, default_value_t = OptimizerArg::Sgd)]
    pub optimizer: OptimizerArg,
    /// Seed of everything random: initialisation, split, order, crops, flips.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Crop size; default: the checkpoint's image size.
    #[arg(long)]
    pub img_size: Option<usize>,
    /// No horizontal flips at training (for images that are not mirror-symmetric, like digits).
    #[arg(long)]
    pub no_flip: bool,
    /// Prompt dropout (the paper uses 0.1 for VPT-deep).
    #[arg(long, default_value_t = 0.0)]
    pub prompt_dropout: f32,
    /// Normalisation mean "r,g,b"; default: the checkpoint's metadata, else ImageNet's.
    #[arg(long, requires = "std")]
    pub mean: Option<String>,
    /// Normalisation standard deviation "r,g,b", given with --mean.
    #[arg(long, requires = "mean")]
    pub std: Option<String>,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// One learning rate and weight decay (`vpt train`; `vpt sweep` searches lists of them).
#[derive(clap::Args)]
pub struct RateArgs {
    /// Base learning rate; the rate used is lr × batch / 256. The paper searches
    /// {50, 25, 10, 5, 2.5, 1, 0.5, 0.25, 0.1, 0.05} (`vpt sweep` does that search).
    #[arg(long, default_value_t = 0.5)]
    pub lr: f64,
    /// Weight decay (the paper searches {0.01, 1e-3, 1e-4, 0}).
    #[arg(long, default_value_t = 1e-4)]
    pub wd: f32,
}

/// What `vpt sweep` (and `vpt compare --sweep`) searches, and the test images it reports on.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// Base learning rates to try, comma-separated (the rate used is lr × batch / 256); default:
    /// the paper's 50,25,10,5,2.5,1,0.5,0.25,0.1,0.05. (`vpt compare` without --sweep takes one,
    /// default 0.5.)
    #[arg(long, value_delimiter = ',')]
    pub lr: Option<Vec<f64>>,
    /// Weight decays to try, comma-separated; default: the paper's 0.01,0.001,0.0001,0.
    /// (`vpt compare` without --sweep takes one, default 0.0001.)
    #[arg(long, value_delimiter = ',')]
    pub wd: Option<Vec<f32>>,
    /// Test images (class folders or a split list): the top-1 of the trained task on them is
    /// reported (sweep.json's test_top1; compare's test top-1 column).
    #[arg(long, value_parser = non_empty_path)]
    pub test: Option<PathBuf>,
}

/// How the ViT's blocks run, for `train`, `grad` and `bench`. Results are the same either way:
/// to f32 rounding between the attention paths, bit for bit between recompute settings.
#[derive(clap::Args, Clone, Debug)]
pub struct PlanArgs {
    /// Attention: `fused` (FlashAttention-style kernels; keeps a log-sum-exp per row instead of
    /// the [B, H, T, T] probabilities), `unfused` (q·kᵀ, softmax, ·v: the readable reference), or
    /// `auto`: fused wherever its kernels take the head width (up to 128, every timm ViT).
    #[arg(long, default_value = "auto", value_parser = clap::value_parser!(AttentionChoice))]
    pub attention: AttentionChoice,
    /// What the backward recomputes instead of keeping: `none`; `mlp` (fc1 again, from its input);
    /// `block` (every block again, from its input: the least memory, one more forward in time).
    #[arg(long, default_value = "none", value_parser = clap::value_parser!(Recompute))]
    pub recompute: Recompute,
}

/// `--method` and how it makes what it adds (train, grad).
#[derive(clap::Args, Clone, Debug)]
pub struct MethodArgs {
    /// What trains besides the head, as parts joined by +: prompt (VPT), linear (the head alone),
    /// bias (every backbone bias), partial-K (the last K blocks and the final norm), full (every
    /// backbone tensor), adapter (a Pfeiffer adapter per block), lora (LoRA on every qkv), ia3
    /// (IA³: keys, values and the MLP hidden rescaled), dora (DoRA on every qkv: a magnitude per
    /// row and a low-rank direction); e.g. prompt+bias.
    #[arg(long, default_value = "prompt")]
    pub method: String,
    #[command(flatten)]
    pub sizes: MethodSizes,
}

/// How the methods that add tensors make them (adapter, LoRA, DoRA).
#[derive(clap::Args, Clone, Debug)]
pub struct MethodSizes {
    /// adapter: width D/R of the adapters it makes (where the task has none).
    #[arg(long, default_value_t = 8)]
    pub adapter_reduction: usize,
    /// lora, dora: rank R of the pairs they make (where the task has none).
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    /// lora, dora: α of the scale α/R of B·A; default R. A task's own pairs keep its file's
    /// lora_alpha.
    #[arg(long)]
    pub lora_alpha: Option<f32>,
}

/// `--backend`: which GPU API a command runs on.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct DeviceArgs {
    /// GPU API to use; default: WGPU_BACKEND if set, else the best adapter of any.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
}

/// A file a command writes, and whether it may replace one.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// The file to write.
    #[arg(long, value_parser = non_empty_path)]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PoolArg {
    Cls,
    Image,
    Prompt,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum OptimizerArg {
    Sgd,
    Adamw,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PresetArg {
    Small,
    VitB,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum BackendArg {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum TimingArg {
    Auto,
    Gpu,
    Wall,
}

/// A path that must not be empty: clap refuses "" naming the flag. Read as UTF-8 (clap refuses
/// any other), so its text is the path.
pub fn non_empty_path(value: &str) -> std::result::Result<PathBuf, String> {
    match value.trim() {
        "" => Err("is empty; give a path".to_string()),
        _ => Ok(PathBuf::from(value)),
    }
}

/// A finite number above zero.
pub fn positive_f64(value: &str) -> std::result::Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{value:?} is not a positive number")),
    }
}
