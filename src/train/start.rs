//! A run's beginning, as `vpt train` (native) and the browser page both make it: the recipe
//! checked, the backbone taken from its state dict, the task initialised from the seed, the
//! optimizer and the schedule. One code path for both, so that the same flags on the same data
//! start the same run anywhere.

use super::config::TrainConfig;
use super::data::Normalization;
use super::task::{backbone_fingerprint, new_task, TaskFile};
use super::{Trainer, WarmupCosine};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::plan::{AttentionChoice, Recompute};
use crate::model::vit::{LoadOptions, StateDict, Vit};

/// How a run loads its backbone: heads, precision and crop size from the recipe, and the
/// transposed copies its backward's dX products read and the texels its matmuls read, where the
/// method keeps the weights frozen.
pub fn load_options(cfg: &TrainConfig) -> LoadOptions {
    let frozen = !cfg.method.trains_linear_weights();
    LoadOptions { num_heads: cfg.num_heads, precision: cfg.precision, img_size: cfg.img_size.map(|s| (s, s)), size_from: Some("`img_size`".into()), dx_copies: frozen, texel_copies: frozen }
}

/// The backbone of a state dict already read, its fingerprint, and the normalisation its
/// metadata names, if any.
pub fn backbone_from_state_dict(gpu: &Gpu, sd: &StateDict, opts: &LoadOptions) -> Result<(Vit, String, Option<Normalization>)> {
    let fingerprint = backbone_fingerprint(sd);
    let norm = match (sd.metadata.get("mean"), sd.metadata.get("std")) {
        (Some(m), Some(s)) => Some(Normalization::parse(m, s).map_err(|e| sd.err(format!("its metadata {e}")))?),
        _ => None,
    };
    let vit = Vit::from_state_dict(gpu, sd, opts)?;
    Ok((vit, fingerprint, norm))
}

/// Error unless the images at `data` (a folder, or a page's dropped folder) make at least two
/// classes: a classifier of one class learns nothing.
pub fn check_classes(data: &str, classes: &[String]) -> Result<()> {
    if classes.len() < 2 {
        return Err(Error::invalid("data", format!("{data} has {} class folder ({classes:?}); a classifier needs at least two, one sub-folder of images per class", classes.len())));
    }
    Ok(())
}

/// What a fresh run starts from.
pub struct RunStart {
    /// The task as initialised, with what the task file records beside it.
    pub task_file: TaskFile,
    pub trainer: Trainer,
    pub schedule: WarmupCosine,
    /// The rate the schedule peaks at: `lr` × batch / 256.
    pub lr: f64,
    /// Prompts per prompted layer (0 for a method without prompts) and prompted layers.
    pub num_prompts: usize,
    pub depth: usize,
    pub steps_per_epoch: usize,
    /// Said to the user before the first step (the warm-up that never ends).
    pub warning: Option<String>,
}

/// Start a run of `cfg` on `vit` (fingerprinted `fingerprint`, with the normalisation of its
/// checkpoint `ckpt_norm`) for `classes`, with `train_images` training images.
pub fn start_run(gpu: &Gpu, vit: &Vit, cfg: &TrainConfig, classes: &[String], fingerprint: &str, ckpt_norm: Option<Normalization>, train_images: usize) -> Result<RunStart> {
    gpu.blocking("a run's start", start_run_async(gpu, vit, cfg, classes, fingerprint, ckpt_norm, train_images))
}

/// [`start_run`] without blocking (in a browser: a method may read backbone values at its start).
pub async fn start_run_async(gpu: &Gpu, vit: &Vit, cfg: &TrainConfig, classes: &[String], fingerprint: &str, ckpt_norm: Option<Normalization>, train_images: usize) -> Result<RunStart> {
    check_config(cfg)?;
    let norm = cfg.norm.or(ckpt_norm).unwrap_or(Normalization::IMAGENET);
    let num_prompts = if cfg.method.trains_prompts() { cfg.num_prompts } else { 0 };
    let depth = if num_prompts == 0 { 0 } else { cfg.depth.layers(vit.cfg.depth)? };
    let mut task = new_task(gpu, &vit.cfg, depth, num_prompts, classes.len(), cfg.pool, cfg.seed)?;
    task.tuned = vit.fresh_tuned_async(&cfg.method, cfg.seed).await?;
    let task_file = TaskFile { task, classes: classes.to_vec(), norm, img_size: vit.cfg.img_size, backbone: fingerprint.to_string() };
    task_file.task.check_against(vit)?;
    check_step_fits(gpu, vit, cfg)?;

    let steps_per_epoch = train_images.div_ceil(cfg.batch);
    let lr = cfg.base_lr * cfg.batch as f64 / 256.0;
    let schedule = WarmupCosine { base_lr: lr, warmup_steps: cfg.warmup_epochs * steps_per_epoch, total_steps: cfg.epochs * steps_per_epoch };
    let warning = warmup_warning(cfg, &schedule);
    let trainer = Trainer::with_method(gpu, &task_file.task, cfg.method.clone(), cfg.optimizer, schedule)?;
    Ok(RunStart { task_file, trainer, schedule, lr, num_prompts, depth, steps_per_epoch, warning })
}

