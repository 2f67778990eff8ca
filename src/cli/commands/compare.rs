//! `vpt compare`: each method trained with the same recipe, then the paper's table, JSON and plot.

use crate::cli::args::commands::CompareArgs;
use crate::cli::progress::ProgressBar;
use crate::cli::settings::default_gpu;
use vpt_wgsl::model::methods::method::Method;
use vpt_wgsl::train::compare;
use vpt_wgsl::{Error, Result};

pub fn run(a: &CompareArgs) -> Result<()> {
    // Each name is parsed as `--method` is, but given with --methods.
    let as_methods = |e| match e {
        Error::Invalid { what, msg } if what == "method" => Error::invalid("methods", msg),
        other => other,
    };
    let methods = a.methods.split(',').map(|m| a.sizes.parse(m.trim()).map_err(as_methods)).collect::<Result<Vec<Method>>>()?;
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
