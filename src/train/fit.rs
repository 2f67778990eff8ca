//! A whole training run, as `vpt train` does it: data, task initialisation, epochs of SGD or
//! AdamW with warm-up + cosine, validation after every epoch, and the task file written
//! atomically after every epoch so that `--resume` continues an interrupted run to the same
//! result (data order, crops and flips all derive from the seed and the epoch).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::train::data::{default_resize, split_train_val, EpochLoader, ImageFolder, Normalization, Sample, Transform};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Dropout;
use crate::io::TensorFile;
use crate::train::task::{backbone_fingerprint, new_task, TaskFile};
use crate::tensor::Tensor;
use crate::train::{Optimizer, Trainer, WarmupCosine};
use crate::model::vit::{LoadOptions, StateDict, Vit};
use crate::model::vpt::{vpt_forward, Pool, VptTask};

/// How many layers get prompts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Depth {
    Shallow,
    Deep,
    Layers(usize),
}

impl std::str::FromStr for Depth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Depth> {
        match s {
            "shallow" => Ok(Depth::Shallow),
            "deep" => Ok(Depth::Deep),
            n => n.parse().map(Depth::Layers).map_err(|_| Error::invalid("--depth", format!("{n:?} is not shallow, deep or a number of layers"))),
        }
    }
}

impl Depth {
    fn layers(self, backbone_depth: usize) -> Result<usize> {
        match self {
            Depth::Shallow => Ok(1),
            Depth::Deep => Ok(backbone_depth),
            Depth::Layers(n) if n <= backbone_depth => Ok(n),
            Depth::Layers(n) => Err(Error::invalid("--depth", format!("{n} prompted layers but the backbone has {backbone_depth}"))),
        }
    }
}

/// Everything `vpt train` is told.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub model: String,
    pub data: PathBuf,
    /// Validation folder; without one, a seeded 90/10 split of `data`.
    pub val: Option<PathBuf>,
    pub out: String,
    pub num_prompts: usize,
    pub depth: Depth,
    pub pool: Pool,
    pub epochs: usize,
    pub batch: usize,
    /// The paper's base LR: the rate used is base_lr · batch / 256.
    pub base_lr: f64,
    pub warmup_epochs: usize,
    /// The update rule and its weight decay (the learning rate comes from the schedule).
    pub optimizer: Optimizer,
    pub seed: u64,
    /// Crop size; default: the checkpoint's own image size.
    pub img_size: Option<usize>,
    pub flip: bool,
    pub prompt_dropout: f32,
    /// Default: the checkpoint's `mean`/`std` metadata, else ImageNet's.
    pub norm: Option<Normalization>,
    pub num_heads: Option<usize>,
    pub resume: bool,
}

/// Progress of one step, for a progress bar.
pub struct StepInfo {
    pub epoch: usize,
    pub batch: usize,
    pub batches: usize,
    pub loss: f32,
    pub accuracy: f64,
    pub images_per_second: f64,
}

/// One line per epoch.
#[derive(Clone, Debug)]
pub struct EpochSummary {
    pub epoch: usize,
    pub epochs: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    pub images_per_second: f64,
    pub seconds: f64,
    /// Tensor storage the engine holds at the end of the epoch, pool included
    /// ([`Gpu::held_bytes`]): flat from one epoch to the next in a healthy run.
    pub gpu_bytes: u64,
}

/// Where training reports: the CLI draws a progress bar, tests stay quiet.
pub trait Observer {
    fn start(&mut self, _message: &str) {}
    fn step(&mut self, _info: &StepInfo) {}
    fn epoch(&mut self, _summary: &EpochSummary) {}
}

/// An observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// The resume file next to a task file.
pub fn resume_path(out: &str) -> String {
    format!("{}.resume.safetensors", out.strip_suffix(".safetensors").unwrap_or(out))
}

/// The metrics file next to a task file (one JSON object per epoch).
pub fn metrics_path(out: &str) -> String {
    format!("{}.metrics.jsonl", out.strip_suffix(".safetensors").unwrap_or(out))
}

