//! `vpt compare`: each method trained with the same recipe, then the paper's table, JSON and plot.

use crate::cli::args::commands::CompareArgs;
use crate::cli::progress::ProgressBar;
use crate::cli::settings::default_gpu;
use vpt_wgsl::model::methods::method::Method;
use vpt_wgsl::train::compare;
use vpt_wgsl::Result;

pub fn run(a: &CompareArgs) -> Result<()> {
    let methods = a.methods.split(',').map(|m| a.sizes.parse(m.trim())).collect::<Result<Vec<Method>>>()?;
    let recipe = a.recipe.config(std::path::Path::new(""), Method::prompt(), false, a.force)?;
    let gpu = default_gpu()?;
    let mut bar = ProgressBar::new().stopping_on_ctrl_c();
    let rows = compare::compare(&gpu, &recipe, &methods, &a.out_dir, &mut bar)?;
    bar.finish();
    compare::write_report(&rows, &a.out_dir)?;
    print!("{}", compare::table(&rows));
    println!("report: {0}/compare.json, {0}/compare.svg", a.out_dir.display());
    Ok(())
}
