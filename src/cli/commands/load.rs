//! What several commands read: a backbone with a task and a batch (`grad`, `forward`), or a
//! backbone with tasks checked to belong to it (`eval`, `predict`).

use std::path::PathBuf;

use crate::cli::args::commands::StepInputs;
use crate::cli::args::shared::ModelArgs;
use crate::cli::settings::text;
use vpt_wgsl::io::TensorFile;
use vpt_wgsl::model::files;
use vpt_wgsl::model::vit::{StateDict, Vit};
use vpt_wgsl::model::vpt::VptTask;
use vpt_wgsl::train::fit;
use vpt_wgsl::train::task::{backbone_fingerprint, check_trained_on, parse_size, TaskFile};
use vpt_wgsl::{Gpu, Result, Tensor};

impl StepInputs {
    /// The files read, by setting: none may be an output.
    pub fn files(&self) -> [(&'static str, String); 3] {
        [("model", text(&self.model.model)), ("task", text(&self.task)), ("batch", text(&self.batch))]
    }

    /// Load backbone, task and batch; the batch's image size decides the size the model runs
    /// at. A task written by `vpt train` records its backbone and image size: both are checked.
    pub fn load(&self, gpu: &Gpu) -> Result<(Vit, VptTask, Tensor, Vec<u32>)> {
        let [(_, model), (_, task_path), (_, batch)] = self.files();
        let (images, labels) = files::read_batch(gpu, &batch)?;
        let img_size = (images.shape()[2], images.shape()[3]);
        let task_file = TensorFile::read(&task_path)?;
        let task = VptTask::from_file(gpu, &task_file)?;
        task.check_labels(&labels, &batch)?;
        let sd = StateDict::read(&model)?;
        if let Some(trained_on) = task_file.metadata.get("backbone") {
            check_trained_on(trained_on, &backbone_fingerprint(&sd), &task_path, &model)?;
        }
        if let Some(trained_at) = task_file.metadata.get("img_size").and_then(|s| parse_size(s)) {
            if trained_at != img_size {
                return Err(vpt_wgsl::Error::invalid(
                    "--batch",
                    format!(
                        "{batch}: its images are {}×{} but the task {task_path} was trained on {}×{} images (its metadata img_size); give a batch of {}×{} images, or a task trained at {}×{}",
                        img_size.0, img_size.1, trained_at.0, trained_at.1, trained_at.0, trained_at.1, img_size.0, img_size.1
                    ),
                ));
            }
        }
        let vit = Vit::from_state_dict(gpu, &sd, &self.model.load_options(Some(img_size), Some(format!("the images of `batch` {batch}"))))?;
        task.check_against(&vit)?;
        Ok((vit, task, images, labels))
    }
}

/// A backbone plus tasks checked to belong to it; the first task's image size is the model's.
pub fn load_tasks(gpu: &Gpu, model: &ModelArgs, tasks: &[PathBuf]) -> Result<(Vit, Vec<TaskFile>)> {
    let paths: Vec<String> = tasks.iter().map(|t| text(t)).collect();
    let first = TaskFile::read(gpu, &paths[0])?;
    let opts = model.load_options(Some(first.img_size), Some(format!("the task {}", paths[0])));
    let (vit, fingerprint, _) = fit::load_backbone(gpu, &text(&model.model), &opts)?;
    let mut files = vec![first];
    for path in &paths[1..] {
        files.push(TaskFile::read(gpu, path)?);
    }
    for (file, path) in files.iter().zip(&paths) {
        file.check_backbone(&fingerprint, path, &text(&model.model))?;
    }
    Ok((vit, files))
}
