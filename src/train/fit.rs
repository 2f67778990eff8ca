//! A whole training run, as `vpt train` does it: data, task initialisation, epochs of SGD or
//! AdamW with warm-up + cosine, validation after every epoch, and the task file written
//! atomically after every epoch so that `--resume` continues an interrupted run to the same
//! result (data order, crops and flips all derive from the seed and the epoch).

use std::path::PathBuf;
use std::time::Instant;

use super::config::TrainConfig;
use super::data::{data_fingerprint, default_resize, split_train_val, EpochLoader, ImageFolder, Normalization, Sample, Transform};
use super::evaluate::evaluate;
use super::observer::{EpochSummary, Observer, StepInfo};
use super::outputs::{RunFiles, Start};
use super::resume::{restore, run_settings, save};
use super::start::{backbone_from_state_dict, check_classes, check_config, load_options, start_run, RunStart};
use super::step::{has_diverged, train_batch, EpochTally};
use super::Trainer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Dropout;
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
    let folder = ImageFolder::open(&cfg.data, cfg.root.as_deref())?;
    check_classes(&cfg.data.display().to_string(), &folder.classes)?;
    let mut skipped = folder.skipped.clone();
    let (train, val) = match (&cfg.val, cfg.train_on_val) {
        (Some(dir), train_on_val) => {
            let val = ImageFolder::open_with_classes(dir, cfg.root.as_deref(), &folder.classes)?;
            skipped.extend(val.skipped);
            match train_on_val {
                true => (folder.samples.iter().chain(&val.samples).cloned().collect(), Vec::new()),
                false => (folder.samples.clone(), val.samples),
            }
        }
        (None, true) => (folder.samples.clone(), Vec::new()),
        (None, false) => split_train_val(&folder.samples, 0.1, cfg.seed),
    };
    if train.is_empty() {
        return Err(Error::Format { path: cfg.data.display().to_string(), msg: "no training images left".into() });
    }
    Ok(Data { classes: folder.classes, train, val, skipped })
}

/// Backbone, its fingerprint, and the normalisation its checkpoint names.
pub fn load_backbone(gpu: &Gpu, model: &str, opts: &LoadOptions) -> Result<(Vit, String, Option<Normalization>)> {
    backbone_from_state_dict(gpu, &StateDict::read(model)?, opts)
}

/// Train a task; returns the last epoch's summary. The task file and its resume state are on disk
/// after every epoch. A run that diverges is an error naming `lr`.
pub fn fit(gpu: &Gpu, cfg: &TrainConfig, observer: &mut dyn Observer) -> Result<EpochSummary> {
    match fit_run(gpu, cfg, observer)? {
        RunEnd::Finished(last) => Ok(last),
        RunEnd::Diverged { epoch, step, why } => Err(diverged(cfg, epoch, step, &why)),
    }
}

/// How a whole run ended, when nothing went wrong but the numbers.
#[derive(Clone, Debug)]
pub enum RunEnd {
    /// Every epoch ran: the last one's summary.
    Finished(EpochSummary),
    /// At step `step` (from 1) of epoch `epoch` (from 0) the run diverged (`why`: a loss that says
    /// so, [`has_diverged`], or weights that overflowed); it stopped there, its files keeping the
    /// last epoch that finished.
    Diverged { epoch: usize, step: usize, why: String },
}

/// [`fit`], with a diverged run as an outcome rather than an error (`vpt sweep` reports it as a
/// failed pair and goes on).
pub fn fit_run(gpu: &Gpu, cfg: &TrainConfig, observer: &mut dyn Observer) -> Result<RunEnd> {
    check_config(cfg)?;
    // Before any work: the outputs are writable, none is an input, and no other run has them.
    let files = RunFiles::claim(&cfg.out, &[("model", &cfg.model)], cfg.resume, cfg.force)?;
    let (mut vit, fingerprint, ckpt_norm) = load_backbone(gpu, &cfg.model, &load_options(cfg))?;
    vit.plan = cfg.plan;
    let data = load_data(cfg)?;
    if !data.skipped.is_empty() {
        observer.start(&super::data::skipped_warning(&data.skipped));
    }
    let (size, _) = vit.cfg.img_size;
    let RunStart { task_file, mut trainer, schedule, lr, num_prompts, depth, steps_per_epoch, warning } = start_run(gpu, &vit, cfg, &data.classes, &fingerprint, ckpt_norm, data.train.len())?;
    let norm = task_file.norm;
    if let Some(warning) = warning {
        observer.start(&warning);
    }
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
            EpochEnd::Diverged { step, loss } => return Ok(RunEnd::Diverged { epoch, step, why: format!("the loss is {loss}") }),
        };
        // The last update can overflow the weights after its loss was finite.
        if let Some(overflow) = gpu.blocking("a run's weights", task_file.non_finite_async())? {
            return Ok(RunEnd::Diverged { epoch, step: steps_per_epoch, why: format!("after its last update {overflow}") });
        }
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
    last.map(RunEnd::Finished).ok_or_else(|| Error::invalid("resume", format!("nothing to do: the run in {} already finished its {} epochs", cfg.out, cfg.epochs)))
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
    let mut tally = EpochTally::default();
    let start = Instant::now();
    for (i, batch) in loader.enumerate() {
        let batch = batch?;
        let images = Tensor::from_slice(gpu, &batch.shape(), &batch.images)?;
        let step = gpu.blocking("training step", train_batch(trainer, gpu, vit, task, &images, &batch.labels, dropout))?;
        // What this step's pattern did not reuse since the last step goes back to the driver.
        gpu.trim_pool();
        if has_diverged(step.loss, task.num_classes()) {
            return Ok(EpochEnd::Diverged { step: i + 1, loss: step.loss });
        }
        tally.add(step, batch.len());
        let seen = tally.seen();
        observer.step(&StepInfo { epoch: epoch + 1, batch: i + 1, batches, loss: step.loss, accuracy: tally.accuracy(), images_per_second: seen as f64 / start.elapsed().as_secs_f64() });
        if observer.should_stop() {
            return Ok(EpochEnd::Stopped);
        }
    }
    Ok(EpochEnd::Finished { loss: tally.loss(), accuracy: tally.accuracy() })
}

/// How an epoch of training ended.
enum EpochEnd {
    Finished {
        loss: f64,
        accuracy: f64,
    },
    /// The observer asked to stop after a step.
    Stopped,
    /// Step `step` (from 1) gave a loss that says the run diverged ([`has_diverged`]).
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
fn diverged(cfg: &TrainConfig, epoch: usize, step: usize, why: &str) -> Error {
    let lr = cfg.base_lr * cfg.batch as f64 / 256.0;
    let kept = match epoch {
        0 => "no epoch had finished, so nothing was written".to_string(),
        n => format!("{} keeps epoch {n}, the last good one", cfg.out),
    };
    Error::invalid(
        "lr",
        format!("training diverged at epoch {}, step {step}: {why}; {kept}; try a lower `lr` (this run's rate was {lr:.4} = `lr` {} × batch {} / 256)", epoch + 1, cfg.base_lr, cfg.batch),
    )
}
