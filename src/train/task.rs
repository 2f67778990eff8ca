//! The task file: what `vpt train` produces and `vpt eval` / `vpt predict` use. One
//! `.safetensors` of a few hundred kilobytes at most:
//!
//! - tensors `prompts` [depth_p, P, D] (absent for the linear probe), `head.weight` [C, D],
//!   `head.bias` [C]; for the other tuning methods, what they trained (`model/methods/`: the
//!   tensors each method adds, under its own names and with its metadata, and backbone tensors
//!   under their timm names);
//! - `__metadata__`: `format`, `classes` (JSON list of class names, index = label), `pool`,
//!   `mean` / `std` (the normalisation the images need), `img_size` ("H,W"), and `backbone`: a
//!   fingerprint of the backbone's weights, so a task is never run on the wrong backbone.
//!
//! A second file, `<task>.resume.safetensors`, holds what `--resume` needs: the same tensors plus
//! the optimizer state and the training settings. Both are written atomically (temporary file +
//! rename) after every epoch (`files.rs`, native; this file turns them to and from bytes).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::hash::Fnv1a;
use crate::io::{f32_tensors_to_bytes, first_non_finite, TensorFile};
use crate::model::vit::{StateDict, VitConfig};
use crate::model::vpt::{Pool, VptTask};
use crate::tensor::Tensor;
use crate::train::data::Normalization;

pub const FORMAT: &str = "vpt-wgsl task v1";

/// A trained task: the VPT tensors plus what is needed to use them.
pub struct TaskFile {
    pub task: VptTask,
    pub classes: Vec<String>,
    pub norm: Normalization,
    pub img_size: (usize, usize),
    /// [`backbone_fingerprint`] of the backbone it was trained on.
    pub backbone: String,
}

/// FNV-1a (64-bit) over every backbone tensor's name, shape and f32 values, in name order. Not a
/// cryptographic hash: it guards against running a task on the wrong backbone by accident.
pub fn backbone_fingerprint(sd: &StateDict) -> String {
    let mut hash = Fnv1a::default();
    let mut names: Vec<&String> = sd.tensors.keys().filter(|n| !n.starts_with("head.")).collect();
    names.sort();
    for name in names {
        let (shape, data) = &sd.tensors[name];
        hash.feed(name.as_bytes());
        for d in shape {
            hash.feed(&(*d as u64).to_le_bytes());
        }
        hash.feed(bytemuck::cast_slice(data));
    }
    format!("fnv1a64:{:016x}", hash.finish())
}

impl TaskFile {
    /// A task file already read (`TaskFile::read`, native, reads one from disk: `files.rs`).
    pub fn from_file(gpu: &Gpu, f: &TensorFile) -> Result<TaskFile> {
        let task = VptTask::from_file(gpu, f)?;
        let fmt = |msg: String| Error::Format { path: f.path.clone(), msg };
        let meta = |key: &str| f.metadata.get(key).ok_or_else(|| fmt(format!("missing metadata {key:?}: not a task file written by `vpt train`")));
        if meta("format")? != FORMAT {
            return Err(fmt(format!("format {:?} is not {FORMAT:?}", meta("format")?)));
        }
        let classes: Vec<String> = serde_json::from_str(meta("classes")?).map_err(|e| fmt(format!("metadata classes: {e}")))?;
        if let Some(dup) = classes.iter().enumerate().find_map(|(i, c)| classes[..i].contains(c).then_some(c)) {
            return Err(fmt(format!("metadata classes names {dup:?} twice: every class needs its own name")));
        }
        if classes.len() != task.num_classes() {
            return Err(fmt(format!("{} class names for a head with {} outputs", classes.len(), task.num_classes())));
        }
        let norm = Normalization::parse(meta("mean")?, meta("std")?).map_err(|e| fmt(e.to_string()))?;
        let img_size = parse_size(meta("img_size")?).ok_or_else(|| fmt(format!("metadata img_size {:?} is not \"H,W\"", meta("img_size"))))?;
        Ok(TaskFile { task, classes, norm, img_size, backbone: meta("backbone")?.clone() })
    }

    /// The metadata block of the task file.
    fn metadata(&self) -> HashMap<String, String> {
        let (mean, std) = self.norm.to_strings();
        let mut meta = HashMap::from([
            ("format".into(), FORMAT.into()),
            ("classes".into(), serde_json::to_string(&self.classes).expect("strings serialise")),
            ("pool".into(), self.task.pool.name().into()),
            ("mean".into(), mean),
            ("std".into(), std),
            ("img_size".into(), format!("{},{}", self.img_size.0, self.img_size.1)),
            ("backbone".into(), self.backbone.clone()),
        ]);
        meta.extend(self.task.tuned.metadata());
        meta
    }

    /// The task file's bytes, plus `extra` tensors and metadata (the resume state); `path` names
    /// it in errors. `TaskFile::write` (native, `files.rs`) writes them atomically.
    pub fn to_bytes(&self, path: &str, extra: &[(String, Tensor)], extra_meta: &[(String, String)]) -> Result<Vec<u8>> {
        self.task.head_bias.gpu().blocking("task file", self.to_bytes_async(path, extra, extra_meta))
    }

