//! `vpt tune`: time every candidate of each kernel choice and write the winners to this
//! adapter's tune cache.

use crate::cli::args::commands::TuneArgs;
use vpt_wgsl::Result;

pub fn run(a: &TuneArgs) -> Result<()> {
    let gpu = a.device.open()?;
    eprintln!("tuning on {}: every candidate of each kernel choice, {} timed runs each", gpu.describe(), a.reps);
    let (choices, measured) = vpt_wgsl::bench::tune::tune(&gpu, &a.options(), |r| eprint!("\r{:<60}", format!("{} {}", r.kernel, r.variant)))?;
    eprintln!();
    println!("{:<32} {:<12} {:>12}   (the others)", "choice", "fastest", "median");
    for m in &measured {
        println!("{}", m.line());
    }
    let path = vpt_wgsl::bench::tune::write_cache(&gpu, &choices)?;
    println!("wrote {} ({} choices); every command on this adapter now uses them", path.display(), choices.choices.len());
    Ok(())
}
