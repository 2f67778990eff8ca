//! The optimizer step that updates a task's prompts and head on the GPU (SGD with momentum, or
//! AdamW), with its state, at the rate the schedule (`schedule.rs`) gives each step.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::Dropout;
use crate::kernels::optim::{self, AdamW, Sgd};
use crate::tensor::Tensor;
use super::schedule::WarmupCosine;
use crate::model::vit::Vit;
use crate::model::vpt::{vpt_step, VptStep, VptTask};

/// Which update rule, with its settings (the learning rate comes from the schedule).
#[derive(Clone, Copy, Debug)]
pub enum Optimizer {
    Sgd { momentum: f32, weight_decay: f32 },
    AdamW { beta1: f32, beta2: f32, eps: f32, weight_decay: f32 },
}

impl Optimizer {
    /// The paper's optimizer: SGD with momentum 0.9.
    pub fn sgd(weight_decay: f32) -> Optimizer {
        Optimizer::Sgd { momentum: 0.9, weight_decay }
    }
    /// AdamW with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8).
    pub fn adamw(weight_decay: f32) -> Optimizer {
        Optimizer::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }
    /// "Sgd" or "AdamW": the rule's name, as resume signatures record it.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "Sgd",
            Optimizer::AdamW { .. } => "AdamW",
        }
    }
    pub fn weight_decay(self) -> f32 {
        match self {
            Optimizer::Sgd { weight_decay, .. } | Optimizer::AdamW { weight_decay, .. } => weight_decay,
        }
    }
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
        let step = vpt_step(gpu, vit, task, images, labels, dropout)?;
        self.apply(task, &step)?;
        Ok((step.loss.to_scalar()?, step.logits))
    }

    /// The update half of a step: move the task's prompts and head along the step's gradients
    /// at this step's learning rate, in place, and count the step.
    pub fn apply(&mut self, task: &VptTask, step: &VptStep) -> Result<()> {
        let grads: Vec<&Tensor> = step.grad_prompts.iter().chain([&step.grad_head_weight, &step.grad_head_bias]).collect();
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
        Ok(())
    }

    /// The optimizer's state tensors, in a fixed order (for the resume file).
    pub fn state_tensors(&self) -> Vec<Tensor> {
        self.state.iter().flat_map(|(a, b)| std::iter::once(a.clone()).chain(b.clone())).collect()
    }

    /// Continue from a saved state: `step` steps taken, `tensors` as [`Trainer::state_tensors`] gave them.
    pub fn restore(&mut self, step: usize, tensors: &[Vec<f32>]) -> Result<()> {
        let mine = self.state_tensors();
        if tensors.len() != mine.len() {
            return Err(crate::Error::invalid("Trainer::restore", format!("{} optimizer state tensors given, {} expected for {}", tensors.len(), mine.len(), self.optimizer.name())));
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
