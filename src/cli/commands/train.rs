//! `vpt train`: a whole run of the recipe, the task file written after every epoch.

use crate::cli::args::commands::TrainArgs;
use crate::cli::progress::ProgressBar;
use crate::cli::settings::default_gpu;
use vpt_wgsl::train::fit;
use vpt_wgsl::Result;

pub fn run(a: &TrainArgs) -> Result<()> {
    let cfg = a.recipe.config(&a.out, a.method.method()?, a.rates.lr, a.rates.wd, a.resume, a.force)?;
    let gpu = default_gpu()?;
    let mut bar = ProgressBar::new().stopping_on_ctrl_c();
    let last = fit::fit(&gpu, &cfg, &mut bar)?;
    bar.finish();
    println!("task written to {} (metrics: {}); validation accuracy {:.2}%", cfg.out, vpt_wgsl::train::outputs::metrics_path(&cfg.out), 100.0 * last.val_accuracy);
    Ok(())
}