/// Error, naming the flags that decide it, unless one image's largest tensors of a training step
/// fit one storage binding: the MLP's hidden activation [T, hidden] (and qkv, smaller) and,
/// unless `--attention fused`, the scores [H, T, T], with T = 1 + patches + prompts tokens. A
/// larger batch runs through each block a few images at a time (`Vit::images_per_run`), and with
/// the fused attention where the whole batch's scores would not fit.
fn check_step_fits(gpu: &Gpu, vit: &Vit, cfg: &TrainConfig) -> Result<()> {
    let c = &vit.cfg;
    let tokens = 1 + c.num_patches() + cfg.num_prompts;
    let limit = gpu.max_binding_bytes();
    let (activations, scores) = vit.block_bytes_per_image(tokens);
    let mut largest = vec![("MLP activations [T, hidden] of one image", activations)];
    // Unless the fused attention is asked for, one image's scores must fit too: past that, T is
    // so long that only an explicit choice should start a run of T² work per head.
    if cfg.plan.attention != AttentionChoice::Fused {
        largest.push(("attention scores [H, T, T] of one image", scores));
    }
    for (what, bytes) in largest {
        if bytes > limit {
            let shown = if bytes == u64::MAX { "more than 2^64".to_string() } else { bytes.to_string() };
            return Err(Error::invalid(
                "`prompts`, `img_size`",
                format!(
                    "a training step would need {what} of {shown} bytes (T = 1 + {} patches of a {}×{} image + `prompts` {} = {tokens} tokens), more than the {limit} bytes this adapter binds; lower `prompts` or `img_size`{}",
                    c.num_patches(), c.img_size.0, c.img_size.1, cfg.num_prompts,
                    if what.starts_with("attention") { " (or pass `attention` fused, which never stores them)" } else { "" }
                ),
            ));
        }
    }
    Ok(())
}

/// The recipe's values, checked before any work (`vpt compare` checks them before its first
/// method too).
pub fn check_config(cfg: &TrainConfig) -> Result<()> {
    if cfg.batch == 0 {
        return Err(Error::invalid("batch", "0: must be at least 1"));
    }
    if cfg.epochs == 0 {
        return Err(Error::invalid("epochs", "0: must be at least 1"));
    }
    if !(cfg.base_lr > 0.0 && cfg.base_lr.is_finite()) {
        return Err(Error::invalid("lr", format!("{} must be a positive finite number", cfg.base_lr)));
    }
    if !(0.0..1.0).contains(&cfg.prompt_dropout) {
        return Err(Error::invalid("prompt_dropout", format!("{} must be in [0, 1)", cfg.prompt_dropout)));
    }
    let wd = cfg.optimizer.weight_decay();
    if !(wd >= 0.0 && wd.is_finite()) {
        return Err(Error::invalid("wd", format!("{wd} must be a finite number ≥ 0")));
    }
    if cfg.method.trains_backbone() && cfg.plan.recompute == Recompute::Block {
        return Err(Error::invalid("recompute", format!("block keeps only each block's input, but `method` {} trains tensors inside the blocks; use `recompute` mlp or none", cfg.method.name())));
    }
    Ok(())
}

/// A warning when the warm-up is as long as the run or longer: the rate then never leaves the
/// warm-up, and the run trains at a fraction of the rate it was given, which nothing else says.
fn warmup_warning(cfg: &TrainConfig, schedule: &WarmupCosine) -> Option<String> {
    if cfg.warmup_epochs == 0 || cfg.warmup_epochs < cfg.epochs {
        return None;
    }
    let highest = schedule.lr(schedule.total_steps.saturating_sub(1));
    Some(format!(
        "warning: `warmup` {} is not shorter than `epochs` {}: the learning rate never leaves the warm-up and reaches only {highest:.4} ({:.0}% of {:.4}); pass `warmup` {} or fewer for the full rate",
        cfg.warmup_epochs,
        cfg.epochs,
        100.0 * highest / schedule.base_lr,
        schedule.base_lr,
        cfg.epochs.saturating_sub(1)
    ))
}
