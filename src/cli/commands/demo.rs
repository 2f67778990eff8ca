//! `vpt demo`: every method on the bundled digits, beside PyTorch's spread over five seeds.

use crate::cli::args::commands::DemoArgs;
use crate::cli::progress::ProgressBar;
use crate::cli::settings::default_gpu;
use vpt_wgsl::Result;

pub fn run(a: &DemoArgs) -> Result<()> {
    let gpu = default_gpu()?;
    let dir = a.dir.clone().unwrap_or_else(vpt_wgsl::demo::default_dir);
    let start = std::time::Instant::now();
    let mut bar = ProgressBar::new();
    let rows = vpt_wgsl::demo::run_demo(&gpu, &dir, &a.out_dir, a.epochs, a.precision.precision, a.seeds, a.variants.as_deref(), &mut bar)?;
    bar.finish();
    print!("{}", vpt_wgsl::demo::format_table(&rows));
    println!("\nbackbone pretrained on digits 0–4, tuned on digits 5–9 (test: {}), on {} in {:.0} s", dir.join("digits-5to9/test").display(), gpu.describe(), start.elapsed().as_secs_f64());
    Ok(())
}
