//! `vpt sweep`: the paper's per-task search. Every (learning rate, weight decay) pair of the grid
//! trains with the same recipe through `fit`, validating on `val` (or the seeded split); the pair
//! with the best validation top-1 (the earlier on a tie) is trained again on the training and
//! validation images together (`best.safetensors`), and evaluated on `test` when given. A run
//! whose loss stops being a number stops there and counts as failed.
//!
//! In the sweep's folder:
//! - `sweep.json`: the recipe, every run's result, the best pair, the refit, the test top-1
//!   (`record.rs`), written after every run, so that a killed sweep resumes (`resume`) without
//!   rerunning a finished pair, and a run cut off mid-way continues from its last epoch;
//! - `sweep.svg`: the heatmap of validation top-1 over the grid (`heatmap.rs`);
//! - `best.safetensors` (with its resume state and metrics, as `vpt train` leaves them);
//! - `runs/`: each run's metrics (`lr0.5_wd0.0001.metrics.jsonl`), and its task file and resume
//!   state while it runs (kept afterwards with `keep_runs`).

mod grid;
mod heatmap;
mod record;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use grid::{best, table, Grid, Outcome, Pair, RunResult, PAPER_LRS, PAPER_WDS};
pub use record::{Refit, SweepRecord, Test};

use super::config::TrainConfig;
use super::evaluate::{evaluate_task_file, EVAL_BATCH};
use super::fit::{fit_run, RunEnd};
use super::observer::{EpochSummary, Observer};
use super::outputs::{make_output_folder, metrics_path, resume_path};
use super::start::{check_config, load_options};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::train::resume::{epochs_done, read_metrics_epoch, run_settings};

/// What a sweep searches and reports besides the recipe.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub grid: Grid,
    /// Images to report the refit task's top-1 on (a folder or a split list).
    pub test: Option<PathBuf>,
    /// Keep every run's task file and resume state (by default only its metrics stay).
    pub keep_runs: bool,
}

/// `sweep.json` in `out_dir`.
pub fn record_path(out_dir: &Path) -> PathBuf {
    out_dir.join("sweep.json")
}

/// The refit task file in `out_dir`.
pub fn best_path(out_dir: &Path) -> String {
    out_dir.join("best.safetensors").display().to_string()
}

/// The recipe with this pair's learning rate and weight decay.
fn at(recipe: &TrainConfig, pair: Pair) -> TrainConfig {
    TrainConfig { base_lr: pair.lr, optimizer: recipe.optimizer.with_weight_decay(pair.wd), ..recipe.clone() }
}

/// Run the sweep of `recipe` over `opts.grid` into `out_dir`. `recipe.resume` continues the sweep
/// whose `sweep.json` is there; `recipe.force` replaces it.
pub fn sweep(gpu: &Gpu, recipe: &TrainConfig, opts: &SweepOptions, out_dir: &Path, observer: &mut dyn Observer) -> Result<SweepRecord> {
    opts.grid.check()?;
    let pairs = opts.grid.pairs();
    // Every run's recipe is valid before the first one starts.
    for pair in &pairs {
        check_config(&at(recipe, *pair))?;
    }
    if let Some(test) = &opts.test {
        if !test.exists() {
            return Err(Error::invalid("test", format!("{} does not exist; give the test images (a folder of class folders, or a split list)", test.display())));
        }
    }
    let mut record = open_record(recipe, opts, out_dir, observer)?;
    let runs_dir = out_dir.join("runs");
    make_output_folder("out_dir", &runs_dir)?;
    let total = pairs.len();
    let earlier = std::mem::take(&mut record.runs);
    let mut runs = Vec::new();
    for (k, pair) in pairs.iter().enumerate() {
        let done = earlier.iter().find(|r| r.pair == *pair).cloned();
        let run = match done {
            Some(run) => {
                observer.start(&format!("run {} of {total} ({pair}): done before, {}", k + 1, said(&run)));
                run
            }
            None => {
                observer.start(&format!("— run {} of {total}: {pair} —", k + 1));
                let run = run_pair(gpu, recipe, *pair, &runs_dir, observer)?;
                observer.start(&format!("run {} of {total} ({pair}): {}", k + 1, said(&run)));
                run
            }
        };
        runs.push(run);
        record.runs = runs.clone();
        save(&record, out_dir)?;
        // Only once the record holds the run: a kill before leaves the run to be found finished.
        if !opts.keep_runs {
            remove_run_files(&run_path(&runs_dir, *pair))?;
        }
    }
    let Some(chosen) = best(&runs).cloned() else {
        return Err(Error::invalid("lr", format!("every run of the sweep diverged (see {}); give smaller `lr` or `wd` values", record_path(out_dir).display())));
    };
    observer.start(&format!("best: {} with {:.2}% validation top-1; refit on train + val", chosen.pair, chosen.val_top1().unwrap_or(f64::NAN)));
    record.refit = Some(refit(gpu, recipe, chosen.pair, out_dir, &mut record, observer)?);
    save(&record, out_dir)?;
    if let Some(test) = &opts.test {
        let tested = evaluate_task_file(gpu, &recipe.model, &load_options(recipe), &best_path(out_dir), test, recipe.root.as_deref(), EVAL_BATCH)?;
        if !tested.skipped.is_empty() {
            observer.start(&super::data::skipped_warning(&tested.skipped));
        }
        record.test = Some(Test { top1: 100.0 * tested.evaluation.top1, images: tested.images });
        save(&record, out_dir)?;
    }
    Ok(record)
}

