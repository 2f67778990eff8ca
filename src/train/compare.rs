//! `vpt compare`: the paper's comparison (Table 1, Figure 3) on the user's own images. Every
//! method is trained with one recipe on one folder, through the same `fit` as `vpt train`, and
//! reported as the paper reports it: trainable parameters (and their share of the backbone's),
//! the task file's size, top-1 on the validation images, images per second and peak GPU memory.
//! The report is a table, `compare.json` and `compare.svg` (top-1 against trainable parameters,
//! log scale).
//!
//! With a search grid, each method instead gets its own `vpt sweep` (in `<out_dir>/<method>/`)
//! and is reported by its best pair: validation top-1 of that pair's run, the task file of its
//! refit on train + val. One learning rate rarely suits every method; the search is how the
//! paper compares them.

use std::path::{Path, PathBuf};

use super::plot::{accuracy_against_parameters, Point};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::TensorFile;
use crate::model::methods::method::Method;
use crate::model::vit::StateDict;
use crate::train::config::TrainConfig;
use crate::train::evaluate::{evaluate_task_file, EVAL_BATCH};
use crate::train::fit::fit;
use crate::train::observer::Observer;
use crate::train::start::load_options;
use crate::train::sweep::{self, Grid, Pair, SweepOptions};

/// One method's result.
#[derive(Clone, Debug)]
pub struct CompareRow {
    pub method: String,
    /// Parameters the method trained: head, prompts, tuned backbone copies, added tensors.
    pub trainable: usize,
    /// Parameters of the backbone (without its own classifier head).
    pub backbone: usize,
    pub task_file: String,
    pub task_bytes: u64,
    /// Top-1 on the validation images after the last epoch, in [0, 1].
    pub top1: f64,
    /// Training throughput of the last epoch.
    pub images_per_second: f64,
    /// The most tensor storage alive at once during the run (during its whole sweep with a grid).
    pub peak_bytes: u64,
    /// The pair its sweep picked (with a grid).
    pub best: Option<Pair>,
    /// Top-1 of its task file on the test images, in [0, 1] (when `test` is given).
    pub test_top1: Option<f64>,
}

/// How `compare` trains and reports each method besides the shared recipe.
#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// Each method's own search (`vpt compare --sweep`); `None`: the recipe's rate for all.
    pub grid: Option<Grid>,
    /// Images every method's task file is evaluated on.
    pub test: Option<PathBuf>,
}

impl CompareRow {
    /// Trainable parameters as a percentage of the backbone's.
    pub fn percent_of_backbone(&self) -> f64 {
        100.0 * self.trainable as f64 / self.backbone.max(1) as f64
    }
}

/// The file a method's task goes to: `<out_dir>/<method>.safetensors`, '+' written as '_'.
pub fn task_path(out_dir: &Path, method: &Method) -> String {
    out_dir.join(format!("{}.safetensors", file_stem(method))).display().to_string()
}

/// The folder of a method's sweep: `<out_dir>/<method>/`, '+' written as '_'.
pub fn sweep_dir(out_dir: &Path, method: &Method) -> PathBuf {
    out_dir.join(file_stem(method))
}

fn file_stem(method: &Method) -> String {
    method.name().replace('+', "_")
}

/// Train `recipe` once per method into `out_dir` (the recipe's `out` is replaced), or search
/// each method's own pair with `options.grid`.
pub fn compare(gpu: &Gpu, recipe: &TrainConfig, methods: &[Method], out_dir: &Path, options: &CompareOptions, observer: &mut dyn Observer) -> Result<Vec<CompareRow>> {
    if methods.is_empty() {
        return Err(Error::invalid("methods", "names no method; give e.g. linear,prompt,bias"));
    }
    super::start::check_config(recipe)?;
    // Two spellings of one method ("bias" and "linear+bias") would train into one task file.
    for (i, method) in methods.iter().enumerate() {
        if methods[..i].iter().any(|earlier| earlier.name() == method.name()) {
            return Err(Error::invalid("methods", format!("names {} twice (each method trains into {}); give each method once", method.name(), task_path(out_dir, method))));
        }
    }
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(Error::invalid("out_dir", format!("{} is a file; give a folder for the task files and the report", out_dir.display())));
    }
    crate::train::outputs::make_output_folder("out_dir", out_dir)?;
    for report in ["compare.json", "compare.svg"] {
        let path = out_dir.join(report);
        if path.exists() && !recipe.force {
            return Err(Error::invalid("out_dir", format!("{} exists; pass `force` to replace it, or choose another `out_dir`", path.display())));
        }
    }
    if options.grid.is_some() && !recipe.force {
        // Found before the first method trains, not after the others' sweeps.
        if let Some(earlier) = methods.iter().map(|m| sweep::record_path(&sweep_dir(out_dir, m))).find(|p| p.exists()) {
            return Err(Error::invalid("out_dir", format!("{} exists; pass `force` to replace it, or choose another `out_dir`", earlier.display())));
        }
    }
    let backbone = backbone_parameters(&recipe.model)?;
    let mut rows = Vec::new();
    for method in methods {
        let cfg = TrainConfig { method: method.clone(), resume: false, ..recipe.clone() };
        gpu.reset_peak_bytes();
        let trained = match &options.grid {
            None => train_once(gpu, TrainConfig { out: task_path(out_dir, method), ..cfg }, observer)?,
            Some(grid) => search(gpu, &cfg, grid, &sweep_dir(out_dir, method), observer)?,
        };
        let peak_bytes = gpu.peak_bytes();
        let task = TensorFile::read(&trained.task_file)?;
        let trainable = task.total_elements();
        let task_bytes = std::fs::metadata(&trained.task_file).map_err(|source| Error::Io { path: trained.task_file.clone(), source })?.len();
        let test_top1 = match &options.test {
            Some(test) => Some(evaluate_task_file(gpu, &recipe.model, &load_options(recipe), &trained.task_file, test, recipe.root.as_deref(), EVAL_BATCH)?.evaluation.top1),
            None => None,
        };
        rows.push(CompareRow {
            method: method.name(),
            trainable,
            backbone,
            task_file: trained.task_file,
            task_bytes,
            top1: trained.top1,
            images_per_second: trained.images_per_second,
            peak_bytes,
            best: trained.best,
            test_top1,
        });
    }
    Ok(rows)
}

