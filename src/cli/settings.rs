//! The one place flags become library settings: a `TrainConfig` from the recipe, a `Method` from
//! `--method` and its sizes, a `BlockPlan`, `LoadOptions`, the device `--backend` asks for, and
//! the benchmark's options. The library names settings; the flags are known only here and in
//! `args/`.

use std::path::Path;

use super::args::commands::{BenchArgs, TuneArgs};
use super::args::shared::{BackendArg, DeviceArgs, MethodArgs, MethodSizes, ModelArgs, OptimizerArg, PlanArgs, PoolArg, PresetArg, RecipeArgs, SearchArgs, TimingArg};
use vpt_wgsl::bench::{BenchOptions, Preset};
use vpt_wgsl::gpu::TimingMethod;
use vpt_wgsl::model::methods::method::Method;
use vpt_wgsl::model::methods::options::MethodOptions;
use vpt_wgsl::model::plan::BlockPlan;
use vpt_wgsl::model::vit::LoadOptions;
use vpt_wgsl::model::vpt::Pool;
use vpt_wgsl::train::config::TrainConfig;
use vpt_wgsl::train::data::Normalization;
use vpt_wgsl::train::sweep::Grid;
use vpt_wgsl::train::Optimizer;
use vpt_wgsl::{Gpu, Result};

/// A path as the library takes it. Flags are read as UTF-8, so nothing is lost.
pub fn text(path: &Path) -> String {
    path.display().to_string()
}

impl MethodSizes {
    /// The method `name` (`--method`), made with these sizes.
    pub fn parse(&self, name: &str) -> Result<Method> {
        let options = MethodOptions::default().with("adapter_reduction", self.adapter_reduction as f64).with("lora_rank", self.lora_rank as f64);
        let options = match self.lora_alpha {
            Some(a) => options.with("lora_alpha", a as f64),
            None => options,
        };
        Method::parse(name, &options)
    }
}

impl MethodArgs {
    pub fn method(&self) -> Result<Method> {
        self.sizes.parse(&self.method)
    }
}

impl PlanArgs {
    pub fn plan(&self) -> BlockPlan {
        BlockPlan { attention: self.attention, recompute: self.recompute, max_images: None }
    }
}

impl ModelArgs {
    /// How to load the backbone, at `img_size` (what decided it: `size_from`), for the commands
    /// that run at most one backward (eval, predict, grad): without transposed copies, whose
    /// making costs more than one backward saves, but with texels where the adapter reads them
    /// faster (every forward reads them; a weight a method trains drops them, `Graph::param`).
    pub fn load_options(&self, img_size: Option<(usize, usize)>, size_from: Option<String>) -> LoadOptions {
        LoadOptions { num_heads: self.num_heads, precision: self.precision.precision, img_size, size_from, dx_copies: false, texel_copies: true }
    }
}

impl RecipeArgs {
    /// The training configuration these flags give with base learning rate `lr` and weight
    /// decay `wd`, writing `out`.
    pub fn config(&self, out: &Path, method: Method, lr: f64, wd: f32, resume: bool, force: bool) -> Result<TrainConfig> {
        let norm = match (&self.mean, &self.std) {
            (Some(m), Some(s)) => Some(Normalization::parse(m, s)?),
            _ => None,
        };
        let optimizer = match self.optimizer {
            OptimizerArg::Sgd => Optimizer::sgd(wd),
            OptimizerArg::Adamw => Optimizer::adamw(wd),
        };
        Ok(TrainConfig {
            model: text(&self.model.model),
            data: self.data.data.clone(),
            val: self.data.val.clone(),
            root: self.data.root.clone(),
            train_on_val: false,
            out: text(out),
            num_prompts: self.prompts,
            depth: self.depth,
            pool: match self.pool {
                PoolArg::Cls => Pool::Cls,
                PoolArg::Image => Pool::Image,
                PoolArg::Prompt => Pool::Prompt,
            },
            epochs: self.epochs,
            batch: self.batch,
            base_lr: lr,
            warmup_epochs: self.warmup,
            optimizer,
            seed: self.seed,
            img_size: self.img_size,
            flip: !self.no_flip,
            prompt_dropout: self.prompt_dropout,
            norm,
            num_heads: self.model.num_heads,
            resume,
            force,
            plan: self.plan.plan(),
            precision: self.model.precision.precision,
            method,
        })
    }
}

impl SearchArgs {
    /// The grid of `vpt sweep` (and `vpt compare --sweep`): the lists given, else the paper's.
    pub fn grid(&self) -> Grid {
        let paper = Grid::paper();
        Grid { lrs: self.lr.clone().unwrap_or(paper.lrs), wds: self.wd.clone().unwrap_or(paper.wds) }
    }
}

impl DeviceArgs {
    /// The device `--backend` asks for, with this adapter's tune cache in use if `vpt tune`
    /// wrote one.
    pub fn open(&self) -> Result<Gpu> {
        let gpu = self.open_untuned()?;
        use_tune_cache(&gpu)?;
        Ok(gpu)
    }

    /// The device `--backend` asks for, picking kernels by the fixed rule (`vpt check`, which
    /// runs every variant itself).
    pub fn open_untuned(&self) -> Result<Gpu> {
        match self.backend {
            None => Gpu::new(),
            Some(b) => Gpu::with_backends(match b {
                BackendArg::Vulkan => wgpu::Backends::VULKAN,
                BackendArg::Metal => wgpu::Backends::METAL,
                BackendArg::Dx12 => wgpu::Backends::DX12,
                BackendArg::Gl => wgpu::Backends::GL,
            }),
        }
    }
}

/// The default device (WGPU_BACKEND, else the best adapter), tuned: what the commands without
/// `--backend` run on.
pub fn default_gpu() -> Result<Gpu> {
    DeviceArgs { backend: None }.open()
}

fn preset(p: PresetArg) -> Preset {
    match p {
        PresetArg::Small => Preset::Small,
        PresetArg::VitB => Preset::VitB,
    }
}

impl BenchArgs {
    pub fn options(&self) -> BenchOptions {
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
            ..BenchOptions::new(preset(self.preset).shape(self.batch))
        }
    }
}

impl TuneArgs {
    pub fn options(&self) -> BenchOptions {
        BenchOptions { reps: self.reps, filter: self.filter.clone(), ..BenchOptions::new(preset(self.preset).shape(self.batch)) }
    }
}

/// Use `gpu`'s tune cache if `vpt tune` wrote one (returns its path then), with a warning for each
/// choice in it that no kernel can take: those shapes keep the fixed rule.
pub fn use_tune_cache(gpu: &Gpu) -> Result<Option<std::path::PathBuf>> {
    let path = gpu.load_tune_cache()?;
    if let (Some(path), Some(choices)) = (&path, gpu.choices()) {
        for unused in vpt_wgsl::kernels::unused_choices(&choices) {
            eprintln!("warning: the tune cache {}: {unused}; the fixed rule is used there (run `vpt tune` again)", path.display());
        }
    }
    Ok(path)
}
