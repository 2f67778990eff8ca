//! One batch of a run, as `vpt train` (native) and the browser page both take it: a training step
//! with its loss and top-1 hits, and an evaluation batch's predictions. Each is async at its one
//! read-back (`gpu/readback.rs`), so a page awaits it and never blocks; native callers run it to
//! its end with `Gpu::blocking`. One code path for both: the same kernels in the same order.

use super::Trainer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Dropout;
use crate::io::first_non_finite;
use crate::model::vit::Vit;
use crate::model::vpt::{vpt_forward, VptForward, VptTask};
use crate::tensor::Tensor;

/// What one training step gave: the loss of its forward (before the update) and the top-1 hits
/// of its logits.
#[derive(Clone, Copy, Debug)]
pub struct StepOutcome {
    pub loss: f32,
    pub correct: usize,
}

/// How many times the loss of a uniform guess (ln C) a step's loss may reach before the run counts
/// as diverged. A step that far above chance (693 nats for two classes) means the weights have
/// blown up: with a learning rate too high, SGD can grow them for ever while the loss stays
/// finite (1e28 after three epochs of a tiny ViT at lr 1e30, its top-1 still looking fine).
pub const DIVERGED_TIMES_CHANCE: f32 = 1000.0;

/// Has a run whose step gave `loss` over `classes` classes diverged: a loss that is not a number,
/// or one [`DIVERGED_TIMES_CHANCE`] times a uniform guess's?
pub fn has_diverged(loss: f32, classes: usize) -> bool {
    !loss.is_finite() || loss > DIVERGED_TIMES_CHANCE * (classes.max(2) as f32).ln()
}

/// One forward, backward and update on `images` [B, 3, H, W] with `labels` [B].
///
/// The loss is read back first: a loss that is not finite ends the step with hits 0, and the
/// caller reports the divergence (the logits would only say the same thing less clearly).
pub async fn train_batch(trainer: &mut Trainer, gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32], dropout: Option<Dropout>) -> Result<StepOutcome> {
    let step = VptForward::with_method(gpu, vit, task, images, labels, step_dropout(dropout, trainer.step()), &trainer.method)?.backward()?;
    trainer.apply(task, &step)?;
    let loss = step.loss.to_vec_async().await?[0];
    if !loss.is_finite() {
        return Ok(StepOutcome { loss, correct: 0 });
    }
    let classes = step.logits.last_dim();
    let values = step.logits.to_vec_async().await?;
    let logits = finite_logits(&values)?;
    let correct = logits.chunks(classes).zip(labels).filter(|(row, &label)| argmax(row) == label as usize).count();
    Ok(StepOutcome { loss, correct })
}

/// The class each image of `images` [B, 3, H, W] is given (the top-1 of its logits).
pub async fn predict_batch(gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor) -> Result<Vec<usize>> {
    let logits = vpt_forward(gpu, vit, task, images)?;
    let classes = logits.last_dim();
    let values = logits.to_vec_async().await?;
    Ok(finite_logits(&values)?.chunks(classes).map(argmax).collect())
}

/// The prompt dropout of training step `step`: its own mask each step, from the run's seed.
pub fn step_dropout(dropout: Option<Dropout>, step: usize) -> Option<Dropout> {
    dropout.map(|d| Dropout { seed: d.seed ^ (step as u64).wrapping_mul(0x9E37_79B9), ..d })
}

/// The index of the largest value (the first, on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// Logits read back, or an error if any is NaN or infinite: an argmax over them would name a
/// class that means nothing.
pub fn finite_logits(values: &[f32]) -> Result<&[f32]> {
    match first_non_finite(values) {
        Some(i) => Err(Error::invalid(
            "logits",
            format!("logit {i} is {}: the task or the backbone holds values that overflow, so no prediction can be trusted (a diverged training? try a lower `lr`)", values[i]),
        )),
        None => Ok(values),
    }
}

/// The running sums of an epoch of training steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct EpochTally {
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

impl EpochTally {
    /// Count a step of `images` images.
    pub fn add(&mut self, step: StepOutcome, images: usize) {
        self.loss_sum += step.loss as f64 * images as f64;
        self.correct += step.correct;
        self.seen += images;
    }
    /// Images seen so far.
    pub fn seen(&self) -> usize {
        self.seen
    }
    /// The mean loss per image.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.seen as f64
    }
    /// Top-1 accuracy on the training batches, as a fraction.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.seen as f64
    }
}
