//! `vpt check`: every kernel and variant on this adapter against PyTorch and f64; non-zero exit
//! if any comparison fails.

use crate::cli::args::commands::CheckArgs;
use vpt_wgsl::Result;

pub fn run(a: &CheckArgs) -> Result<()> {
    let gpu = a.device.open_untuned()?;
    if let Some(dir) = &a.wgsl_dir {
        gpu.use_wgsl_dir(dir)?;
    }
    println!("checking every kernel on {}", gpu.describe());
    println!("{:<5} {:<28} {:<30} {:<8} {:>9}  tolerance  device", "", "kernel", "case", "against", "error");
    let rows = vpt_wgsl::check::run_all(&gpu, |row| println!("{}", row.line()))?;
    let failed = rows.iter().filter(|r| r.failed()).count();
    let skipped = rows.iter().filter(|r| r.skipped.is_some()).count();
    let ran = rows.len() - skipped;
    let skips = if skipped > 0 { format!(" ({skipped} skipped: this adapter lacks what they need)") } else { String::new() };
    println!("{} of {ran} comparisons within tolerance{skips}", ran - failed);
    if failed > 0 {
        return Err(vpt_wgsl::Error::invalid("check", format!("{failed} of {ran} comparisons failed on {} (the FAIL lines above)", gpu.describe())));
    }
    Ok(())
}
