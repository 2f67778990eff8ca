//! What a training run leaves after every epoch so that `--resume` can continue it to the same
//! result: the task's tensors, the optimizer state, the step, and the settings the run was
//! started with (each recorded on its own, so a resume with other settings names which ones
//! differ); and the metrics file, one JSON line per epoch.

use std::collections::BTreeMap;

use super::config::TrainConfig;
use super::observer::EpochSummary;
use super::outputs::RunFiles;
use super::task::TaskFile;
use super::Trainer;
use crate::error::{Error, Result};
use crate::io::TensorFile;
use crate::tensor::Tensor;

/// The settings that decide a run's result, by name: a resumed run must have the same ones. `backbone` and `data` are fingerprints (of the weights, of the image files), so
/// a changed checkpoint or folder is noticed even under the same path; paths are canonical, so
/// `data/` and `./data` are the same folder.
pub fn run_settings(cfg: &TrainConfig, backbone: &str, data: &str) -> BTreeMap<&'static str, String> {
    let canonical = |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let mut settings = BTreeMap::from([
        ("model", backbone.to_string()),
        ("data", canonical(&cfg.data)),
        ("val", cfg.val.as_deref().map_or("none".into(), canonical)),
        ("images", data.to_string()),
        ("prompts", cfg.num_prompts.to_string()),
        ("method", cfg.method.name()),
        ("method_options", cfg.method.options()),
        ("depth", format!("{:?}", cfg.depth)),
        ("pool", cfg.pool.name().to_string()),
        ("epochs", cfg.epochs.to_string()),
        ("batch", cfg.batch.to_string()),
        ("lr", cfg.base_lr.to_string()),
        ("wd", cfg.optimizer.weight_decay().to_string()),
        ("warmup", cfg.warmup_epochs.to_string()),
        ("optimizer", cfg.optimizer.name().to_string()),
        ("seed", cfg.seed.to_string()),
        ("img_size", format!("{:?}", cfg.img_size)),
        ("no_flip", (!cfg.flip).to_string()),
        ("prompt_dropout", cfg.prompt_dropout.to_string()),
        ("norm", format!("{:?}", cfg.norm)),
    ]);
    // Recorded only when set, so that the resume state of a run from before the setting existed
    // still resumes.
    if cfg.train_on_val {
        settings.insert("train_on_val", "true".into());
    }
    settings
}

/// Append the epoch's metrics line, then write the resume state and then the task file, each
/// atomically. In that order a run killed anywhere leaves the metrics file at least as far as the
/// resume state (one line too many at most, which [`restore`] drops), never a line short.
pub fn save(files: &RunFiles, task_file: &TaskFile, trainer: &Trainer, settings: &BTreeMap<&str, String>, summary: &EpochSummary) -> Result<()> {
    let state: Vec<(String, Tensor)> = trainer.state_tensors().into_iter().enumerate().map(|(i, t)| (format!("optimizer.{i}"), t)).collect();
    let meta = [
        ("epochs_done".to_string(), summary.epoch.to_string()),
        ("step".to_string(), trainer.step().to_string()),
        ("settings".to_string(), serde_json::to_string(settings).expect("strings serialise")),
    ];
    append_metrics(&files.metrics, summary)?;
    task_file.write(&files.resume, &state, &meta)?;
    task_file.write(&files.task, &[], &[])
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

/// Epoch `epoch`'s line of the metrics file at `path` (a run of `epochs` epochs), as
/// `append_metrics` wrote it; `None` when the file has no line for that epoch.
pub fn read_metrics_epoch(path: &str, epoch: usize, epochs: usize) -> Result<Option<EpochSummary>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_string(), source })?;
    let line = text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find(|v| v["epoch"].as_u64() == Some(epoch as u64));
    Ok(line.map(|line| {
        // A run that validated on nothing wrote null: NaN again, as the summary held it.
        let number = |key: &str| line[key].as_f64().unwrap_or(f64::NAN);
        EpochSummary {
            epoch,
            epochs,
            lr: number("lr"),
            train_loss: number("train_loss"),
            train_accuracy: number("train_accuracy"),
            val_accuracy: number("val_accuracy"),
            images_per_second: number("images_per_second"),
            seconds: number("seconds"),
            gpu_bytes: line["gpu_bytes"].as_u64().unwrap_or(0),
        }
    }))
}

/// The epochs the resume state at `path` records as finished.
pub fn epochs_done(path: &str) -> Result<usize> {
    TensorFile::read(path)?.meta("epochs_done")
}

