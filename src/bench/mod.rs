//! The kernel benchmarks behind `vpt bench` and `cargo bench`: every kernel of a ViT training step
//! with Visual Prompt Tuning, at that step's real shapes, timed on the GPU (see [`Gpu::profile`]).
//!
//! Each case runs once untimed (pipeline compilation, first touch), then `reps` times. Every
//! repetition uploads fresh random inputs into new buffers, outside the timed region, and times
//! only the kernels. The last repetition's output is read back and checked to be finite, so a
//! kernel that did nothing, or garbage, cannot pass as fast.
//!
//! Matmuls are reported in GFLOP/s (2·M·N·K per product), the memory-bound kernels in GB/s (the
//! bytes they must read and write at least once: inputs + outputs), both at the median time.
//!
//! `cases.rs` holds the cases, `step.rs` the whole training step, `report.rs` the table and JSON.

mod attention_cases;
mod cases;
mod report;
mod step;
pub mod tune;

pub use cases::Tune;
pub use report::train_step_text;
pub use step::{train_step, StepSetup};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, TimingMethod};
use crate::kernels::matmul::MatmulKernel;
use crate::model::plan::BlockPlan;
use crate::model::vit::{preset, Precision, VitConfig};

/// The sizes of one ViT training step under VPT: the backbone's shape, the images per step, the
/// prompts per layer and the classes of the task's head.
#[derive(Clone, Debug, PartialEq)]
pub struct StepShape {
    pub vit: VitConfig,
    pub batch: usize,
    pub prompts: usize,
    pub classes: usize,
}

impl StepShape {
    /// ViT-B/16 under VPT-deep with 50 prompts: 1 + 196 + 50 = 247 tokens of width 768, 12 heads
    /// of 64, MLP 3072, and a 100-class head (CIFAR-100, the largest VTAB-1k head but one).
    pub fn vit_b(batch: usize) -> StepShape {
        StepShape { vit: vit_b16(), batch, prompts: 50, classes: 100 }
    }

    /// ViT-B/16 at batch 1 on 112-pixel images with 10 prompts: 1 + 49 + 10 = 60 tokens, the same
    /// kernels on a step small enough for a CPU adapter.
    pub fn small() -> StepShape {
        StepShape { vit: VitConfig { img_size: (112, 112), ..vit_b16() }, batch: 1, prompts: 10, classes: 100 }
    }

    /// A ViT shaped like the demo's backbone (width 64, 4 blocks of 4 heads, MLP 128, patch 4) on
    /// 32-pixel images, batch 8, 10 prompts per block, 10 classes: 1 + 64 + 10 = 75 tokens. Every
    /// kernel of a real step at a size a browser's software adapter replays in seconds (`vpt record step`).
    pub fn tiny() -> StepShape {
        let vit = VitConfig { embed_dim: 64, depth: 4, num_heads: 4, patch_size: 4, img_size: (32, 32), mlp_hidden: 128, ..vit_b16() };
        StepShape { vit, batch: 8, prompts: 10, classes: 10 }
    }

    /// Tokens per image: CLS + patches + prompts.
    pub fn tokens(&self) -> usize {
        1 + self.vit.num_patches() + self.prompts
    }

    fn check(&self) -> Result<()> {
        self.vit.validate()?;
        if self.batch == 0 || self.classes == 0 {
            return Err(Error::invalid("batch", format!("{} images per step (and {} classes): both must be at least 1", self.batch, self.classes)));
        }
        Ok(())
    }
}

fn vit_b16() -> VitConfig {
    preset("vit_base_patch16_224").expect("a timm preset")
}

/// The named sizes `vpt bench --preset` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// [`StepShape::small`]: a few minutes on lavapipe.
    Small,
    /// [`StepShape::vit_b`], batch 32 unless given.
    VitB,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::VitB => "vit-b",
        }
    }

    /// The preset's sizes, with its batch replaced by `batch` when given.
    pub fn shape(self, batch: Option<usize>) -> StepShape {
        let shape = match self {
            Preset::Small => StepShape::small(),
            Preset::VitB => StepShape::vit_b(32),
        };
        StepShape { batch: batch.unwrap_or(shape.batch), ..shape }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub shape: StepShape,
    /// Timed repetitions per case (after one untimed).
    pub reps: usize,
    /// The matmul kernels to compare, each on every matmul shape.
    pub matmul_kernels: Vec<MatmulKernel>,
    /// Run only cases whose "kernel variant" contains one of these (case-insensitive); all if empty.
    pub filter: Vec<String>,
    /// How to time; `None`: GPU timestamps where the adapter has them, else the host clock.
    pub timing: Option<TimingMethod>,
    /// Also time a whole VPT-deep training step of this shape (see [`train_step`]).
    pub train_step: bool,
    /// How that step's blocks run: attention path and recomputation.
    pub plan: BlockPlan,
    /// The adapter's FP32 peak in GFLOP/s, if known: adds each matmul's share of it.
    pub peak_gflops: Option<f64>,
    /// How the weights are stored: in the linear layers' matmuls (their B operand) and in the
    /// timed training step's backbone.
    pub precision: Precision,
    /// Time only the linear layers' forward products, with the kernel the engine takes, reading
    /// their weights from texels (`WeightSource`): `vpt tune`'s other candidate for them.
    pub weight_texels: bool,
}

impl BenchOptions {
    pub fn new(shape: StepShape) -> BenchOptions {
        BenchOptions {
            shape,
            reps: 10,
            matmul_kernels: MatmulKernel::ALL.to_vec(),
            filter: Vec::new(),
            timing: None,
            train_step: false,
            plan: BlockPlan::default(),
            peak_gflops: None,
            precision: Precision::F32,
            weight_texels: false,
        }
    }
}

