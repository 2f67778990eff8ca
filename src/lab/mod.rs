//! `vpt record` and `vpt lab`: the engine's GPU work recorded once, then replayed by any browser.
//!
//! A trace ([`crate::gpu::Trace`], file format in `docs/trace.md`) holds every buffer, upload,
//! kernel launch (its WGSL exactly as compiled), copy and read-back of a workload, with the bytes
//! the engine read back. The page in `benches/browser/` replays it on the browser's WebGPU — its
//! own shader compiler (Chrome's Tint, Firefox's naga, Safari's) and whatever GPU the machine has —
//! compares every read-back with the recorded one, and times each kernel. It never re-implements
//! a launcher: it only replays what the engine did.
//!
//! Workloads ([`Workload`]):
//! - `kernels`: everything `vpt check` runs — every kernel family and variant, forward and
//!   backward, on the PyTorch fixtures' shapes and the f64 cases' awkward ones, with and without
//!   subgroups — so a replay checks each kernel against this adapter's results, which `vpt check`
//!   has just checked against PyTorch and f64.
//! - `step`: one VPT-deep training step (forward, backward, SGD update) of [`StepShape::tiny`]:
//!   its loss and the updated prompts are the read-backs a replay must match.
//!
//! `server.rs` is `vpt lab`'s small HTTP server; `web.rs` what it serves of the browser build
//! (`/train` and `/check`, where the engine itself runs in the page: `web/`).

pub mod server;
pub mod web;

use std::path::Path;
use std::str::FromStr;

use crate::bench::{StepSetup, StepShape};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::plan::BlockPlan;
use crate::model::vit::Precision;
use crate::model::vpt::VptForward;

/// What `vpt record` runs while recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Kernels,
    Step,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Kernels, Workload::Step];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Kernels => "kernels",
            Workload::Step => "step",
        }
    }
}

impl FromStr for Workload {
    type Err = Error;
    fn from_str(s: &str) -> Result<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s).ok_or_else(|| Error::invalid("WORKLOAD", format!("{s:?} is not a workload; use kernels or step")))
    }
}

/// A recorded trace, as the bytes of its file.
pub struct Recording {
    /// The file's name in `vpt lab` ("kernels" for `kernels.trace`).
    pub name: String,
    pub bytes: Vec<u8>,
    /// One line: what was recorded, on which adapter.
    pub summary: String,
}

/// Run `workload` on `gpu`, recording every GPU operation.
pub fn record(gpu: &Gpu, workload: Workload) -> Result<Recording> {
    gpu.flush()?;
    gpu.start_trace();
    let outcome = match workload {
        Workload::Kernels => record_kernels(gpu),
        Workload::Step => record_step(gpu),
    };
    // Stop recording whatever happened, so a failed run leaves no trace growing.
    let trace = gpu.take_trace()?.ok_or_else(|| Error::Gpu { op: "vpt record".into(), msg: "the trace was stopped by someone else".into() })?;
    let what = outcome?;
    let kernels: std::collections::BTreeSet<&str> = trace
        .ops
        .iter()
        .filter_map(|op| match op {
            crate::gpu::TraceOp::Dispatch { kernel, .. } => Some(kernel.as_str()),
            _ => None,
        })
        .collect();
    let bytes = trace.to_file_bytes(workload.name(), &gpu.describe());
    let summary = format!(
        "{}: {} launches of {} kernels, {} shaders, {:.1} MB ({what}), recorded on {}",
        workload.name(),
        trace.dispatches(),
        kernels.len(),
        trace.shaders.len(),
        bytes.len() as f64 / 1e6,
        gpu.describe()
    );
    Ok(Recording { name: workload.name().to_string(), bytes, summary })
}

/// Everything `vpt check` runs. Refuses to record results this adapter got wrong: a replay
/// compared with wrong values would prove nothing.
fn record_kernels(gpu: &Gpu) -> Result<String> {
    let rows = crate::check::run_all(gpu, |_| ())?;
    let failed: Vec<String> = rows.iter().filter(|r| r.failed()).map(|r| r.line()).collect();
    if !failed.is_empty() {
        return Err(Error::invalid(
            "vpt record kernels",
            format!("{} of {} checks fail on {}, so its results cannot serve as the replay's yardstick; run `vpt check` to see them:\n{}", failed.len(), rows.len(), gpu.describe(), failed.join("\n")),
        ));
    }
    Ok(format!("{} checks passed", rows.len()))
}