/// Load the resume state into the task and trainer; returns the epochs it had finished.
pub fn restore(files: &RunFiles, settings: &BTreeMap<&str, String>, task_file: &TaskFile, trainer: &mut Trainer) -> Result<usize> {
    let f = TensorFile::read(&files.resume)?;
    let fmt = |msg: String| Error::Format { path: files.resume.clone(), msg };
    check_same_settings(&f, settings).map_err(fmt)?;
    let epochs_done: usize = f.meta("epochs_done")?;
    let step: usize = f.meta("step")?;
    let copy_into = |name: &str, t: &Tensor| -> Result<()> {
        let fresh = Tensor::from_slice(t.gpu(), t.shape(), f.checked_f32_shaped(name, t.shape())?)?;
        t.copy_from(&fresh)
    };
    if let Some(p) = &task_file.task.prompts {
        copy_into("prompts", p)?;
    }
    copy_into("head.weight", &task_file.task.head_weight)?;
    copy_into("head.bias", &task_file.task.head_bias)?;
    for (name, t) in task_file.task.tuned.named() {
        copy_into(&name, t)?;
    }
    let state: Vec<Vec<f32>> = (0..trainer.state_tensors().len()).map(|i| f.checked_f32(&format!("optimizer.{i}")).map(|(_, d)| d.to_vec())).collect::<Result<_>>()?;
    trainer.restore(step, &state)?;
    truncate_metrics(&files.metrics, epochs_done)?;
    Ok(epochs_done)
}

/// Error (naming each setting that differs, then and now) unless the resume state was written
/// by a run with these settings.
fn check_same_settings(f: &TensorFile, now: &BTreeMap<&str, String>) -> std::result::Result<(), String> {
    let Some(text) = f.metadata.get("settings") else {
        return Err("records no settings (written by an older vpt-wgsl?), so it cannot be resumed safely; start again with `force`".into());
    };
    let recorded: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| format!("its settings do not parse: {e}"))?;
    let then: BTreeMap<String, String> = recorded.into_iter().map(|(k, v)| (key_of_older(&k), v)).collect();
    let differ: Vec<String> = now.iter().filter(|(k, v)| then.get(**k) != Some(*v)).map(|(k, v)| format!("{}: {} then, {v} now", shown(k), then.get(*k).map_or("(absent)", String::as_str))).collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(format!(
        "was written by a run with other settings, so `resume` would not end where that run would: {}; resume with the same arguments and data, or start again with `force`",
        differ.join("; ")
    ))
}

/// A recorded setting as a message names it: the settings in backticks, which the command line
/// shows as their flags.
fn shown(key: &str) -> String {
    match key {
        "model" => "backbone (`model`)".into(),
        "images" => "images (the files in `data` and `val`)".into(),
        "method_options" => "`method`'s options".into(),
        "norm" => "`mean`/`std`".into(),
        setting => format!("`{setting}`"),
    }
}

/// The key of a setting recorded by a resume state written before settings had names of their
/// own, when they were recorded by flag ("--lr", "backbone (--model)"), so that such a run still
/// resumes.
fn key_of_older(key: &str) -> String {
    match key {
        "backbone (--model)" => "model".into(),
        "images (the files in --data and --val)" => "images".into(),
        "--method's options" => "method_options".into(),
        "--mean/--std" => "norm".into(),
        key => key.strip_prefix("--").map_or_else(|| key.to_string(), |flag| flag.replace('-', "_")),
    }
}

/// Keep the metrics of the epochs the resume state includes (an interrupted epoch wrote none,
/// but a kill between an epoch's metrics line and its state leaves one too many; see [`save`]).
fn truncate_metrics(path: &str, epochs_done: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String =
        text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["epoch"].as_u64()).is_some_and(|e| e as usize <= epochs_done)).map(|l| format!("{l}\n")).collect();
    crate::io::write_atomically(std::path::Path::new(path), kept.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resume_state(settings: &[(&str, &str)]) -> TensorFile {
        let recorded: BTreeMap<&str, &str> = settings.iter().copied().collect();
        let metadata = HashMap::from([("settings".to_string(), serde_json::to_string(&recorded).unwrap())]);
        TensorFile { path: "run.resume.safetensors".into(), tensors: HashMap::new(), metadata }
    }

    /// A resume state written before settings had names (keys were flags) still resumes, and
    /// one with another setting names it as the command line will show it.
    #[test]
    fn settings_recorded_by_flag_still_resume() {
        let now = BTreeMap::from([
            ("model", "fnv".to_string()),
            ("images", "i".to_string()),
            ("method_options", "o".to_string()),
            ("norm", "n".to_string()),
            ("lr", "0.1".to_string()),
            ("img_size", "None".to_string()),
        ]);
        let older = resume_state(&[
            ("backbone (--model)", "fnv"),
            ("images (the files in --data and --val)", "i"),
            ("--method's options", "o"),
            ("--mean/--std", "n"),
            ("--lr", "0.1"),
            ("--img-size", "None"),
        ]);
        assert_eq!(check_same_settings(&older, &now), Ok(()));
        let other = resume_state(&[("model", "fnv"), ("images", "i"), ("method_options", "o"), ("norm", "n"), ("lr", "0.2"), ("img_size", "None")]);
        let err = check_same_settings(&other, &now).unwrap_err();
        assert!(err.contains("`lr`: 0.2 then, 0.1 now") && err.contains("start again with `force`"), "{err}");
    }
}
