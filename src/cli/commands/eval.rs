//! `vpt eval`: top-1 and per-class accuracy of a task on a folder of images.

use crate::cli::args::commands::EvalArgs;
use crate::cli::settings::{default_gpu, text};
use vpt_wgsl::train::evaluate::evaluate_task_file;
use vpt_wgsl::Result;

pub fn run(a: &EvalArgs) -> Result<()> {
    let gpu = default_gpu()?;
    let opts = a.model.load_options(None, None);
    let result = evaluate_task_file(&gpu, &text(&a.model.model), &opts, &text(&a.task), &a.data, a.root.as_deref(), a.batch)?;
    if !result.skipped.is_empty() {
        eprintln!("{}", vpt_wgsl::train::data::skipped_warning(&result.skipped));
    }
    println!("top-1 accuracy: {:.2}% on {} images", 100.0 * result.evaluation.top1, result.images);
    for (name, (correct, total)) in result.classes.iter().zip(&result.evaluation.per_class) {
        println!("  {name:<24} {:6.2}%  ({correct}/{total})", 100.0 * *correct as f64 / (*total).max(1) as f64);
    }
    Ok(())
}
