//! Accuracy of a task on labelled images: what `vpt eval` reports and `vpt train` measures on its
//! validation images after every epoch.

use super::data::{EpochLoader, Normalization, Sample, Transform};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::first_non_finite;
use crate::model::vit::Vit;
use crate::model::vpt::{vpt_forward, VptTask};
use crate::tensor::Tensor;

/// The index of the largest value (the first, on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// Top-1 hits in a batch of logits [B, C], which must be finite.
pub fn count_correct(logits: &Tensor, labels: &[u32]) -> Result<usize> {
    let classes = logits.last_dim();
    let values = finite_logits(logits)?;
    Ok(values.chunks(classes).zip(labels).filter(|(row, &label)| argmax(row) == label as usize).count())
}

/// Logits read back, or an error if any is NaN or infinite: an argmax over them would name a
/// class that means nothing.
pub fn finite_logits(logits: &Tensor) -> Result<Vec<f32>> {
    let values = logits.to_vec()?;
    match first_non_finite(&values) {
        Some(i) => Err(Error::invalid(
            "logits",
            format!("logit {i} is {}: the task or the backbone holds values that overflow, so no prediction can be trusted (a diverged training? try a lower `lr`)", values[i]),
        )),
        None => Ok(values),
    }
}

/// Accuracy of a task on samples.
pub struct Evaluation {
    pub top1: f64,
    /// (correct, total) per class.
    pub per_class: Vec<(usize, usize)>,
}

pub fn evaluate(gpu: &Gpu, vit: &Vit, task: &VptTask, samples: &[Sample], transform: Transform, norm: Normalization, batch: usize) -> Result<Evaluation> {
    let classes = task.num_classes();
    let mut per_class = vec![(0usize, 0usize); classes];
    for b in EpochLoader::new(samples.to_vec(), transform, norm, batch.max(1), false, 0, 0, 0) {
        let b = b?;
        let logits = vpt_forward(gpu, vit, task, &Tensor::from_slice(gpu, &b.shape(), &b.images)?)?;
        for (row, &label) in finite_logits(&logits)?.chunks(classes).zip(&b.labels) {
            let entry = &mut per_class[label as usize];
            entry.1 += 1;
            entry.0 += usize::from(argmax(row) == label as usize);
        }
    }
    let (hits, total) = per_class.iter().fold((0, 0), |(h, t), &(c, n)| (h + c, t + n));
    Ok(Evaluation { top1: hits as f64 / total.max(1) as f64, per_class })
}
