//! `vpt demo`: the bundled demonstration. A small ViT pretrained by us (fixtures/make_demo.py) on
//! scikit-learn's handwritten digits 0–4 is tuned on the digits 5–9 every way the paper compares
//! (linear probe, VPT-shallow, VPT-deep, and the baselines bias, partial-1, adapter, LoRA, IA³, DoRA and
//! full fine-tuning), with the recipe the PyTorch reference used (read from
//! fixtures/demo/pytorch_reference.json), and the test accuracies are printed beside PyTorch's
//! spread over five seeds. `--seeds` runs ours over the same five seeds.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::TensorFile;
use crate::model::methods::method::Method;
use crate::model::methods::options::MethodOptions;
use crate::model::plan::BlockPlan;
use crate::model::vit::Precision;
use crate::model::vpt::Pool;
use crate::train::config::{Depth, TrainConfig};
use crate::train::fit::fit;
use crate::train::observer::Observer;
use crate::train::Optimizer;

/// One row of the table.
pub struct DemoRow {
    pub variant: String,
    /// Parameters our run trained (from its task file).
    pub trainable: usize,
    /// Our test top-1 of each run: the recipe's seed, then (with `--seeds`) the others.
    pub ours: Vec<f64>,
    /// PyTorch's test top-1 over the reference's seeds.
    pub torch: Vec<f64>,
    pub task_file: String,
}

/// The variants, in the order the table lists them (those the reference file has).
pub const VARIANTS: [&str; 10] = ["linear", "shallow", "deep", "bias", "partial-1", "adapter", "lora", "ia3", "dora", "full"];

