//! A whole training run, as `vpt train` does it: data, task initialisation, epochs of SGD or
//! AdamW with warm-up + cosine, validation after every epoch, and the task file written
//! atomically after every epoch so that `--resume` continues an interrupted run to the same
//! result (data order, crops and flips all derive from the seed and the epoch).

use std::path::PathBuf;
use std::time::Instant;

use super::config::TrainConfig;
use super::data::{data_fingerprint, default_resize, split_train_val, EpochLoader, ImageFolder, Normalization, Sample, Transform};
use super::evaluate::{count_correct, evaluate};
use super::observer::{EpochSummary, Observer, StepInfo};
use super::outputs::{RunFiles, Start};
use super::resume::{restore, run_settings, save};
use super::task::{backbone_fingerprint, new_task, TaskFile};
use super::{Trainer, WarmupCosine};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Dropout;
use crate::model::plan::{AttentionChoice, Recompute};
use crate::model::vit::{LoadOptions, StateDict, Vit};
use crate::model::vpt::VptTask;
use crate::tensor::Tensor;

/// The data of a run: classes, training and validation samples.
struct Data {
    classes: Vec<String>,
    train: Vec<Sample>,
    val: Vec<Sample>,
    /// Files passed over, each with the reason.
    skipped: Vec<(PathBuf, String)>,
}

fn load_data(cfg: &TrainConfig) -> Result<Data> {
    let folder = ImageFolder::scan(&cfg.data)?;
    if folder.classes.len() < 2 {
        return Err(Error::invalid(
            "data",
            format!("{} has {} class folder ({:?}); a classifier needs at least two, one sub-folder of images per class", cfg.data.display(), folder.classes.len(), folder.classes),
        ));
    }
    let mut skipped = folder.skipped.clone();
    let (train, val) = match &cfg.val {
        Some(dir) => {
            let val = ImageFolder::scan_with_classes(dir, &folder.classes)?;
            skipped.extend(val.skipped);
            (folder.samples.clone(), val.samples)
        }
        None => split_train_val(&folder.samples, 0.1, cfg.seed),
    };
    if train.is_empty() {
        return Err(Error::Format { path: cfg.data.display().to_string(), msg: "no training images left".into() });
    }
    Ok(Data { classes: folder.classes, train, val, skipped })
}

/// Backbone, its fingerprint, and the normalisation and crop size to use.
pub fn load_backbone(gpu: &Gpu, model: &str, opts: &LoadOptions) -> Result<(Vit, String, Option<Normalization>)> {
    let sd = StateDict::read(model)?;
    let fingerprint = backbone_fingerprint(&sd);
    let norm = match (sd.metadata.get("mean"), sd.metadata.get("std")) {
        (Some(m), Some(s)) => Some(Normalization::parse(m, s).map_err(|e| sd.err(format!("its metadata {e}")))?),
        _ => None,
    };
    let vit = Vit::from_state_dict(gpu, &sd, opts)?;
    Ok((vit, fingerprint, norm))
}

