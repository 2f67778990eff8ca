//! `vpt compare`: the paper's comparison (Table 1, Figure 3) on the user's own images. Every
//! method is trained with one recipe on one folder, through the same `fit` as `vpt train`, and
//! reported as the paper reports it: trainable parameters (and their share of the backbone's),
//! the task file's size, top-1 on the validation images, images per second and peak GPU memory.
//! The report is a table, `compare.json` and `compare.svg` (top-1 against trainable parameters,
//! log scale).

use std::path::Path;

use super::plot::{accuracy_against_parameters, Point};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::TensorFile;
use crate::model::methods::method::Method;
use crate::model::vit::StateDict;
use crate::train::config::TrainConfig;
use crate::train::fit::fit;
use crate::train::observer::Observer;

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
    /// The most tensor storage alive at once during the run.
    pub peak_bytes: u64,
}

impl CompareRow {
    /// Trainable parameters as a percentage of the backbone's.
    pub fn percent_of_backbone(&self) -> f64 {
        100.0 * self.trainable as f64 / self.backbone.max(1) as f64
    }
}

/// The file a method's task goes to: `<out_dir>/<method>.safetensors`, '+' written as '_'.
pub fn task_path(out_dir: &Path, method: &Method) -> String {
    out_dir.join(format!("{}.safetensors", method.name().replace('+', "_"))).display().to_string()
}

/// Train `recipe` once per method into `out_dir` (the recipe's `out` is replaced).
pub fn compare(gpu: &Gpu, recipe: &TrainConfig, methods: &[Method], out_dir: &Path, observer: &mut dyn Observer) -> Result<Vec<CompareRow>> {
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
    let backbone = backbone_parameters(&recipe.model)?;
    let mut rows = Vec::new();
    for method in methods {
        let cfg = TrainConfig { out: task_path(out_dir, method), method: method.clone(), resume: false, ..recipe.clone() };
        observer.start(&format!("— {}: {} epochs, base lr {} —", method.name(), cfg.epochs, cfg.base_lr));
        gpu.reset_peak_bytes();
        let last = fit(gpu, &cfg, observer)?;
        let peak_bytes = gpu.peak_bytes();
        let task = TensorFile::read(&cfg.out)?;
        let trainable = task.total_elements();
        let task_bytes = std::fs::metadata(&cfg.out).map_err(|source| Error::Io { path: cfg.out.clone(), source })?.len();
        rows.push(CompareRow { method: method.name(), trainable, backbone, task_file: cfg.out.clone(), task_bytes, top1: last.val_accuracy, images_per_second: last.images_per_second, peak_bytes });
    }
    Ok(rows)
}

/// Parameters of the backbone at `model`, its own classifier head left out.
fn backbone_parameters(model: &str) -> Result<usize> {
    let sd = StateDict::read(model)?;
    Ok(sd.tensors.iter().filter(|(n, _)| !n.starts_with("head.")).map(|(_, (shape, _))| shape.iter().product::<usize>()).sum())
}

/// The table, one line per method.
pub fn table(rows: &[CompareRow]) -> String {
    let mut out = format!("{:<16} {:>11} {:>10} {:>11} {:>7} {:>9} {:>11}\n", "method", "trainable", "% backbone", "task file", "top-1", "img/s", "peak memory");
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:>11} {:>9.3}% {:>8.1} KB {:>6.1}% {:>9.1} {:>7.1} MiB\n",
            r.method,
            r.trainable,
            r.percent_of_backbone(),
            r.task_bytes as f64 / 1e3,
            100.0 * r.top1,
            r.images_per_second,
            r.peak_bytes as f64 / (1024.0 * 1024.0)
        ));
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