/// One VPT-deep training step, end to end: images/s and where the time goes.
#[derive(Clone, Debug)]
pub struct TrainStepResult {
    pub images_per_second: f64,
    /// Median milliseconds of the forward (to the loss), the backward (to the prompt and head
    /// gradients) and the optimizer (SGD on prompts and head), each waited for.
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    /// Kernel launches in one step.
    pub dispatches: u64,
    /// Most tensor storage alive during the step, and how much of it is the frozen weights.
    pub peak_bytes: u64,
    /// What the forward keeps alive for the backward (activations, on top of weights and inputs).
    pub kept_bytes: u64,
    pub weight_bytes: u64,
    /// Of the weights, the transposed copies the backward's dX products read (`DxLayout`).
    pub copy_bytes: u64,
    /// Of the weights, the texels the matmuls read instead of their buffers (`WeightSource`).
    pub texel_bytes: u64,
    pub description: String,
}

/// One case's timings.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// What ran: "matmul fc1", "layernorm bwd", ...
    pub kernel: String,
    /// Which implementation: the matmul kernel, or the WGSL entry points the op launched.
    pub variant: String,
    /// The operands, e.g. "[247,768] @ [3072,768]^T".
    pub shape: String,
    /// Kernel time over the repetitions, in milliseconds.
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Matmuls: 2·M·N·K·batch / median time.
    pub gflops: Option<f64>,
    /// Memory-bound kernels: (bytes read + bytes written) / median time.
    pub gbps: Option<f64>,
    /// The kernel choice this case is a candidate of (`vpt tune`), and whether the engine takes
    /// it now.
    pub tune: Option<cases::Tune>,
    /// The frozen weight layout a linear layer's dX case reads (`DxLayout`), or where a linear
    /// layer's forward case reads its weight from (`WeightSource`): a choice of its own.
    pub layout: Option<cases::Tune>,
}

/// Everything one run measured, and where.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub timing: TimingMethod,
    pub shape: StepShape,
    pub reps: usize,
    pub results: Vec<BenchResult>,
    pub train_step: Option<TrainStepResult>,
    /// The adapter's FP32 peak, if given (`--peak-gflops`).
    pub peak_gflops: Option<f64>,
}

/// Run every case `options` selects on `gpu`, calling `progress` after each. Profiles the device,
/// so nothing else should use it meanwhile.
pub fn run(gpu: &Gpu, options: &BenchOptions, mut progress: impl FnMut(&BenchResult)) -> Result<BenchReport> {
    options.shape.check()?;
    if options.reps == 0 {
        return Err(Error::invalid("reps", "must be at least 1"));
    }
    let timing = timing_for(gpu, options.timing);
    let mut results = Vec::new();
    let without_subgroups = if gpu.has_subgroups() { Some(gpu.reopen_without(wgpu::Features::SUBGROUP)?) } else { None };
    let other_heads = if options.weight_texels { None } else { attention_cases::other_heads_device(gpu)? };
    let mut cases = cases::cases(gpu, without_subgroups.as_ref(), options);
    if !options.weight_texels {
        // A run of the weights' texels has those matmul cases alone (`BenchOptions::weight_texels`).
        cases.extend(attention_cases::cases(gpu, without_subgroups.as_ref(), other_heads.as_ref(), options));
    }
    for case in cases {
        if !case.selected(&options.filter) {
            continue;
        }
        let result = case.measure(gpu, timing, options.reps)?;
        progress(&result);
        results.push(result);
    }
    let wants_step = options.filter.is_empty() || options.filter.iter().any(|f| "train step".contains(&f.to_lowercase()));
    let train_step = match options.train_step && wants_step {
        true => Some(train_step(gpu, &options.shape, options.plan, options.precision, options.reps.min(3))?),
        false => None,
    };
    let info = gpu.info();
    Ok(BenchReport {
        adapter: info.name.clone(),
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        timing,
        shape: options.shape.clone(),
        reps: options.reps,
        results,
        train_step,
        peak_gflops: options.peak_gflops,
    })
}

/// `wanted`, or by default GPU timestamps where the adapter has them and the host clock elsewhere.
fn timing_for(gpu: &Gpu, wanted: Option<TimingMethod>) -> TimingMethod {
    wanted.unwrap_or(if gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) { TimingMethod::GpuTimestamps } else { TimingMethod::WallClock })
}

/// Run the benchmarks and print them: the table on stdout, a row as each case finishes, or with
/// `json` one JSON object on stdout at the end (and the rows on stderr meanwhile). What `vpt
/// bench` (and so `cargo bench`) does.
pub fn run_and_print(gpu: &Gpu, options: &BenchOptions, json: bool) -> Result<()> {
    let timing = timing_for(gpu, options.timing);
    let head = report::header(&format!("{} ({:?})", gpu.info().name, gpu.info().backend), timing, &options.shape, options.reps, options.peak_gflops);
    let show = |text: &str| if json { eprint!("{text}") } else { print!("{text}") };
    show(&head);
    let report = run(gpu, options, |r| show(&report::table_row(r, options.peak_gflops)))?;
    if let Some(t) = &report.train_step {
        show(&train_step_text(t));
    }
    if report.results.is_empty() && report.train_step.is_none() {
        return Err(Error::invalid("filter", format!("{:?} matches no case", options.filter.join(","))));
    }
    if json {
        print!("{}", report.to_json());
    }
    Ok(())
}
