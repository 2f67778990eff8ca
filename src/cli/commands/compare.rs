//! `vpt compare`: each method trained with the same recipe (or each with its own sweep), then the
//! paper's table, JSON and plot.

use crate::cli::args::commands::CompareArgs;
use crate::cli::progress::ProgressBar;
use crate::cli::settings::default_gpu;
use vpt_wgsl::model::methods::method::Method;
use vpt_wgsl::train::compare::{self, CompareOptions};
use vpt_wgsl::{Error, Result};

pub fn run(a: &CompareArgs) -> Result<()> {
    // Each name is parsed as `--method` is, but given with --methods.
    let as_methods = |e| match e {
        Error::Invalid { what, msg } if what == "method" => Error::invalid("methods", msg),
        other => other,
    };
    let methods = a.methods.split(',').map(|m| a.sizes.parse(m.trim()).map_err(as_methods)).collect::<Result<Vec<Method>>>()?;
    let (lr, wd, search) = match a.sweep {
        true => {
            let grid = a.search.grid();
            // The recipe's own rate only has to be valid: each pair of the grid replaces it.
            (grid.first().lr, grid.first().wd, Some(grid))
        }
        false => (one(&a.search.lr, "lr", 0.5)?, one(&a.search.wd, "wd", 1e-4)?, None),
    };
    let recipe = a.recipe.config(std::path::Path::new(""), Method::prompt(), lr, wd, false, a.force)?;
    let gpu = default_gpu()?;
    let mut bar = ProgressBar::new().stopping_on_ctrl_c();
    let options = CompareOptions { grid: search, test: a.search.test.clone() };
    let rows = compare::compare(&gpu, &recipe, &methods, &a.out_dir, &options, &mut bar)?;
    bar.finish();
    compare::write_report(&rows, &a.out_dir)?;
    print!("{}", compare::table(&rows));
    println!("report: {0}/compare.json, {0}/compare.svg", a.out_dir.display());
    Ok(())
}

/// The one value of `--lr` or `--wd` without --sweep (its default when not given).
fn one<T: Copy + std::fmt::Display>(values: &Option<Vec<T>>, what: &str, default: T) -> Result<T> {
    match values.as_deref() {
        None => Ok(default),
        Some([value]) => Ok(*value),
        Some(list) => Err(Error::invalid(what, format!("takes one value without `sweep` ({} given); pass `sweep` to search them all", list.len()))),
    }
}