/// Train the variants of the reference in `dir` (fixtures/demo) into `out_dir`. `epochs`
/// overrides the reference recipe's (for a quick look); the comparison is only like for like
/// without it. `all_seeds`: run each variant with every seed the reference ran, not just its first.
/// `only`: the variants to run (None: all).
#[allow(clippy::too_many_arguments)]
pub fn run_demo(gpu: &Gpu, dir: &Path, out_dir: &Path, epochs: Option<usize>, precision: Precision, all_seeds: bool, only: Option<&[String]>, observer: &mut dyn Observer) -> Result<Vec<DemoRow>> {
    if let Some(bad) = only.and_then(|names| names.iter().find(|n| !VARIANTS.contains(&n.as_str()))) {
        return Err(Error::invalid("variants", format!("{bad:?} is not a variant; use {}", VARIANTS.join(", "))));
    }
    let reference_path = dir.join("pytorch_reference.json");
    if !reference_path.is_file() {
        return Err(Error::invalid("dir", format!("{:?} is not a demo folder (it has no pytorch_reference.json); leave `dir` out to use the bundled demo", dir.display().to_string())));
    }
    if out_dir.as_os_str().is_empty() {
        return Err(Error::invalid("out_dir", "is empty; give the folder for the task files"));
    }
    let text = crate::io::read_regular_text(&reference_path, 16 << 20).map_err(|msg| Error::Format { path: reference_path.display().to_string(), msg })?;
    let reference: Value = serde_json::from_str(&text).map_err(|e| Error::Format { path: reference_path.display().to_string(), msg: e.to_string() })?;
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(Error::invalid("out_dir", format!("{} is a file, not a folder; give a folder for the task files", out_dir.display())));
    }
    let wanted = |v: &str| only.is_none_or(|names| names.iter().any(|n| n == v));
    let variants: Vec<&str> = VARIANTS.iter().copied().filter(|v| reference["variants"].get(*v).is_some() && wanted(v)).collect();
    let bad = |msg: String| Error::Format { path: reference_path.display().to_string(), msg };
    let seeds_of = |v: &Value| -> Vec<u64> { v["test_top1_over_seeds"]["seeds"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default() };
    claim_out_dir(out_dir, &variants.iter().map(|v| (v.to_string(), seeds_of(&reference["variants"][*v]))).collect::<Vec<_>>())?;
    let mut rows = Vec::new();
    for variant in variants {
        let v = &reference["variants"][variant];
        let cfg = variant_config(dir, out_dir, variant, v, &reference["methods"]["options"], epochs, precision).map_err(bad)?;
        let main_seed = cfg.seed;
        let mut seeds = vec![main_seed];
        if all_seeds {
            seeds.extend(seeds_of(v).into_iter().filter(|&s| s != main_seed));
        }
        let mut ours = Vec::new();
        for &seed in &seeds {
            let out = if seed == main_seed { cfg.out.clone() } else { seed_task_path(out_dir, variant, seed) };
            let cfg = TrainConfig { seed, out, ..cfg.clone() };
            observer.start(&format!("— {variant}: {}, base lr {}, {} epochs, seed {seed} —", describe(&cfg, v), cfg.base_lr, cfg.epochs));
            ours.push(fit(gpu, &cfg, observer)?.val_accuracy);
        }
        let task = TensorFile::read(&cfg.out)?;
        let torch: Vec<f64> = v["test_top1_over_seeds"]["top1"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        rows.push(DemoRow { variant: variant.to_string(), trainable: task.total_elements(), ours, torch, task_file: cfg.out.clone() });
    }
    Ok(rows)
}

/// What the variant trains: "5 prompts × 4 layers and the head", "every bias and the head".
fn describe(cfg: &TrainConfig, v: &Value) -> String {
    cfg.method.describe(cfg.num_prompts, depth_of(v))
}

/// Where a run with another seed than the recipe's writes its task.
fn seed_task_path(out_dir: &Path, variant: &str, seed: u64) -> String {
    out_dir.join(format!("{variant}.seed-{seed}.safetensors")).display().to_string()
}

/// Marks a folder the demo writes into, so that a later demo may replace what it wrote there.
const MARKER: &str = ".vpt-demo";

/// Make `out_dir` the demo's: a new or empty-of-demo-names folder is taken (and marked); one that
/// holds a demo's earlier outputs is taken again; one that holds files of those names the demo
/// did not write is refused, so that the demo never replaces a file of the user's.
fn claim_out_dir(out_dir: &Path, variants: &[(String, Vec<u64>)]) -> Result<()> {
    crate::train::outputs::make_output_folder("out_dir", out_dir)?;
    let ours = out_dir.join(MARKER).exists();
    let tasks = variants.iter().flat_map(|(v, seeds)| std::iter::once(out_dir.join(format!("{v}.safetensors")).display().to_string()).chain(seeds.iter().map(|&s| seed_task_path(out_dir, v, s))));
    let outputs = tasks.flat_map(|task| [crate::train::outputs::resume_path(&task), crate::train::outputs::metrics_path(&task), task]);
    if let Some(theirs) = outputs.filter(|p| Path::new(p).exists()).find(|_| !ours) {
        return Err(Error::invalid("out_dir", format!("{theirs} exists and was not written by a demo; choose another `out_dir`")));
    }
    std::fs::write(out_dir.join(MARKER), "vpt demo writes its task files here and replaces them on the next run\n")
        .map_err(|source| Error::Io { path: out_dir.join(MARKER).display().to_string(), source })
}

fn depth_of(v: &Value) -> usize {
    v["depth_p"].as_u64().unwrap_or(0) as usize
}

/// The reference's recipe for one variant as a `vpt train` configuration.
fn variant_config(dir: &Path, out_dir: &Path, variant: &str, v: &Value, options: &Value, epochs: Option<usize>, precision: Precision) -> std::result::Result<TrainConfig, String> {
    let hp = &v["hyperparameters"];
    // linear and the VPT variants have no "method": they are VPT with 0 or more prompts.
    // The reference's method options, under the settings' own names.
    let sizes = ["adapter_reduction", "lora_rank", "lora_alpha"].into_iter().filter_map(|key| options[key].as_f64().map(|v| (key, v)));
    let sizes = sizes.fold(MethodOptions::default(), |o, (key, v)| o.with(key, v));
    let method = Method::parse(v["method"].as_str().unwrap_or("prompt"), &sizes).map_err(|e: Error| format!("variants.{variant}.method: {e}"))?;
    let num = |key: &str| hp[key].as_f64().ok_or_else(|| format!("variants.{variant}.hyperparameters.{key} is missing"));
    let steps_per_epoch = num("steps_per_epoch")?.max(1.0);
    let folder = dir.join("digits-5to9");
    Ok(TrainConfig {
        model: dir.join("backbone.safetensors").display().to_string(),
        data: folder.join("train"),
        // The reference trains on all of train/ and reports test/: so does the demo.
        val: Some(folder.join("test")),
        root: None,
        train_on_val: false,
        out: out_dir.join(format!("{variant}.safetensors")).display().to_string(),
        num_prompts: v["num_prompts"].as_u64().unwrap_or(0) as usize,
        depth: Depth::Layers(depth_of(v)),
        pool: Pool::Cls,
        epochs: epochs.unwrap_or(num("epochs")? as usize),
        batch: num("batch")? as usize,
        base_lr: num("base_lr")?,
        warmup_epochs: (num("warmup_steps")? / steps_per_epoch).round() as usize,
        optimizer: Optimizer::sgd(num("weight_decay")? as f32),
        seed: v["seed"].as_u64().unwrap_or(0),
        img_size: None,
        // Digits are not mirror-symmetric: the reference trains without flips.
        flip: false,
        prompt_dropout: 0.0,
        norm: None,
        num_heads: None,
        resume: false,
        // The demo starts afresh each time: its own task files from an earlier demo are replaced
        // (`claim_out_dir` has made sure that is all there is to replace).
        force: true,
        plan: BlockPlan::default(),
        precision,
        method,
    })
}

/// The table, as printed after training: ours and PyTorch's, each as mean ± standard deviation
/// (min–max) over its runs (one run of ours without `--seeds`).
pub fn format_table(rows: &[DemoRow]) -> String {
    let mut out = String::from("\nmethod      trainable   vpt-wgsl top-1                      PyTorch top-1                       task file\n");
    for r in rows {
        out.push_str(&format!("{:<11} {:>9}   {:<34}  {:<34}  {}\n", r.variant, r.trainable, spread(&r.ours), spread(&r.torch), r.task_file));
    }
    out
}

/// "84.4%" for one run; "81.1 ± 2.4% (77.7–84.4%, 5 seeds)" for several.
fn spread(top1: &[f64]) -> String {
    let pct: Vec<f64> = top1.iter().map(|v| 100.0 * v).collect();
    match pct.len() {
        0 => "—".to_string(),
        1 => format!("{:.1}%", pct[0]),
        n => {
            let mean = pct.iter().sum::<f64>() / n as f64;
            let std = (pct.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            let (min, max) = pct.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            format!("{mean:.1} ± {std:.1}% ({min:.1}–{max:.1}%, {n} seeds)")
        }
    }
}

/// Where the bundled demo lives: `fixtures/demo` under the current directory or the crate.
pub fn default_dir() -> PathBuf {
    crate::io::bundled("fixtures/demo")
}