/// A run's result in words.
fn said(run: &RunResult) -> String {
    match run.outcome {
        Outcome::Finished { val_top1, .. } => format!("val top-1 {val_top1:.2}%"),
        Outcome::Diverged { epoch, step } => format!("failed: diverged at epoch {epoch}, step {step}"),
    }
}

/// `sweep.json` and `sweep.svg`, both rewritten.
fn save(record: &SweepRecord, out_dir: &Path) -> Result<()> {
    record.write(&record_path(out_dir))?;
    heatmap::draw(&record.grid, &record.runs, &out_dir.join("sweep.svg"))
}

/// The settings every run of the sweep shares, by name: the run's own (`lr`, `wd` and the image
/// fingerprint aside, which each run checks itself), and the test images.
fn recipe_settings(recipe: &TrainConfig, test: Option<&Path>) -> BTreeMap<String, String> {
    let model = Path::new(&recipe.model).canonicalize().map_or(recipe.model.clone(), |p| p.display().to_string());
    let mut settings: BTreeMap<String, String> = run_settings(recipe, &model, "").into_iter().filter(|(k, _)| !["lr", "wd", "images"].contains(k)).map(|(k, v)| (k.to_string(), v)).collect();
    settings.insert("root".into(), format!("{:?}", recipe.root));
    settings.insert("test".into(), test.map_or("none".into(), |t| t.canonicalize().unwrap_or_else(|_| t.to_path_buf()).display().to_string()));
    settings
}

/// The record to go on from: the one in `out_dir` when resuming with the same recipe, else a new
/// one (after checking that nothing of an earlier sweep is replaced without `force`).
fn open_record(recipe: &TrainConfig, opts: &SweepOptions, out_dir: &Path, observer: &mut dyn Observer) -> Result<SweepRecord> {
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(Error::invalid("out_dir", format!("{} is a file; give a folder for the sweep", out_dir.display())));
    }
    if recipe.resume && recipe.force {
        return Err(Error::invalid("force", "and `resume` contradict each other: `resume` continues the sweep in `out_dir`, `force` replaces it"));
    }
    make_output_folder("out_dir", out_dir)?;
    let settings = recipe_settings(recipe, opts.test.as_deref());
    let fresh = SweepRecord { recipe: settings.clone(), grid: opts.grid.clone(), runs: Vec::new(), refit: None, test: None };
    let path = record_path(out_dir);
    if recipe.resume {
        if !path.exists() {
            observer.start(&format!("nothing to resume at {}: starting a new sweep", path.display()));
            return Ok(fresh);
        }
        let earlier = SweepRecord::read(&path)?;
        earlier.check_same_recipe(&settings, &path)?;
        return Ok(SweepRecord { grid: opts.grid.clone(), ..earlier });
    }
    let best = best_path(out_dir);
    for existing in [path.display().to_string(), out_dir.join("sweep.svg").display().to_string(), best.clone(), resume_path(&best), metrics_path(&best)] {
        if Path::new(&existing).exists() && !recipe.force {
            return Err(Error::invalid("out_dir", format!("{existing} exists; pass `resume` to continue that sweep, `force` to replace it, or choose another `out_dir`")));
        }
    }
    Ok(fresh)
}