/// What one method's training left: its task file and the figures the table takes from it.
struct Trained {
    task_file: String,
    /// Validation top-1 in [0, 1].
    top1: f64,
    images_per_second: f64,
    best: Option<Pair>,
}

fn train_once(gpu: &Gpu, cfg: TrainConfig, observer: &mut dyn Observer) -> Result<Trained> {
    observer.start(&format!("— {}: {} epochs, base lr {} —", cfg.method.name(), cfg.epochs, cfg.base_lr));
    let last = fit(gpu, &cfg, observer)?;
    Ok(Trained { task_file: cfg.out, top1: last.val_accuracy, images_per_second: last.images_per_second, best: None })
}

/// The method's own sweep in `dir`: reported by its best pair (validation top-1 of that pair's
/// run) and the task file of its refit.
fn search(gpu: &Gpu, cfg: &TrainConfig, grid: &Grid, dir: &Path, observer: &mut dyn Observer) -> Result<Trained> {
    observer.start(&format!("— {}: a sweep of {} pairs, {} epochs each, in {} —", cfg.method.name(), grid.pairs().len(), cfg.epochs, dir.display()));
    let record = sweep::sweep(gpu, cfg, &SweepOptions { grid: grid.clone(), test: None, keep_runs: false }, dir, observer)?;
    let best = sweep::best(&record.runs).ok_or_else(|| Error::Internal { what: "compare".into(), msg: "a finished sweep has no best run".into() })?;
    let refit = record.refit.as_ref().ok_or_else(|| Error::Internal { what: "compare".into(), msg: "a finished sweep has no refit".into() })?;
    Ok(Trained { task_file: refit.task_file.clone(), top1: best.val_top1().unwrap_or(f64::NAN) / 100.0, images_per_second: refit.images_per_second, best: Some(best.pair) })
}

/// Parameters of the backbone at `model`, its own classifier head left out.
fn backbone_parameters(model: &str) -> Result<usize> {
    let sd = StateDict::read(model)?;
    Ok(sd.tensors.iter().filter(|(n, _)| !n.starts_with("head.")).map(|(_, (shape, _))| shape.iter().product::<usize>()).sum())
}

/// The table, one line per method (with the best pair and the test top-1 where there are).
pub fn table(rows: &[CompareRow]) -> String {
    let searched = rows.iter().any(|r| r.best.is_some());
    let tested = rows.iter().any(|r| r.test_top1.is_some());
    let mut out = format!("{:<16} {:>11} {:>10} {:>11} {:>7} {:>9} {:>11}", "method", "trainable", "% backbone", "task file", "top-1", "img/s", "peak memory");
    out += &[(searched, format!(" {:>20}", "best pair")), (tested, format!(" {:>10}", "test top-1"))].into_iter().filter(|(shown, _)| *shown).map(|(_, h)| h).collect::<String>();
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:>11} {:>9.3}% {:>8.1} KB {:>6.1}% {:>9.1} {:>7.1} MiB",
            r.method,
            r.trainable,
            r.percent_of_backbone(),
            r.task_bytes as f64 / 1e3,
            100.0 * r.top1,
            r.images_per_second,
            r.peak_bytes as f64 / (1024.0 * 1024.0)
        ));
        if searched {
            out += &format!(" {:>20}", r.best.map_or("-".into(), |p| p.to_string()));
        }
        if tested {
            out += &format!(" {:>9.1}%", 100.0 * r.test_top1.unwrap_or(f64::NAN));
        }
        out.push('\n');
    }
    out
}

/// The rows as JSON (`compare.json`).
pub fn to_json(rows: &[CompareRow]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method, "trainable_params": r.trainable, "backbone_params": r.backbone,
                "percent_of_backbone": r.percent_of_backbone(), "task_file": r.task_file, "task_bytes": r.task_bytes,
                "top1": r.top1, "images_per_second": r.images_per_second, "peak_bytes": r.peak_bytes,
                "best": r.best.map(|p| serde_json::json!({ "lr": p.lr, "wd": p.wd })), "test_top1": r.test_top1,
            })
        })
        .collect();
    serde_json::json!({ "methods": rows })
}

/// Write `compare.json` and `compare.svg` into `out_dir`.
pub fn write_report(rows: &[CompareRow], out_dir: &Path) -> Result<()> {
    let json = out_dir.join("compare.json");
    crate::io::write_atomically(&json, serde_json::to_string_pretty(&to_json(rows)).expect("JSON values serialise").as_bytes())?;
    let points: Vec<Point> = rows.iter().map(|r| Point { label: &r.method, trainable: r.trainable, top1: r.top1 }).collect();
    accuracy_against_parameters(&points, &out_dir.join("compare.svg"))
}
