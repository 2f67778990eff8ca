//! The whole VPT-deep training step, timed: the same forward, backward and optimizer update
//! (`Trainer`) that `vpt train` runs, on a ViT with synthetic weights.

use std::time::Instant;

use super::cases::{median, random_label_values};
use super::{StepShape, TrainStepResult};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::plan::BlockPlan;
use crate::model::synthetic::{synthetic_tensor, synthetic_vit_state_dict};
use crate::model::vit::{LoadOptions, Precision, StateDict, Vit};
use crate::model::vpt::{Pool, VptForward, VptTask};
use crate::tensor::Tensor;
use crate::train::{Optimizer, Trainer, WarmupCosine};

/// Time a whole VPT-deep training step of `shape`: synthetic weights, `shape.prompts` prompts in
/// every block, a `shape.classes` head, SGD, the blocks run as `plan` says; `reps` timed steps
/// after one untimed. Host-clock time, each phase waited for, so it includes submission and sync.
pub fn train_step(gpu: &Gpu, shape: &StepShape, plan: BlockPlan, precision: Precision, reps: usize) -> Result<TrainStepResult> {
    let live_before = gpu.live_bytes();
    let StepSetup { vit, task, mut trainer, images, labels, weight_bytes } = StepSetup::new(gpu, shape, plan, precision, reps + 1)?;
    let cfg = &shape.vit;
    let (b, p, depth) = (shape.batch, shape.prompts, cfg.depth);
    let (h, w) = cfg.img_size;
    gpu.flush()?;

    let (mut fwd, mut bwd, mut opt, mut dispatches, mut kept_bytes) = (Vec::new(), Vec::new(), Vec::new(), 0, 0);
    let live_before_step = gpu.live_bytes();
    gpu.reset_peak_bytes();
    for rep in 0..=reps {
        let start_dispatches = gpu.dispatch_count();
        let t = Instant::now();
        let forward = VptForward::new(gpu, &vit, &task, &images, &labels, None)?;
        forward.loss().to_scalar()?; // waits for the forward
        let forward_s = t.elapsed().as_secs_f64();
        kept_bytes = gpu.live_bytes() - live_before_step;
        let t = Instant::now();
        let step = forward.backward()?;
        gpu.wait_for_all()?;
        let backward_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        trainer.apply(&task, &step)?;
        gpu.wait_for_all()?;
        let optimizer_s = t.elapsed().as_secs_f64();
        if rep > 0 {
            fwd.push(forward_s * 1e3);
            bwd.push(backward_s * 1e3);
            opt.push(optimizer_s * 1e3);
            dispatches = gpu.dispatch_count() - start_dispatches;
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        median(v)
    };
    let (forward_ms, backward_ms, optimizer_ms) = (med(&mut fwd), med(&mut bwd), med(&mut opt));
    Ok(TrainStepResult {
        images_per_second: b as f64 / ((forward_ms + backward_ms + optimizer_ms) / 1e3),
        forward_ms,
        backward_ms,
        optimizer_ms,
        dispatches,
        peak_bytes: gpu.peak_bytes() - live_before,
        kept_bytes,
        weight_bytes,
        copy_bytes: vit.transposed_copy_bytes(),
        texel_bytes: vit.texel_bytes(),
        description: format!(
            "VPT-deep step: {depth} blocks, {p} prompts each, {h}×{w} images (patch {}), batch {b}, {} attention, recompute {}, {} weights",
            cfg.patch_size,
            if vit.fused_attention() { "fused" } else { "unfused" },
            plan.recompute.name(),
            precision.name()
        ),
    })
}

/// What one VPT-deep training step of a [`StepShape`] needs: a ViT with synthetic weights, a task
/// (`shape.prompts` prompts in every block, a `shape.classes` head), SGD, and a batch of synthetic
/// images and labels. Deterministic: the same shape gives the same values.
pub struct StepSetup {
    pub vit: Vit,
    pub task: VptTask,
    pub trainer: Trainer,
    pub images: Tensor,
    pub labels: Vec<u32>,
    /// Bytes of the backbone's weights on the device.
    pub weight_bytes: u64,
}

impl StepSetup {
    /// Everything on `gpu`, the blocks run as `plan` says, the schedule `total_steps` long.
    pub fn new(gpu: &Gpu, shape: &StepShape, plan: BlockPlan, precision: Precision, total_steps: usize) -> Result<StepSetup> {
        shape.check()?;
        let cfg = &shape.vit;
        let live_before = gpu.live_bytes();
        let sd = StateDict::from_tensors("bench", synthetic_vit_state_dict(cfg, 0, 1), [("num_heads".to_string(), cfg.num_heads.to_string())].into());
        let mut vit = Vit::from_state_dict(gpu, &sd, &LoadOptions { precision, dx_copies: true, texel_copies: true, ..LoadOptions::default() })?;
        vit.plan = plan;
        drop(sd);
        let weight_bytes = gpu.live_bytes() - live_before;
        let (b, d, c, p, depth) = (shape.batch, cfg.embed_dim, shape.classes, shape.prompts, cfg.depth);
        let (h, w) = cfg.img_size;
        let task = VptTask {
            prompts: Some(Tensor::from_slice(gpu, &[depth, p, d], &synthetic_tensor("vpt.prompts", &[depth, p, d], 1))?),
            head_weight: Tensor::from_slice(gpu, &[c, d], &synthetic_tensor("vpt.head.weight", &[c, d], 1))?,
            head_bias: Tensor::zeros(gpu, &[c])?,
            pool: Pool::Cls,
            tuned: Default::default(),
        };
        let schedule = WarmupCosine { base_lr: 1e-3, warmup_steps: 0, total_steps };
        let trainer = Trainer::new(gpu, &task, Optimizer::sgd(1e-4), schedule)?;
        let images = Tensor::from_slice(gpu, &[b, 3, h, w], &synthetic_tensor("batch.images", &[b, 3, h, w], 1))?;
        let labels = random_label_values(b, c, 1);
        Ok(StepSetup { vit, task, trainer, images, labels, weight_bytes })
    }
}
