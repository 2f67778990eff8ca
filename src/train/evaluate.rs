//! Accuracy of a task on labelled images: what `vpt eval` reports, `vpt train` measures on its
//! validation images after every epoch, and `vpt sweep` and `vpt compare` report on `test`.

use std::path::Path;

use super::config::TrainConfig;
use super::data::{default_resize, EpochLoader, ImageFolder, Normalization, Sample, Transform};
use super::start::{backbone_from_state_dict, load_options};
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
/// task's), with the files passed over.
pub struct TestResult {
    pub evaluation: Evaluation,
    pub images: usize,
    pub skipped: Vec<(std::path::PathBuf, String)>,
}

/// Evaluate the task file at `task` on `images` (split list paths from `cfg.root`), on the
/// backbone of `cfg`, as `vpt eval` does: the task must belong to the backbone.
pub fn evaluate_task_file(gpu: &Gpu, cfg: &TrainConfig, task: &str, images: &Path) -> Result<TestResult> {
    let file = TaskFile::read(gpu, task)?;
    let opts = LoadOptions { img_size: Some(file.img_size), size_from: Some(format!("the task {task}")), ..load_options(cfg) };
    let (vit, fingerprint, _) = backbone_from_state_dict(gpu, &StateDict::read(&cfg.model)?, &opts)?;
    file.check_backbone(&fingerprint, task, &cfg.model)?;
    let folder = ImageFolder::open_with_classes(images, cfg.root.as_deref(), &file.classes)?;
    let size = file.img_size.0;
    let evaluation = evaluate(gpu, &vit, &file.task, &folder.samples, Transform::Eval { size, resize: default_resize(size) }, file.norm, EVAL_BATCH)?;
    Ok(TestResult { evaluation, images: folder.samples.len(), skipped: folder.skipped })
}
