//! Training: the learning-rate schedule of the official VPT code and the optimizer step that
//! updates a task's prompts and head on the GPU.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::Dropout;
use crate::kernels::optim::{self, AdamW, Sgd};
use crate::tensor::Tensor;
use crate::vit::Vit;
use crate::vpt::{vpt_step, VptTask};

/// KMnP/vpt's `WarmupCosineSchedule` (cycles 0.5): a linear warm-up from 0, then half a cosine
/// down to 0. `lr(step)` is the rate applied at `step`, counting from 0, so step 0 trains at 0
/// exactly as torch's LambdaLR does.
#[derive(Clone, Copy, Debug)]
pub struct WarmupCosine {
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl WarmupCosine {
    pub fn lr(&self, step: usize) -> f64 {
        let factor = if step < self.warmup_steps {
            step as f64 / (self.warmup_steps.max(1)) as f64
        } else {
            let progress = (step - self.warmup_steps) as f64 / (self.total_steps.saturating_sub(self.warmup_steps).max(1)) as f64;
            (0.5 * (1.0 + (std::f64::consts::PI * 2.0 * 0.5 * progress).cos())).max(0.0)
        };
        self.base_lr * factor
    }
}

/// Which update rule, with its settings (the learning rate comes from the schedule).
#[derive(Clone, Copy, Debug)]
pub enum Optimizer {
    Sgd { momentum: f32, weight_decay: f32 },
    AdamW { beta1: f32, beta2: f32, eps: f32, weight_decay: f32 },
}

/// Optimizer state for one task's trainable tensors (prompts, head weight, head bias).
pub struct Trainer {
    pub optimizer: Optimizer,
    pub schedule: WarmupCosine,
    /// SGD momentum buffers or AdamW's (m, v), one per trained tensor, zeros at the start.
    state: Vec<(Tensor, Option<Tensor>)>,
    step: usize,
}

impl Trainer {
    pub fn new(gpu: &Gpu, task: &VptTask, optimizer: Optimizer, schedule: WarmupCosine) -> Result<Trainer> {
        let adam = matches!(optimizer, Optimizer::AdamW { .. });
        let state = trained_tensors(task)
            .iter()
            .map(|t| Ok((Tensor::zeros(gpu, t.shape())?, if adam { Some(Tensor::zeros(gpu, t.shape())?) } else { None })))
            .collect::<Result<Vec<_>>>()?;
        Ok(Trainer { optimizer, schedule, state, step: 0 })
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// One forward, backward and update on a batch; returns the loss of the forward (before the update).
    pub fn train_step(&mut self, gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32], dropout: Option<Dropout>) -> Result<f32> {
        Ok(self.train_step_with_logits(gpu, vit, task, images, labels, dropout)?.0)
    }

    /// [`Trainer::train_step`], also returning the forward's logits [B, C] (for accuracy).
    pub fn train_step_with_logits(&mut self, gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32], dropout: Option<Dropout>) -> Result<(f32, Tensor)> {
        let out = vpt_step(gpu, vit, task, images, labels, dropout)?;
        let grads: Vec<&Tensor> = out.grad_prompts.iter().chain([&out.grad_head_weight, &out.grad_head_bias]).collect();
        let lr = self.schedule.lr(self.step) as f32;
        for ((param, grad), (s1, s2)) in trained_tensors(task).into_iter().zip(grads).zip(&self.state) {
            match self.optimizer {
                Optimizer::Sgd { momentum, weight_decay } => optim::sgd_step(param, grad, s1, Sgd { lr, momentum, weight_decay, nesterov: false })?,
                Optimizer::AdamW { beta1, beta2, eps, weight_decay } => {
                    let v = s2.as_ref().expect("AdamW state has v");
                    optim::adamw_step(param, grad, s1, v, self.step as u32 + 1, AdamW { lr, beta1, beta2, eps, weight_decay })?
                }
            }
        }
        self.step += 1;
        Ok((out.loss.to_scalar()?, out.logits))
    }

    /// The optimizer's state tensors, in a fixed order (for the resume file).
    pub fn state_tensors(&self) -> Vec<Tensor> {
        self.state.iter().flat_map(|(a, b)| std::iter::once(a.clone()).chain(b.clone())).collect()
    }

    /// Continue from a saved state: `step` steps taken, `tensors` as [`Trainer::state_tensors`] gave them.
    pub fn restore(&mut self, step: usize, tensors: &[Vec<f32>]) -> Result<()> {
        let mine = self.state_tensors();
        if tensors.len() != mine.len() {
            return Err(crate::Error::shape("Trainer::restore", format!("{} state tensors for {} expected", tensors.len(), mine.len())));
        }
        let gpu = mine[0].gpu().clone();
        let mut fresh = tensors.iter().zip(&mine).map(|(data, t)| Tensor::from_slice(&gpu, t.shape(), data));
        for (a, b) in self.state.iter_mut() {
            *a = fresh.next().expect("counted")?;
            if b.is_some() {
                *b = Some(fresh.next().expect("counted")?);
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The tensors a task trains, in a fixed order: prompts (if any), head weight, head bias.
fn trained_tensors(task: &VptTask) -> Vec<&Tensor> {
    task.prompts.iter().chain([&task.head_weight, &task.head_bias]).collect()
}