/// Train a task; returns the last epoch's summary. The task file and its resume state are on disk
/// after every epoch.
pub fn fit(gpu: &Gpu, cfg: &TrainConfig, observer: &mut dyn Observer) -> Result<EpochSummary> {
    check_config(cfg)?;
    // Before any work: the outputs are writable, none is an input, and no other run has them.
    let files = RunFiles::claim(&cfg.out, &[("model", &cfg.model)], cfg.resume, cfg.force)?;
    let opts = LoadOptions { num_heads: cfg.num_heads, precision: cfg.precision, img_size: cfg.img_size.map(|s| (s, s)), size_from: Some("`img_size`".into()) };
    let (mut vit, fingerprint, ckpt_norm) = load_backbone(gpu, &cfg.model, &opts)?;
    vit.plan = cfg.plan;
    let norm = cfg.norm.or(ckpt_norm).unwrap_or(Normalization::IMAGENET);
    let data = load_data(cfg)?;
    if !data.skipped.is_empty() {
        observer.start(&super::data::skipped_warning(&data.skipped));
    }
    let (size, _) = vit.cfg.img_size;
    let num_prompts = if cfg.method.trains_prompts() { cfg.num_prompts } else { 0 };
    let depth = if num_prompts == 0 { 0 } else { cfg.depth.layers(vit.cfg.depth)? };
    let mut task = new_task(gpu, &vit.cfg, depth, num_prompts, data.classes.len(), cfg.pool, cfg.seed)?;
    task.tuned = vit.fresh_tuned(&cfg.method, cfg.seed)?;
    let task_file = TaskFile { task, classes: data.classes.clone(), norm, img_size: vit.cfg.img_size, backbone: fingerprint.clone() };
    task_file.task.check_against(&vit)?;
    check_step_fits(gpu, &vit, cfg)?;

    let steps_per_epoch = data.train.len().div_ceil(cfg.batch);
    let lr = cfg.base_lr * cfg.batch as f64 / 256.0;
    let schedule = WarmupCosine { base_lr: lr, warmup_steps: cfg.warmup_epochs * steps_per_epoch, total_steps: cfg.epochs * steps_per_epoch };
    if let Some(warning) = warmup_warning(cfg, &schedule) {
        observer.start(&warning);
    }
    let mut trainer = Trainer::with_method(gpu, &task_file.task, cfg.method.clone(), cfg.optimizer, schedule)?;
    let all_samples: Vec<Sample> = data.train.iter().chain(&data.val).cloned().collect();
    let settings = run_settings(cfg, &fingerprint, &data_fingerprint(&all_samples));
    let first_epoch = match files.start {
        Start::Resume => {
            let done = restore(&files, &settings, &task_file, &mut trainer)?;
            observer.start(&format!("resuming after epoch {done} (step {})", trainer.step()));
            done
        }
        Start::Fresh if cfg.resume => {
            observer.start(&format!("nothing to resume at {}: starting a new run", files.resume));
            0
        }
        Start::Fresh => 0,
    };
    observer.start(&format!(
        "training {} on {} ({} classes, {} train / {} val images, {size}×{size}), {} steps per epoch, lr {lr:.4} on {}",
        cfg.method.describe(num_prompts, depth),
        cfg.data.display(),
        data.classes.len(),
        data.train.len(),
        data.val.len(),
        steps_per_epoch,
        gpu.describe()
    ));

    let train_tf = Transform::Train { size, resize: default_resize(size), flip: cfg.flip };
    let eval_tf = Transform::Eval { size, resize: default_resize(size) };
    let dropout = (cfg.prompt_dropout > 0.0).then_some(Dropout { p: cfg.prompt_dropout, seed: cfg.seed });
    let mut last = None;
    for epoch in first_epoch..cfg.epochs {
        let start = Instant::now();
        let lr_now = schedule.lr(trainer.step());
        let (loss, accuracy) = match train_epoch(gpu, &vit, &task_file.task, &mut trainer, &data.train, train_tf, norm, cfg, epoch, dropout, observer)? {
            EpochEnd::Finished { loss, accuracy } => (loss, accuracy),
            EpochEnd::Stopped => return Err(interrupted(cfg, epoch)),
            EpochEnd::Diverged { step, loss } => return Err(diverged(cfg, epoch, step, loss, lr)),
        };
        let val_accuracy = if data.val.is_empty() { f64::NAN } else { evaluate(gpu, &vit, &task_file.task, &data.val, eval_tf, norm, cfg.batch)?.top1 };
        let seconds = start.elapsed().as_secs_f64();
        let summary = EpochSummary {
            epoch: epoch + 1,
            epochs: cfg.epochs,
            lr: lr_now,
            train_loss: loss,
            train_accuracy: accuracy,
            val_accuracy,
            images_per_second: data.train.len() as f64 / seconds,
            seconds,
            gpu_bytes: gpu.held_bytes(),
        };
        save(&files, &task_file, &trainer, &settings, &summary)?;
        observer.epoch(&summary);
        last = Some(summary);
    }
    last.ok_or_else(|| Error::invalid("resume", format!("nothing to do: the run in {} already finished its {} epochs", cfg.out, cfg.epochs)))
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
pub(crate) fn check_config(cfg: &TrainConfig) -> Result<()> {
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

#[allow(clippy::too_many_arguments)]
fn train_epoch(
    gpu: &Gpu,
    vit: &Vit,
    task: &VptTask,
    trainer: &mut Trainer,
    samples: &[Sample],
    transform: Transform,
    norm: Normalization,
    cfg: &TrainConfig,
    epoch: usize,
    dropout: Option<Dropout>,
    observer: &mut dyn Observer,
) -> Result<EpochEnd> {
    let loader = EpochLoader::new(samples.to_vec(), transform, norm, cfg.batch, true, cfg.seed, epoch, 0);
    let batches = loader.num_batches();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    let start = Instant::now();
    for (i, batch) in loader.enumerate() {
        let batch = batch?;
        let images = Tensor::from_slice(gpu, &batch.shape(), &batch.images)?;
        let step_dropout = dropout.map(|d| Dropout { seed: d.seed ^ (trainer.step() as u64).wrapping_mul(0x9E37_79B9), ..d });
        let (loss, logits) = trainer.train_step_with_logits(gpu, vit, task, &images, &batch.labels, step_dropout)?;
        // What this step's pattern did not reuse since the last step goes back to the driver.
        gpu.trim_pool();
        if !loss.is_finite() {
            return Ok(EpochEnd::Diverged { step: i + 1, loss });
        }
        correct += count_correct(&logits, &batch.labels)?;
        seen += batch.len();
        loss_sum += loss as f64 * batch.len() as f64;
        observer.step(&StepInfo { epoch: epoch + 1, batch: i + 1, batches, loss, accuracy: correct as f64 / seen as f64, images_per_second: seen as f64 / start.elapsed().as_secs_f64() });
        if observer.should_stop() {
            return Ok(EpochEnd::Stopped);
        }
    }
    Ok(EpochEnd::Finished { loss: loss_sum / seen as f64, accuracy: correct as f64 / seen as f64 })
}

/// How an epoch of training ended.
enum EpochEnd {
    Finished {
        loss: f64,
        accuracy: f64,
    },
    /// The observer asked to stop after a step.
    Stopped,
    /// Step `step` (from 1) gave a loss that is not finite.
    Diverged {
        step: usize,
        loss: f32,
    },
}

/// What the user learns when the run stops early: what is on disk and how to go on.
fn interrupted(cfg: &TrainConfig, epoch: usize) -> Error {
    let kept = match epoch {
        0 => "no epoch had finished, so nothing was written".to_string(),
        n => format!("{} holds epoch {n}, the last one finished", cfg.out),
    };
    Error::Interrupted { msg: format!("stopped during epoch {}; {kept}; run the same command with `resume` to continue", epoch + 1) }
}

/// The error of a run whose loss stopped being a number.
fn diverged(cfg: &TrainConfig, epoch: usize, step: usize, loss: f32, lr: f64) -> Error {
    let kept = match epoch {
        0 => "no epoch had finished, so nothing was written".to_string(),
        n => format!("{} keeps epoch {n}, the last good one", cfg.out),
    };
    Error::invalid(
        "lr",
        format!("training diverged at epoch {}, step {step}: the loss is {loss}; {kept}; try a lower `lr` (this run's rate was {lr:.4} = `lr` {} × batch {} / 256)", epoch + 1, cfg.base_lr, cfg.batch),
    )
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
