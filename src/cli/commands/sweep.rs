//! `vpt sweep`: the paper's learning-rate × weight-decay search, the best pair refit on
//! train + val, evaluated on --test; then the table and where the files are.

use crate::cli::args::commands::SweepArgs;
use crate::cli::progress::ProgressBar;
use crate::cli::settings::default_gpu;
use vpt_wgsl::train::sweep::{self, SweepOptions};
use vpt_wgsl::Result;

pub fn run(a: &SweepArgs) -> Result<()> {
    let grid = a.search.grid();
    // The recipe's own rate only has to be valid: each pair of the grid replaces it.
    let first = grid.first();
    let recipe = a.recipe.config(std::path::Path::new(""), a.method.method()?, first.lr, first.wd, a.resume, a.force)?;
    let options = SweepOptions { grid, test: a.search.test.clone(), keep_runs: a.keep_runs };
    let gpu = default_gpu()?;
    let mut bar = ProgressBar::new().stopping_on_ctrl_c();
    let record = sweep::sweep(&gpu, &recipe, &options, &a.out_dir, &mut bar)?;
    bar.finish();
    print!("{}", sweep::table(&record.runs));
    if let Some(best) = sweep::best(&record.runs) {
        println!("best: {} ({:.2}% validation top-1), refit on train + val into {}", best.pair, best.val_top1().unwrap_or(f64::NAN), sweep::best_path(&a.out_dir));
    }
    if let Some(test) = &record.test {
        println!("test top-1: {:.2}% on {} images", test.top1, test.images);
    }
    println!("report: {0}/sweep.json, {0}/sweep.svg", a.out_dir.display());
    Ok(())
}