/// The data of a run: classes, training and validation samples.
struct Data {
    classes: Vec<String>,
    train: Vec<Sample>,
    val: Vec<Sample>,
    skipped: usize,
}

fn load_data(cfg: &TrainConfig) -> Result<Data> {
    let folder = ImageFolder::scan(&cfg.data)?;
    let mut skipped = folder.skipped.len();
    let (train, val) = match &cfg.val {
        Some(dir) => {
            let val = ImageFolder::scan_with_classes(dir, &folder.classes)?;
            skipped += val.skipped.len();
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
pub fn load_backbone(gpu: &Gpu, model: &str, num_heads: Option<usize>, img_size: Option<usize>) -> Result<(Vit, String, Option<Normalization>)> {
    let sd = StateDict::read(model)?;
    let fingerprint = backbone_fingerprint(&sd);
    let norm = match (sd.metadata.get("mean"), sd.metadata.get("std")) {
        (Some(m), Some(s)) => Some(Normalization::parse(m, s)?),
        _ => None,
    };
    let vit = Vit::from_state_dict(gpu, &sd, &LoadOptions { num_heads, img_size: img_size.map(|s| (s, s)) })?;
    Ok((vit, fingerprint, norm))
}

/// Settings that change the result: a resumed run must have the same ones.
fn run_signature(cfg: &TrainConfig, fingerprint: &str) -> String {
    format!(
        "{fingerprint} prompts={} depth={:?} pool={} epochs={} batch={} lr={} wd={} warmup={} opt={} seed={} img={:?} flip={} dropout={} norm={:?} data={} val={:?}",
        cfg.num_prompts, cfg.depth, cfg.pool.name(), cfg.epochs, cfg.batch, cfg.base_lr, cfg.optimizer.weight_decay(), cfg.warmup_epochs,
        cfg.optimizer.name(), cfg.seed, cfg.img_size, cfg.flip, cfg.prompt_dropout, cfg.norm, cfg.data.display(), cfg.val
    )
}

/// Train a task; returns the last epoch's summary. The task file and its resume state are on disk
/// after every epoch.
pub fn fit(gpu: &Gpu, cfg: &TrainConfig, observer: &mut dyn Observer) -> Result<EpochSummary> {
    check_config(cfg)?;
    let (vit, fingerprint, ckpt_norm) = load_backbone(gpu, &cfg.model, cfg.num_heads, cfg.img_size)?;
    let norm = cfg.norm.or(ckpt_norm).unwrap_or(Normalization::IMAGENET);
    let data = load_data(cfg)?;
    if data.skipped > 0 {
        observer.start(&format!("warning: skipped {} files that are not readable images", data.skipped));
    }
    let (size, _) = vit.cfg.img_size;
    let depth = if cfg.num_prompts == 0 { 0 } else { cfg.depth.layers(vit.cfg.depth)? };
    let task = new_task(gpu, &vit.cfg, depth, cfg.num_prompts, data.classes.len(), cfg.pool, cfg.seed)?;
    let task_file = TaskFile { task, classes: data.classes.clone(), norm, img_size: vit.cfg.img_size, backbone: fingerprint.clone() };
    task_file.task.check_against(&vit)?;

    let steps_per_epoch = data.train.len().div_ceil(cfg.batch);
    let lr = cfg.base_lr * cfg.batch as f64 / 256.0;
    let schedule = WarmupCosine { base_lr: lr, warmup_steps: cfg.warmup_epochs * steps_per_epoch, total_steps: cfg.epochs * steps_per_epoch };
    let mut trainer = Trainer::new(gpu, &task_file.task, cfg.optimizer, schedule)?;
    let signature = run_signature(cfg, &fingerprint);
    let first_epoch = if cfg.resume { restore(cfg, &signature, &task_file, &mut trainer, observer)? } else { 0 };
    observer.start(&format!(
        "training {} prompts × {depth} layers on {} ({} classes, {} train / {} val images, {size}×{size}), {} steps per epoch, lr {lr:.4} on {}",
        cfg.num_prompts, cfg.data.display(), data.classes.len(), data.train.len(), data.val.len(), steps_per_epoch, gpu.describe()
    ));

    let train_tf = Transform::Train { size, resize: default_resize(size), flip: cfg.flip };
    let eval_tf = Transform::Eval { size, resize: default_resize(size) };
    let dropout = (cfg.prompt_dropout > 0.0).then_some(Dropout { p: cfg.prompt_dropout, seed: cfg.seed });
    let mut last = None;
    for epoch in first_epoch..cfg.epochs {
        let start = Instant::now();
        let lr_now = schedule.lr(trainer.step());
        let (loss, accuracy) = train_epoch(gpu, &vit, &task_file.task, &mut trainer, &data.train, train_tf, norm, cfg, epoch, dropout, observer)?;
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
        save(cfg, &task_file, &trainer, epoch + 1, &signature, &summary)?;
        observer.epoch(&summary);
        last = Some(summary);
    }
    last.ok_or_else(|| Error::invalid("--resume", format!("nothing to do: the run in {} already finished its {} epochs", cfg.out, cfg.epochs)))
}

fn check_config(cfg: &TrainConfig) -> Result<()> {
    let bad = |msg: String| Err(Error::invalid("vpt train", msg));
    if cfg.batch == 0 || cfg.epochs == 0 {
        return bad("--batch and --epochs must be at least 1".into());
    }
    if !(cfg.base_lr > 0.0 && cfg.base_lr.is_finite()) {
        return bad(format!("--lr {} must be a positive number", cfg.base_lr));
    }
    if !(0.0..1.0).contains(&cfg.prompt_dropout) {
        return bad(format!("--prompt-dropout {} must be in [0, 1)", cfg.prompt_dropout));
    }
    if !cfg.resume && Path::new(&cfg.out).exists() {
        return bad(format!("{} exists: pass --resume to continue that run, or choose another --out", cfg.out));
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
) -> Result<(f64, f64)> {
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
        correct += count_correct(&logits, &batch.labels)?;
        seen += batch.len();
        loss_sum += loss as f64 * batch.len() as f64;
        observer.step(&StepInfo {
            epoch: epoch + 1,
            batch: i + 1,
            batches,
            loss,
            accuracy: correct as f64 / seen as f64,
            images_per_second: seen as f64 / start.elapsed().as_secs_f64(),
        });
    }
    Ok((loss_sum / seen as f64, correct as f64 / seen as f64))
}

/// Top-1 hits in a batch of logits [B, C].
fn count_correct(logits: &Tensor, labels: &[u32]) -> Result<usize> {
    let classes = logits.last_dim();
    let values = logits.to_vec()?;
    Ok(values.chunks(classes).zip(labels).filter(|(row, &label)| argmax(row) == label as usize).count())
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// Accuracy of a task on samples.
pub struct Evaluation {
    pub top1: f64,
    /// (correct, total) per class.
    pub per_class: Vec<(usize, usize)>,
}

pub fn evaluate(gpu: &Gpu, vit: &Vit, task: &VptTask, samples: &[Sample], transform: Transform, norm: Normalization, batch: usize) -> Result<Evaluation> {
    let classes = task.num_classes();
    let mut per_class = vec![(0usize, 0usize); classes];
    for b in EpochLoader::new(samples.to_vec(), transform, norm, batch.max(1), false, 0, 0, 0) {
        let b = b?;
        let logits = vpt_forward(gpu, vit, task, &Tensor::from_slice(gpu, &b.shape(), &b.images)?)?;
        for (row, &label) in logits.to_vec()?.chunks(classes).zip(&b.labels) {
            let entry = &mut per_class[label as usize];
            entry.1 += 1;
            entry.0 += usize::from(argmax(row) == label as usize);
        }
    }
    let (hits, total) = per_class.iter().fold((0, 0), |(h, t), &(c, n)| (h + c, t + n));
    Ok(Evaluation { top1: hits as f64 / total.max(1) as f64, per_class })
}

/// Write the resume state, then the task file, each atomically; then the epoch's metrics line.
fn save(cfg: &TrainConfig, task_file: &TaskFile, trainer: &Trainer, epochs_done: usize, signature: &str, summary: &EpochSummary) -> Result<()> {
    let state: Vec<(String, Tensor)> = trainer.state_tensors().into_iter().enumerate().map(|(i, t)| (format!("optimizer.{i}"), t)).collect();
    let meta = [
        ("epochs_done".to_string(), epochs_done.to_string()),
        ("step".to_string(), trainer.step().to_string()),
        ("signature".to_string(), signature.to_string()),
    ];
    task_file.write(&resume_path(&cfg.out), &state, &meta)?;
    task_file.write(&cfg.out, &[], &[])?;
    append_metrics(&metrics_path(&cfg.out), summary)
}

fn append_metrics(path: &str, s: &EpochSummary) -> Result<()> {
    use std::io::Write;
    let line = serde_json::json!({
        "epoch": s.epoch, "lr": s.lr, "train_loss": s.train_loss, "train_accuracy": s.train_accuracy,
        "val_accuracy": if s.val_accuracy.is_nan() { serde_json::Value::Null } else { s.val_accuracy.into() },
        "images_per_second": s.images_per_second, "seconds": s.seconds, "gpu_bytes": s.gpu_bytes,
    });
    let io_err = |source| Error::Io { path: path.to_string(), source };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io_err)?;
    writeln!(f, "{line}").map_err(io_err)
}

/// Load the resume state into the task and trainer; returns the epoch to start at (0: nothing
/// to resume, start afresh).
fn restore(cfg: &TrainConfig, signature: &str, task_file: &TaskFile, trainer: &mut Trainer, observer: &mut dyn Observer) -> Result<usize> {
    let path = resume_path(&cfg.out);
    if !Path::new(&path).exists() {
        observer.start(&format!("nothing to resume at {path}: starting a new run"));
        let _ = std::fs::remove_file(metrics_path(&cfg.out));
        return Ok(0);
    }
    let f = TensorFile::read(&path)?;
    let fmt = |msg: String| Error::Format { path: path.clone(), msg };
    if f.metadata.get("signature").map(String::as_str) != Some(signature) {
        return Err(fmt("was written by a run with other settings (model, data, prompts, schedule, seed...); resume with the same arguments".into()));
    }
    let epochs_done: usize = f.meta("epochs_done")?;
    let step: usize = f.meta("step")?;
    let copy_into = |name: &str, t: &Tensor| -> Result<()> {
        let fresh = Tensor::from_slice(t.gpu(), t.shape(), f.f32_shaped(name, t.shape())?)?;
        t.copy_from(&fresh)
    };
    if let Some(p) = &task_file.task.prompts {
        copy_into("prompts", p)?;
    }
    copy_into("head.weight", &task_file.task.head_weight)?;
    copy_into("head.bias", &task_file.task.head_bias)?;
    let state: Vec<Vec<f32>> = (0..trainer.state_tensors().len()).map(|i| f.f32(&format!("optimizer.{i}")).map(|(_, d)| d.to_vec())).collect::<Result<_>>()?;
    trainer.restore(step, &state)?;
    truncate_metrics(&metrics_path(&cfg.out), epochs_done)?;
    observer.start(&format!("resuming after epoch {epochs_done} (step {step})"));
    Ok(epochs_done)
}

/// Keep the metrics of the epochs the resume state includes (an interrupted epoch wrote none,
/// but a crash between the state and the metrics line could leave one too many or too few).
fn truncate_metrics(path: &str, epochs_done: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["epoch"].as_u64()).is_some_and(|e| e as usize <= epochs_done))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, kept).map_err(|source| Error::Io { path: path.to_string(), source })
}