/// One VPT-deep training step of [`StepShape::tiny`]: the loss and the prompts after the SGD
/// update are read back (labelled "loss" and "prompts").
fn record_step(gpu: &Gpu) -> Result<String> {
    let shape = StepShape::tiny();
    let setup = StepSetup::new(gpu, &shape, BlockPlan::default(), Precision::F32, 1)?;
    let forward = VptForward::new(gpu, &setup.vit, &setup.task, &setup.images, &setup.labels, None)?;
    let loss = forward.loss().to_scalar()?;
    gpu.label_last_read("loss");
    let step = forward.backward()?;
    let mut trainer = setup.trainer;
    trainer.apply(&setup.task, &step)?;
    let prompts = setup.task.prompts.as_ref().expect("the step's task has prompts");
    prompts.to_vec()?;
    gpu.label_last_read("prompts");
    let cfg = &shape.vit;
    Ok(format!("loss {loss:.6}; {} blocks of width {}, {} prompts each, {}×{} images, batch {}", cfg.depth, cfg.embed_dim, shape.prompts, cfg.img_size.0, cfg.img_size.1, shape.batch))
}

/// The largest trace `vpt lab` reads (the kernels trace is about 7 MB).
const MAX_TRACE_BYTES: u64 = 1 << 30;

/// Read a trace file written by `vpt record`, checking its header: (name, bytes). Only a regular
/// file of at most [`MAX_TRACE_BYTES`] is read (a FIFO would block for ever, a link to
/// `/dev/zero` never end), and no more bytes than it had when looked at.
pub fn read_trace_file(path: &Path) -> Result<(String, Vec<u8>)> {
    let bad = |why: String| Error::invalid("traces", format!("{} is not a trace written by `vpt record`: {why}", path.display()));
    let bytes = crate::io::read_regular_file(path, MAX_TRACE_BYTES).map_err(|why| bad(format!("it {why}")))?;
    let Some(len) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))) else {
        return Err(bad("shorter than its 8-byte header".into()));
    };
    let json = usize::try_from(len).ok().and_then(|n| bytes.get(8..8usize.checked_add(n)?)).ok_or_else(|| bad(format!("its header announces {len} bytes of JSON, more than the file holds")))?;
    let manifest: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(format!("its manifest is not JSON ({e})")))?;
    if manifest["format"] != "vpt-trace 1" {
        return Err(bad(format!("its format is {}, not \"vpt-trace 1\"", manifest["format"])));
    }
    check_blob(&manifest, (bytes.len() - 8 - json.len()) as u64).map_err(bad)?;
    let name = path.file_stem().and_then(|s| s.to_str()).filter(|s| server::is_plain_name(s)).ok_or_else(|| bad("its name must be letters, digits, '-' or '_' before .trace".into()))?;
    Ok((name.to_string(), bytes))
}

/// The blob after the manifest holds what the manifest declares: `blob_bytes` bytes, and every
/// op's `data` range inside them. A trace cut short (or padded) would replay with bytes that were
/// never recorded, or fail half-way in the browser; here it is refused by name.
fn check_blob(manifest: &serde_json::Value, blob_len: u64) -> std::result::Result<(), String> {
    let declared = manifest["blob_bytes"].as_u64().ok_or("its manifest has no blob_bytes")?;
    if declared != blob_len {
        return Err(format!("its manifest declares {declared} bytes of data but {blob_len} follow it: cut short or altered; record it again"));
    }
    for (i, op) in manifest["ops"].as_array().ok_or("its manifest has no ops")?.iter().enumerate() {
        let Some(range) = op.get("data") else { continue };
        let (offset, len) = (range[0].as_u64(), range[1].as_u64());
        let fits = matches!((offset, len), (Some(o), Some(n)) if o.checked_add(n).is_some_and(|end| end <= blob_len));
        if !fits {
            return Err(format!("op {i} ({}) reads data {range} outside the {blob_len} bytes of data; record it again", op["op"]));
        }
    }
    Ok(())
}

/// Every `.trace` file in `dir`, checked.
pub fn read_trace_folder(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::invalid("traces", format!("cannot list {}: {e}", dir.display())))?;
    let mut paths: Vec<std::path::PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "trace")).collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::invalid("traces", format!("{} holds no .trace files; write some there with `vpt record`", dir.display())));
    }
    paths.iter().map(|p| read_trace_file(p)).collect()
}
