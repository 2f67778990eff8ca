//! `vpt demo`: the bundled demonstration. A small ViT pretrained by us (fixtures/make_demo.py) on
//! scikit-learn's handwritten digits 0–4 is prompt-tuned on the digits 5–9, three ways: linear
//! probe, VPT-shallow and VPT-deep, with the recipe the PyTorch reference used (read from
//! fixtures/demo/pytorch_reference.json), and the test accuracies are printed beside PyTorch's.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::block::BlockPlan;
use crate::model::vit::Precision;
use crate::train::fit::{fit, Depth, EpochSummary, Observer, TrainConfig};
use crate::train::Optimizer;
use crate::gpu::Gpu;
use crate::model::vpt::Pool;

/// One row of the table.
pub struct DemoRow {
    pub variant: String,
    pub trainable: usize,
    pub ours: EpochSummary,
    pub torch_top1: f64,
    pub torch_seed_range: (f64, f64),
    pub task_file: String,
}

/// The variants, in the order the paper's table lists them.
pub const VARIANTS: [&str; 3] = ["linear", "shallow", "deep"];

/// Train the three variants from `dir` (fixtures/demo) into `out_dir`. `epochs` overrides the
/// reference recipe's (for a quick look); the comparison is only like for like without it.
pub fn run_demo(gpu: &Gpu, dir: &Path, out_dir: &Path, epochs: Option<usize>, precision: Precision, observer: &mut dyn Observer) -> Result<Vec<DemoRow>> {
    let reference_path = dir.join("pytorch_reference.json");
    if !reference_path.is_file() {
        return Err(Error::invalid("--dir", format!("{:?} is not a demo folder (it has no pytorch_reference.json); leave --dir out to use the bundled demo", dir.display().to_string())));
    }
    if out_dir.as_os_str().is_empty() {
        return Err(Error::invalid("--out-dir", "is empty; give the folder for the three task files"));
    }
    let text = std::fs::read_to_string(&reference_path).map_err(|source| Error::Io { path: reference_path.display().to_string(), source })?;
    let reference: Value = serde_json::from_str(&text).map_err(|e| Error::Format { path: reference_path.display().to_string(), msg: e.to_string() })?;
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(Error::invalid("--out-dir", format!("{} is a file, not a folder; give a folder for the three task files", out_dir.display())));
    }
    claim_out_dir(out_dir)?;
    let mut rows = Vec::new();
    for variant in VARIANTS {
        let v = &reference["variants"][variant];
        let cfg = variant_config(dir, out_dir, variant, v, epochs, precision).map_err(|msg| Error::Format { path: reference_path.display().to_string(), msg })?;
        observer.start(&format!("— {variant}: {} prompts × {} layers, base lr {}, {} epochs —", cfg.num_prompts, depth_of(v), cfg.base_lr, cfg.epochs));
        let ours = fit(gpu, &cfg, observer)?;
        let seeds = &v["test_top1_over_seeds"];
        rows.push(DemoRow {
            variant: variant.to_string(),
            trainable: v["trainable_params"].as_u64().unwrap_or(0) as usize,
            ours,
            torch_top1: v["test_top1"].as_f64().unwrap_or(f64::NAN),
            torch_seed_range: (seeds["min"].as_f64().unwrap_or(f64::NAN), seeds["max"].as_f64().unwrap_or(f64::NAN)),
            task_file: cfg.out.clone(),
        });
    }
    Ok(rows)
}

/// Marks a folder the demo writes into, so that a later demo may replace what it wrote there.
const MARKER: &str = ".vpt-demo";

/// Make `out_dir` the demo's: a new or empty-of-demo-names folder is taken (and marked); one that
/// holds a demo's earlier outputs is taken again; one that holds files of those names the demo
/// did not write is refused, so that the demo never replaces a file of the user's.
fn claim_out_dir(out_dir: &Path) -> Result<()> {
    let io_err = |source| Error::Io { path: out_dir.display().to_string(), source };
    std::fs::create_dir_all(out_dir).map_err(io_err)?;
    let ours = out_dir.join(MARKER).exists();
    let outputs = VARIANTS.iter().flat_map(|v| {
        let task = out_dir.join(format!("{v}.safetensors")).display().to_string();
        [crate::train::outputs::resume_path(&task), crate::train::outputs::metrics_path(&task), task]
    });
    if let Some(theirs) = outputs.filter(|p| Path::new(p).exists()).find(|_| !ours) {
        return Err(Error::invalid("--out-dir", format!("{theirs} exists and was not written by a demo; choose another --out-dir")));
    }
    std::fs::write(out_dir.join(MARKER), "vpt demo writes its task files here and replaces them on the next run\n").map_err(io_err)
}

fn depth_of(v: &Value) -> usize {
    v["depth_p"].as_u64().unwrap_or(0) as usize
}

/// The reference's recipe for one variant as a `vpt train` configuration.
fn variant_config(dir: &Path, out_dir: &Path, variant: &str, v: &Value, epochs: Option<usize>, precision: Precision) -> std::result::Result<TrainConfig, String> {
    let hp = &v["hyperparameters"];
    let num = |key: &str| hp[key].as_f64().ok_or_else(|| format!("variants.{variant}.hyperparameters.{key} is missing"));
    let steps_per_epoch = num("steps_per_epoch")?.max(1.0);
    let folder = dir.join("digits-5to9");
    Ok(TrainConfig {
        model: dir.join("backbone.safetensors").display().to_string(),
        data: folder.join("train"),
        // The reference trains on all of train/ and reports test/: so does the demo.
        val: Some(folder.join("test")),
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
    })
}

/// The table, as printed after training.
pub fn format_table(rows: &[DemoRow]) -> String {
    let mut out = String::from("\nmethod        trainable   vpt-wgsl top-1   PyTorch top-1 (5 seeds: min–max)   task file\n");
    for r in rows {
        out.push_str(&format!(
            "{:<13} {:>9}   {:>13.1}%   {:>12.1}%  ({:.1}–{:.1}%)          {}\n",
            r.variant,
            r.trainable,
            100.0 * r.ours.val_accuracy,
            100.0 * r.torch_top1,
            100.0 * r.torch_seed_range.0,
            100.0 * r.torch_seed_range.1,
            r.task_file
        ));
    }
    out
}

/// Where the bundled demo lives: `fixtures/demo` under the current directory or the crate.
pub fn default_dir() -> PathBuf {
    let here = PathBuf::from("fixtures/demo");
    if here.exists() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo")
    }
}
