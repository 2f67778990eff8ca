//! `vpt eval`: top-1 and per-class accuracy of a task on a folder of images.

use super::load::load_tasks;
use crate::cli::args::commands::EvalArgs;
use crate::cli::settings::default_gpu;
use vpt_wgsl::train::data::{default_resize, ImageFolder, Transform};
use vpt_wgsl::Result;

pub fn run(a: &EvalArgs) -> Result<()> {
    let gpu = default_gpu()?;
    let (vit, files) = load_tasks(&gpu, &a.model, std::slice::from_ref(&a.task))?;
    let t = &files[0];
    let folder = ImageFolder::open_with_classes(&a.data, a.root.as_deref(), &t.classes)?;
    if !folder.skipped.is_empty() {
        eprintln!("{}", vpt_wgsl::train::data::skipped_warning(&folder.skipped));
    }
    let size = t.img_size.0;
    let result = vpt_wgsl::train::evaluate::evaluate(&gpu, &vit, &t.task, &folder.samples, Transform::Eval { size, resize: default_resize(size) }, t.norm, a.batch)?;
    println!("top-1 accuracy: {:.2}% on {} images", 100.0 * result.top1, folder.samples.len());
    for (name, (correct, total)) in t.classes.iter().zip(&result.per_class) {
        println!("  {name:<24} {:6.2}%  ({correct}/{total})", 100.0 * *correct as f64 / (*total).max(1) as f64);
    }
    Ok(())
}
