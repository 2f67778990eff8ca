//! Where one VPT-deep training step's time goes: every kernel of its forward and of its backward
//! timed on the GPU (`Gpu::profile`), summed by kernel, against the host clock of each phase.
//! The gap between the two is what is not kernels: launches, submissions, waits, uploads.
//!
//!     cargo run --release --example step_profile -- [PRESET] [BATCH] [ATTENTION] [RECOMPUTE]
//!
//! Defaults: vit-b 8 auto none (PRESET vit-b or small, as `vpt bench --preset`). The step is `vpt bench`'s
//! (`StepSetup`: synthetic weights, 50 prompts in every block for vit-b, SGD), one untimed step
//! first. Timestamps on every pass cost a little: the phases' host times run a few percent over
//! `vpt bench`'s.

use std::collections::BTreeMap;
use std::time::Instant;

use vpt_wgsl::bench::{StepSetup, StepShape};
use vpt_wgsl::gpu::Profile;
use vpt_wgsl::model::plan::{AttentionChoice, BlockPlan, Recompute};
use vpt_wgsl::model::vit::Precision;
use vpt_wgsl::model::vpt::VptForward;
use vpt_wgsl::{Error, Gpu, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset = args.first().map_or("vit-b", String::as_str);
    let batch = args.get(1).map_or(Ok(8), |a| a.parse().map_err(|_| Error::invalid("step_profile", format!("{a:?}: BATCH is a number"))))?;
    let plan = BlockPlan { attention: args.get(2).map_or(Ok(AttentionChoice::Auto), |a| a.parse())?, recompute: args.get(3).map_or(Ok(Recompute::None), |a| a.parse())?, max_images: None };
    let gpu = Gpu::new()?;
    let shape = match preset {
        "vit-b" => StepShape::vit_b(batch),
        "small" => StepShape { batch, ..StepShape::small() },
        other => return Err(Error::invalid("step_profile", format!("{other:?}: PRESET is vit-b or small"))),
    };
    let StepSetup { vit, task, mut trainer, images, labels, .. } = StepSetup::new(&gpu, &shape, plan, Precision::F32, 2)?;
    println!("{}: {preset} batch {batch}, {plan:?}", gpu.describe());

    for timed in [false, true] {
        let t = Instant::now();
        let (forward, forward_profile) = gpu.profile(|| VptForward::new(&gpu, &vit, &task, &images, &labels, None))?;
        let forward_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (step, backward_profile) = gpu.profile(|| forward.backward())?;
        let backward_s = t.elapsed().as_secs_f64();
        trainer.apply(&task, &step)?;
        gpu.wait_for_all()?;
        if timed {
            report("forward", forward_s, &forward_profile);
            report("backward", backward_s, &backward_profile);
        }
    }
    Ok(())
}

/// The phase's kernels summed by name, largest first, and what the host clock saw beyond them.
fn report(phase: &str, host_s: f64, profile: &Profile) {
    let mut by_kernel: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for k in &profile.kernels {
        let entry = by_kernel.entry(k.name.as_str()).or_default();
        entry.0 += k.ns;
        entry.1 += 1;
    }
    let mut rows: Vec<_> = by_kernel.into_iter().collect();
    rows.sort_by_key(|(_, (ns, _))| std::cmp::Reverse(*ns));
    let kernels_s = profile.total_ns() as f64 / 1e9;
    println!("\n{phase}: host clock {host_s:.2} s, kernels {kernels_s:.2} s ({}, {} launches), not kernels {:.2} s", profile.method.name(), profile.kernels.len(), host_s - kernels_s);
    for (name, (ns, count)) in rows {
        println!("  {:<48} {:>5} × {:>9.1} ms = {:>8.1} ms  {:>5.1}%", name, count, ns as f64 / 1e6 / count as f64, ns as f64 / 1e6, 100.0 * ns as f64 / profile.total_ns() as f64);
    }
}
