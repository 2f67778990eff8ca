//! `vpt bench`: every kernel of a training step timed, as a table (or JSON).

use crate::cli::args::commands::BenchArgs;
use vpt_wgsl::Result;

pub fn run(a: &BenchArgs) -> Result<()> {
    vpt_wgsl::bench::run_and_print(&a.device.open()?, &a.options(), a.json)
}
