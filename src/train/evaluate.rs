//! Accuracy of a task on labelled images: what `vpt eval` reports and `vpt train` measures on its
//! validation images after every epoch.

use super::data::{EpochLoader, Normalization, Sample, Transform};
use super::step::predict_batch;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::vit::Vit;
use crate::model::vpt::VptTask;
use crate::tensor::Tensor;

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
        let images = Tensor::from_slice(gpu, &b.shape(), &b.images)?;
        let predicted = gpu.blocking("evaluate", predict_batch(gpu, vit, task, &images))?;
        for (&class, &label) in predicted.iter().zip(&b.labels) {
            let entry = &mut per_class[label as usize];
            entry.1 += 1;
            entry.0 += usize::from(class == label as usize);
        }
    }
    let (hits, total) = per_class.iter().fold((0, 0), |(h, t), &(c, n)| (h + c, t + n));
    Ok(Evaluation { top1: hits as f64 / total.max(1) as f64, per_class })
}
