//! `vpt predict`: the top-k classes of images, from one or more tasks on one backbone.

use super::load::load_tasks;
use crate::cli::args::commands::PredictArgs;
use crate::cli::settings::default_gpu;
use vpt_wgsl::Result;

pub fn run(a: &PredictArgs) -> Result<()> {
    let gpu = default_gpu()?;
    let (vit, files) = load_tasks(&gpu, &a.model, &a.tasks)?;
    let results = vpt_wgsl::train::predict::predict(&gpu, &vit, &files, &a.images, a.top_k, a.batch)?;
    for (image, per_task) in a.images.iter().zip(results) {
        println!("{}", image.display());
        for (task, guesses) in a.tasks.iter().zip(per_task) {
            let shown: Vec<String> = guesses.iter().map(|g| format!("{} {:.1}%", g.class, 100.0 * g.probability)).collect();
            println!("  {}: {}", task.display(), shown.join(", "));
        }
    }
    Ok(())
}
