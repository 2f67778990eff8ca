//! The optimizer step that updates what a task trains on the GPU (SGD with momentum, or AdamW),
//! with its state, at the rate the schedule (`schedule.rs`) gives each step: the prompts and head,
//! and for the other tuning methods (`--method`) the task's copies of the backbone tensors it
//! trains and the tensors its methods add (`model/methods/`). The backbone is never changed.

use super::schedule::WarmupCosine;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::Dropout;
use crate::kernels::optim::{self, AdamW, Sgd};
use crate::model::methods::method::Method;
use crate::model::vit::Vit;
use crate::model::vpt::{VptForward, VptStep, VptTask};
use crate::tensor::Tensor;

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
    /// The same rule with another weight decay (a sweep's pair).
    pub fn with_weight_decay(self, wd: f32) -> Optimizer {
        match self {
            Optimizer::Sgd { momentum, .. } => Optimizer::Sgd { momentum, weight_decay: wd },
            Optimizer::AdamW { beta1, beta2, eps, .. } => Optimizer::AdamW { beta1, beta2, eps, weight_decay: wd },
        }
    }
}

/// Optimizer state for one task's trainable tensors (prompts, head weight, head bias, and what
/// the method adds).
pub struct Trainer {
    pub optimizer: Optimizer,
    pub schedule: WarmupCosine,
    /// What trains besides the head.
    pub method: Method,
    /// SGD momentum buffers or AdamW's (m, v), one per trained tensor, zeros at the start.
    state: Vec<(Tensor, Option<Tensor>)>,
    step: usize,
}

impl Trainer {
    /// VPT: the prompts (if the task has any) and the head.
    pub fn new(gpu: &Gpu, task: &VptTask, optimizer: Optimizer, schedule: WarmupCosine) -> Result<Trainer> {
        Trainer::with_method(gpu, task, Method::prompt(), optimizer, schedule)
    }

    /// What `method` trains of `task`: the head, the prompts for a `prompt` method, and every
    /// tensor of `task.tuned` (made by `Vit::fresh_tuned` for a fresh run).
    pub fn with_method(gpu: &Gpu, task: &VptTask, method: Method, optimizer: Optimizer, schedule: WarmupCosine) -> Result<Trainer> {
        let adam = matches!(optimizer, Optimizer::AdamW { .. });
        let state =
            trained_tensors(task, &method).iter().map(|(_, t)| Ok((Tensor::zeros(gpu, t.shape())?, if adam { Some(Tensor::zeros(gpu, t.shape())?) } else { None }))).collect::<Result<Vec<_>>>()?;
        Ok(Trainer { optimizer, schedule, method, state, step: 0 })
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
        let step = VptForward::with_method(gpu, vit, task, images, labels, dropout, &self.method)?.backward()?;
        self.apply(task, &step)?;
        Ok((step.loss.to_scalar()?, step.logits))
    }

    /// The update half of a step: move what the task trains along the step's gradients at this
    /// step's learning rate, in place, and count the step.
    pub fn apply(&mut self, task: &VptTask, step: &VptStep) -> Result<()> {
        let trained = trained_tensors(task, &self.method);
        let grads = trained.iter().map(|(name, _)| gradient_of(step, name)).collect::<Result<Vec<&Tensor>>>()?;
        let lr = self.schedule.lr(self.step) as f32;
        for (((_, param), grad), (s1, s2)) in trained.into_iter().zip(grads).zip(&self.state) {
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

/// The tensors a task trains under `method`, by name, in a fixed order: prompts (a `prompt`
/// method with prompts), head weight, head bias, then `task.tuned` (`Tuned::named`).
fn trained_tensors<'a>(task: &'a VptTask, method: &Method) -> Vec<(String, &'a Tensor)> {
    let prompts = task.prompts.iter().filter(|_| method.trains_prompts()).map(|p| ("prompts".to_string(), p));
    let head = [("head.weight".to_string(), &task.head_weight), ("head.bias".to_string(), &task.head_bias)];
    prompts.chain(head).chain(task.tuned.named()).collect()
}

/// The step's gradient of the tensor named `name` (a task-file name).
fn gradient_of<'a>(step: &'a VptStep, name: &str) -> Result<&'a Tensor> {
    let found = match name {
        "prompts" => step.grad_prompts.as_ref(),
        "head.weight" => Some(&step.grad_head_weight),
        "head.bias" => Some(&step.grad_head_bias),
        _ => step.grad_backbone.iter().find(|(n, _)| n == name).map(|(_, g)| g),
    };
    found.ok_or_else(|| crate::Error::Internal {
        what: "Trainer::apply".into(),
        msg: format!("the step has no gradient for {name}, which the trainer updates: the task's tuned tensors and the method disagree"),
    })
}