    /// Every tensor the task trains, by its name in the file.
    fn named(&self) -> Vec<(String, &Tensor)> {
        let mut named: Vec<(String, &Tensor)> = Vec::new();
        if let Some(p) = &self.task.prompts {
            named.push(("prompts".into(), p));
        }
        named.push(("head.weight".into(), &self.task.head_weight));
        named.push(("head.bias".into(), &self.task.head_bias));
        // What the other tuning methods trained (`model/methods/tuned.rs`), under their names.
        named.extend(self.task.tuned.named());
        named
    }

    /// The first value of the task's tensors that is not finite, said as "tensor "prompts" holds
    /// -inf at index 0"; `None` when every value is finite. (An update with a rate too high can
    /// overflow the weights after the last loss was still finite.)
    pub async fn non_finite_async(&self) -> Result<Option<String>> {
        for (name, t) in self.named() {
            let data = t.to_vec_async().await?;
            if let Some(i) = first_non_finite(&data) {
                return Ok(Some(format!("tensor {name:?} holds {} at index {i}", data[i])));
            }
        }
        Ok(None)
    }

    /// [`TaskFile::to_bytes`] without blocking (in a browser).
    pub async fn to_bytes_async(&self, path: &str, extra: &[(String, Tensor)], extra_meta: &[(String, String)]) -> Result<Vec<u8>> {
        let mut named = self.named();
        named.extend(extra.iter().map(|(n, t)| (n.clone(), t)));
        let mut host: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        for (name, t) in named {
            host.push((name, t.shape().to_vec(), t.to_vec_async().await?));
        }
        // Never a task with NaN or infinite values: it would answer nothing but class 0.
        for (name, _, data) in &host {
            if let Some(i) = first_non_finite(data) {
                return Err(Error::Format { path: path.to_string(), msg: format!("not written: tensor {name:?} holds {} at index {i} (the training diverged; try a lower `lr`)", data[i]) });
            }
        }
        let list: Vec<(&str, &[usize], &[f32])> = host.iter().map(|(n, s, d)| (n.as_str(), &s[..], &d[..])).collect();
        let mut meta = self.metadata();
        meta.extend(extra_meta.iter().cloned());
        f32_tensors_to_bytes(path, &list, meta)
    }

    /// Refuse to run this task on a backbone with another fingerprint.
    pub fn check_backbone(&self, fingerprint: &str, task_path: &str, model_path: &str) -> Result<()> {
        check_trained_on(&self.backbone, fingerprint, task_path, model_path)
    }
}

/// Error unless the task at `task_path`, trained on the backbone fingerprinted `trained_on`, is
/// being run on that backbone (`model_path`, fingerprinted `fingerprint`).
pub fn check_trained_on(trained_on: &str, fingerprint: &str, task_path: &str, model_path: &str) -> Result<()> {
    if trained_on != fingerprint {
        return Err(Error::Format {
            path: task_path.to_string(),
            msg: format!("this task was trained on backbone {trained_on} but {model_path} is {fingerprint}; use the backbone it was trained with"),
        });
    }
    Ok(())
}

/// "H,W" → (H, W).
pub fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (h, w) = s.split_once(',')?;
    Some((h.trim().parse().ok()?, w.trim().parse().ok()?))
}

/// The prompt initialisation of KMnP/vpt: uniform(−v, v), v = √(6 / (3·p² + D)).
pub fn init_prompts(depth: usize, num_prompts: usize, dim: usize, patch: usize, rng: &mut u64) -> Vec<f32> {
    let v = (6.0 / (3.0 * (patch * patch) as f64 + dim as f64)).sqrt();
    (0..depth * num_prompts * dim).map(|_| ((crate::rng::next_unit(rng) * 2.0 - 1.0) * v) as f32).collect()
}

/// torch.nn.Linear's initialisation of a [C, D] head: weight and bias uniform(−1/√D, 1/√D).
pub fn init_head(classes: usize, dim: usize, rng: &mut u64) -> (Vec<f32>, Vec<f32>) {
    let bound = 1.0 / (dim as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| ((crate::rng::next_unit(rng) * 2.0 - 1.0) * bound) as f32).collect() };
    (draw(classes * dim), draw(classes))
}

/// A fresh task for `classes` on a backbone of shape `backbone`: `num_prompts` prompts in each of
/// its first `depth` layers (0: the linear probe).
pub fn new_task(gpu: &Gpu, backbone: &VitConfig, depth: usize, num_prompts: usize, classes: usize, pool: Pool, seed: u64) -> Result<VptTask> {
    let (dim, patch) = (backbone.embed_dim, backbone.patch_size);
    let mut rng = seed ^ 0x5650_545f_494e_4954; // "VPT_INIT": keep init draws apart from data draws
    let prompts = if depth > 0 && num_prompts > 0 { Some(Tensor::from_slice(gpu, &[depth, num_prompts, dim], &init_prompts(depth, num_prompts, dim, patch, &mut rng))?) } else { None };
    let (w, b) = init_head(classes, dim, &mut rng);
    Ok(VptTask { prompts, head_weight: Tensor::from_slice(gpu, &[classes, dim], &w)?, head_bias: Tensor::from_slice(gpu, &[classes], &b)?, pool, tuned: Default::default() })
}
