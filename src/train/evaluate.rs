//! Accuracy of a task on labelled images: what `vpt eval` reports, `vpt train` measures on its
//! validation images after every epoch, and `vpt sweep` and `vpt compare` report on `test`.

use std::path::Path;

use super::data::{default_resize, EpochLoader, ImageFolder, Normalization, Sample, Transform};
use super::start::backbone_from_state_dict;
use super::step::predict_batch;
use super::task::TaskFile;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::vit::{LoadOptions, StateDict, Vit};
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

/// The batch `vpt eval` takes by default, which a sweep's test evaluation takes too, so that
/// `vpt eval` of its task file gives the same figure.
pub const EVAL_BATCH: usize = 64;

/// A task file's accuracy on labelled images (a folder or a split list whose classes are the
/// task's), with the task's class names and the files passed over.
pub struct TestResult {
    pub evaluation: Evaluation,
    pub classes: Vec<String>,
    pub images: usize,
    pub skipped: Vec<(std::path::PathBuf, String)>,
}

/// What `vpt eval` does, and `vpt sweep` and `vpt compare` on their test images: evaluate the
/// task file at `task` on `images` (a split list's paths from `root`), `batch` images at a time,
/// on the backbone at `model` loaded with `opts` at the task's image size; the task must belong
/// to that backbone.
pub fn evaluate_task_file(gpu: &Gpu, model: &str, opts: &LoadOptions, task: &str, images: &Path, root: Option<&Path>, batch: usize) -> Result<TestResult> {
    let file = TaskFile::read(gpu, task)?;
    // No backward runs here: no transposed copies.
    let opts = LoadOptions { img_size: Some(file.img_size), size_from: Some(format!("the task {task}")), dx_copies: false, ..opts.clone() };
    let (vit, fingerprint, _) = backbone_from_state_dict(gpu, &StateDict::read(model)?, &opts)?;
    file.check_backbone(&fingerprint, task, model)?;
    let folder = ImageFolder::open_with_classes(images, root, &file.classes)?;
    let size = file.img_size.0;
    let evaluation = evaluate(gpu, &vit, &file.task, &folder.samples, Transform::Eval { size, resize: default_resize(size) }, file.norm, batch)?;
    Ok(TestResult { evaluation, classes: file.classes, images: folder.samples.len(), skipped: folder.skipped })
}
