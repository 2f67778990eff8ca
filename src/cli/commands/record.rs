//! `vpt record`: run a workload with the trace recording, then write the trace file.

use std::path::PathBuf;

use crate::cli::args::commands::RecordArgs;
use crate::cli::settings::text;
use vpt_wgsl::lab::Workload;
use vpt_wgsl::train::outputs::check_new_output;
use vpt_wgsl::Result;

pub fn run(a: &RecordArgs) -> Result<()> {
    let workload: Workload = a.workload.parse()?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}.trace", workload.name())));
    let out_text = text(&out);
    check_new_output("out", &out_text, &[], a.force)?;
    let gpu = a.device.open()?;
    eprintln!("recording {} on {}", workload.name(), gpu.describe());
    let recording = vpt_wgsl::lab::record(&gpu, workload)?;
    vpt_wgsl::io::write_atomically(&out, &recording.bytes)?;
    println!("wrote {out_text}: {}", recording.summary);
    Ok(())
}
