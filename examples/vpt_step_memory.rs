//! Memory and time of one VPT-deep training step on a full-size ViT-B/16 (synthetic weights):
//! what the frozen weights take, what the forward keeps for backward, and the peak.
//!
//!     cargo run --release --example vpt_step_memory -- [BATCH] [PROMPTS] [ATTENTION] [RECOMPUTE]
//!
//! Defaults: 8 50 auto none. ATTENTION is auto, fused or unfused; RECOMPUTE none, mlp or block
//! (the `--attention` and `--recompute` of `vpt train`).
//!
//! Bytes are those of tensor storage buffers (our allocator's accounting); uniform and staging
//! buffers (a few KiB per dispatch) are not counted. benches/pytorch_vpt_memory.py measures
//! what PyTorch keeps for the same step.

use std::time::Instant;

use vpt_wgsl::graph::Graph;
use vpt_wgsl::model::plan::{AttentionChoice, BlockPlan, Recompute};
use vpt_wgsl::model::synthetic::{synthetic_tensor, synthetic_vit_state_dict};
use vpt_wgsl::model::vit::{LoadOptions, StateDict, Vit, VitConfig};
use vpt_wgsl::model::vpt::{vpt_logits, Pool, TaskVars, VptTask};
use vpt_wgsl::{Error, Gpu, Labels, Result, Tensor};

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The process's resident memory now and its peak so far (VmRSS, VmHWM of /proc/self/status), on
/// Linux; on lavapipe the device's buffers are host memory and count here too.
fn resident() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Option<u64> { status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok() };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(now), Some(peak)) => format!("resident {} (peak so far {})", mib(now * 1024), mib(peak * 1024)),
        _ => "resident memory: not readable here (/proc/self/status)".into(),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: usize| -> Result<usize> { args.get(i).map_or(Ok(default), |a| a.parse().map_err(|_| Error::invalid("vpt_step_memory", format!("{a:?}: BATCH and PROMPTS are numbers")))) };
    let (batch, prompts) = (number(0, 8)?, number(1, 50)?);
    let plan = BlockPlan { attention: args.get(2).map_or(Ok(AttentionChoice::Auto), |a| a.parse())?, recompute: args.get(3).map_or(Ok(Recompute::None), |a| a.parse())?, max_images: None };
    let gpu = Gpu::new()?;
    let at_start = resident();
    let cfg = VitConfig::from_preset("vit_base_patch16_224")?;
    let sd = StateDict::from_tensors("synthetic ViT-B/16", synthetic_vit_state_dict(&cfg, 0, 1234), [("num_heads".into(), "12".into())].into());
    // Loaded as `vpt train` loads it: with the transposed copies its backward reads, where this
    // adapter takes them.
    let mut vit = Vit::from_state_dict(&gpu, &sd, &LoadOptions { dx_copies: true, texel_copies: true, ..LoadOptions::default() })?;
    vit.plan = plan;
    drop(sd);
    gpu.wait_for_all()?; // the uploads and the copies into texels have run
    let weights = gpu.live_bytes();
    let at_load = resident();

    let (d, depth, classes) = (768, 12, 10);
    let task = VptTask {
        prompts: Some(Tensor::from_slice(&gpu, &[depth, prompts, d], &synthetic_tensor("vpt.prompts", &[depth, prompts, d], 1))?),
        head_weight: Tensor::from_slice(&gpu, &[classes, d], &synthetic_tensor("vpt.head.weight", &[classes, d], 1))?,
        head_bias: Tensor::zeros(&gpu, &[classes])?,
        pool: Pool::Cls,
        tuned: Default::default(),
    };
    let images = Tensor::from_slice(&gpu, &[batch, 3, 224, 224], &synthetic_tensor("batch.images", &[batch, 3, 224, 224], 1))?;
    let labels = Labels::new(&gpu, &(0..batch as u32).map(|i| i % classes as u32).collect::<Vec<_>>(), classes)?;
    gpu.flush()?;
    let before_step = gpu.live_bytes();
    gpu.reset_peak_bytes();
    let before = resident();

    let t = Instant::now();
    let g = Graph::new(&gpu);
    let vars = TaskVars::params(&g, &task);
    let logits = vpt_logits(&g, &vit, &task, &vars, &images, None)?;
    let loss = g.cross_entropy(&logits, &labels)?;
    let loss_value = loss.value().to_scalar()?;
    let forward_s = t.elapsed().as_secs_f64();
    let after_forward = resident();
    let kept = gpu.live_bytes() - before_step;
    let recorded = g.tape_ops().len();
    let t = Instant::now();
    let grads = g.backward(&loss)?;
    let grad_prompts = grads.get(vars.prompts.as_ref().unwrap()).unwrap().to_vec()?;
    let backward_s = t.elapsed().as_secs_f64();

    println!("adapter:                      {}", gpu.describe());
    let attention = if vit.fused_attention() { "fused" } else { "unfused" };
    println!(
        "step:                         ViT-B/16 at 224, batch {batch}, {prompts} deep prompts (VPT-deep), {attention} attention, recompute {:?}, loss {loss_value:.4}, |grad prompts| max {:.3e}",
        plan.recompute,
        grad_prompts.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    );
    println!("frozen weights:               {} ({} of them transposed copies for the backward, {} texels)", mib(weights), mib(vit.transposed_copy_bytes()), mib(vit.texel_bytes()));
    println!("kept by the forward for backward (activations, {} ops on the tape): {}", recorded, mib(kept));
    println!("peak during the step:         {} (weights and inputs included)", mib(gpu.peak_bytes()));
    println!("peak above weights and inputs: {}", mib(gpu.peak_bytes() - before_step));
    println!("time: forward {forward_s:.1} s, backward {backward_s:.1} s");
    println!("process, with the device: {at_start}; weights loaded {at_load}; before the step {before}; after the forward {after_forward}; after the backward {}", resident());
    if let Some(blocks) = gpu.driver_blocks() {
        println!(
            "wgpu's allocator after the step: {} blocks, {} reserved for {} of buffers (largest block {})",
            blocks.blocks,
            mib(blocks.reserved_bytes),
            mib(blocks.allocated_bytes),
            mib(blocks.largest_block_bytes)
        );
    }
    Ok(())
}
