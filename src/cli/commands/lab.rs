//! `vpt lab`: the traces (recorded now, or read from --traces), then the server, until stopped.

use std::io::Write;

use crate::cli::args::commands::LabArgs;
use vpt_wgsl::lab::server::Site;
use vpt_wgsl::lab::{web, Workload};
use vpt_wgsl::Result;

pub fn run(a: &LabArgs) -> Result<()> {
    let listener = vpt_wgsl::lab::server::bind(a.port)?;
    let traces = match &a.traces {
        Some(dir) => vpt_wgsl::lab::read_trace_folder(dir)?,
        None => {
            let gpu = a.device.open()?;
            let mut traces = Vec::new();
            for workload in Workload::ALL {
                eprintln!("recording {} on {}", workload.name(), gpu.describe());
                let recording = vpt_wgsl::lab::record(&gpu, workload)?;
                eprintln!("  {}", recording.summary);
                traces.push((recording.name, recording.bytes));
            }
            traces
        }
    };
    let package = a.web.clone().unwrap_or_else(web::default_package_dir);
    let (files, missing) = web::browser_files(&package, &vpt_wgsl::demo::default_dir())?;
    for what in missing {
        eprintln!("warning: {what}");
    }
    let address = listener.local_addr().map_err(|e| vpt_wgsl::Error::invalid("port", e.to_string()))?;
    let names: Vec<&str> = traces.iter().map(|(n, _)| n.as_str()).collect();
    println!(
        "vpt lab: serving {} at http://{address}/ — open it in a browser with WebGPU; add ?run=NAME to replay one at once. Train in the browser at http://{address}/train, check the kernels at http://{address}/check (Ctrl-C stops)",
        names.join(", ")
    );
    std::io::stdout().flush().ok();
    vpt_wgsl::lab::server::serve(listener, std::sync::Arc::new(Site { traces, files }))
}