/// The task file of a pair's run in `runs_dir`.
fn run_path(runs_dir: &Path, pair: Pair) -> String {
    runs_dir.join(format!("{}.safetensors", pair.file_stem())).display().to_string()
}

/// A finished run's task file and resume state (its metrics stay).
fn remove_run_files(out: &str) -> Result<()> {
    for file in [out.to_string(), resume_path(out)] {
        if Path::new(&file).exists() {
            std::fs::remove_file(&file).map_err(|source| Error::Io { path: file.clone(), source })?;
        }
    }
    Ok(())
}

/// Train one pair of the grid in `runs_dir`. When the sweep resumes, a run with a resume state
/// continues from it, and what a run killed before its first epoch's state left is replaced (the
/// sweep's own files).
fn run_pair(gpu: &Gpu, recipe: &TrainConfig, pair: Pair, runs_dir: &Path, observer: &mut dyn Observer) -> Result<RunResult> {
    let out = run_path(runs_dir, pair);
    let started = recipe.resume && Path::new(&resume_path(&out)).exists();
    let cfg = TrainConfig { out: out.clone(), resume: started, force: recipe.force || (recipe.resume && !started), ..at(recipe, pair) };
    let end = match finished_before(&cfg)? {
        Some(last) => RunEnd::Finished(last),
        None => fit_run(gpu, &cfg, observer)?,
    };
    let outcome = match end {
        RunEnd::Finished(last) => Outcome::Finished { val_top1: 100.0 * last.val_accuracy, train_loss: last.train_loss, train_top1: 100.0 * last.train_accuracy },
        RunEnd::Diverged { epoch, step, .. } => Outcome::Diverged { epoch: epoch + 1, step },
    };
    Ok(RunResult { pair, outcome })
}

/// Train the best pair on train + val into `best.safetensors`. When the sweep resumes, a refit
/// of the same pair that finished before is kept and one cut off continues; anything else there
/// (a refit of another pair, as when the grid grew and the best changed, or what a refit killed
/// before its first epoch's state left) is the sweep's own, and is replaced.
fn refit(gpu: &Gpu, recipe: &TrainConfig, pair: Pair, out_dir: &Path, record: &mut SweepRecord, observer: &mut dyn Observer) -> Result<Refit> {
    let out = best_path(out_dir);
    let same_pair = record.refit.as_ref().is_some_and(|r| r.pair == pair);
    let started = recipe.resume && same_pair && Path::new(&resume_path(&out)).exists();
    let cfg = TrainConfig { out: out.clone(), train_on_val: true, resume: started, force: recipe.force || (recipe.resume && !started), ..at(recipe, pair) };
    let unfinished = Refit { pair, task_file: out.clone(), finished: false, train_loss: f64::NAN, train_top1: f64::NAN, images_per_second: f64::NAN };
    if !same_pair {
        record.refit = Some(unfinished.clone());
        save(record, out_dir)?;
    }
    let last = match finished_before(&cfg)? {
        Some(last) if Path::new(&out).exists() => {
            observer.start("the refit finished before: kept");
            last
        }
        _ => match fit_run(gpu, &cfg, observer)? {
            RunEnd::Finished(last) => last,
            RunEnd::Diverged { epoch, step, why } => {
                return Err(Error::invalid(
                    "lr",
                    format!(
                    "the refit of the best pair ({pair}) on train + val diverged at epoch {}, step {step} ({why}) although its run on train alone did not; give the grid smaller `lr` or `wd` values",
                    epoch + 1
                ),
                ))
            }
        },
    };
    Ok(Refit { finished: true, train_loss: last.train_loss, train_top1: 100.0 * last.train_accuracy, images_per_second: last.images_per_second, ..unfinished })
}

/// The last epoch of a run whose resume state says every epoch finished (a sweep killed between
/// a run's end and its record), from its metrics file; `None` for any other run.
fn finished_before(cfg: &TrainConfig) -> Result<Option<EpochSummary>> {
    let state = resume_path(&cfg.out);
    if !cfg.resume || !Path::new(&state).exists() {
        return Ok(None);
    }
    let done = epochs_done(&state)?;
    if done < cfg.epochs {
        return Ok(None);
    }
    let metrics = metrics_path(&cfg.out);
    let last = read_metrics_epoch(&metrics, done, cfg.epochs)?;
    let missing = || Error::Format { path: metrics.clone(), msg: format!("has no line for epoch {done}, the last one its resume state records; start the sweep again with `force`") };
    last.map(Some).ok_or_else(missing)
}
