//! Prediction with several tasks from one backbone in memory, mixing tasks in the same batch:
//! each (image, task) pair is one row of the batch, with that task's prompts and, after pooling,
//! that task's head. This is VPT's storage story made real: one frozen ViT, many kilobyte-size
//! tasks, one forward pass for all of them.
//!
//! Rows only share a batch when their tasks have the same prompt shape and pooling (the token
//! count must agree); others go to their own batches, still through the same backbone.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Graph;
use crate::model::methods::method::Method;
use crate::model::vit::Vit;
use crate::model::vpt::vpt_pooled;
use crate::tensor::Tensor;
use crate::train::data::{default_resize, load_image, Transform};
use crate::train::step::finite_logits;
use crate::train::task::TaskFile;

/// One class with its probability.
#[derive(Clone, Debug, PartialEq)]
pub struct Guess {
    pub class: String,
    pub probability: f32,
}

/// All (image, task) pairs, batched by prompt shape. Returns `result[image][task]` = top-k.
pub fn predict(gpu: &Gpu, vit: &Vit, tasks: &[TaskFile], images: &[PathBuf], top_k: usize, batch: usize) -> Result<Vec<Vec<Vec<Guess>>>> {
    if tasks.is_empty() {
        return Err(Error::invalid("task", "give at least one `task`"));
    }
    for t in tasks {
        t.task.check_against(vit)?;
        if t.img_size != vit.cfg.img_size {
            return Err(Error::invalid("task", format!("a task trained at {:?} cannot share a backbone running at {:?}", t.img_size, vit.cfg.img_size)));
        }
    }
    let mut results = vec![vec![Vec::new(); tasks.len()]; images.len()];
    let pairs: Vec<(usize, usize)> = (0..images.len()).flat_map(|i| (0..tasks.len()).map(move |t| (i, t))).collect();
    for group in group_by_prompt_shape(tasks, &pairs) {
        for chunk in group.chunks(batch.max(1)) {
            for ((image, task), guesses) in chunk.iter().zip(predict_rows(gpu, vit, tasks, images, chunk, top_k)?) {
                results[*image][*task] = guesses;
            }
        }
    }
    Ok(results)
}

/// Pairs whose tasks can share a batch: same (prompted layers, prompts, pooling), and no
/// tuned backbone tensor or tensor a method added (such a task changes the backbone: it runs
/// alone).
fn group_by_prompt_shape(tasks: &[TaskFile], pairs: &[(usize, usize)]) -> Vec<Vec<(usize, usize)>> {
    let key = |i: usize| {
        let task = &tasks[i].task;
        (task.prompt_dims(), task.pool.name(), (!task.tuned.is_empty()).then_some(i))
    };
    let mut keys: Vec<_> = (0..tasks.len()).map(key).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().map(|k| pairs.iter().copied().filter(|&(_, t)| key(t) == k).collect()).collect()
}

/// One batch of rows, each its own (image, task).
fn predict_rows(gpu: &Gpu, vit: &Vit, tasks: &[TaskFile], images: &[PathBuf], rows: &[(usize, usize)], top_k: usize) -> Result<Vec<Vec<Guess>>> {
    let size = vit.cfg.img_size.0;
    let transform = Transform::Eval { size, resize: default_resize(size) };
    // images [B, 3, size, size], each preprocessed with its own task's normalisation.
    let mut pixels = Vec::with_capacity(rows.len() * 3 * size * size);
    for &(image, task) in rows {
        pixels.extend(load_image(&images[image], transform, tasks[task].norm, &mut 0)?);
    }
    let batch = Tensor::from_slice(gpu, &[rows.len(), 3, size, size], &pixels)?;
    let first = &tasks[rows[0].1].task;
    let (depth_p, p) = first.prompt_dims();
    let g = Graph::inference(gpu);
    let prompts = if depth_p > 0 { Some(g.constant(stack_prompts(gpu, tasks, rows, depth_p, p, vit.cfg.embed_dim)?)) } else { None };
    // The group's tasks share the backbone: plain, or the one task's tuned backbone.
    let backbone = vit.backbone_vars(&g, &Method::default(), &first.tuned)?;
    let pooled = vpt_pooled(&g, vit, &backbone, prompts.as_ref(), first.pool, &batch, None)?; // [B, D]
    head_rows(&g, tasks, rows, &pooled, top_k)
}

/// Per-row prompts [depth_p, B, P, D]: row b gets the prompts of its task.
fn stack_prompts(gpu: &Gpu, tasks: &[TaskFile], rows: &[(usize, usize)], depth_p: usize, p: usize, d: usize) -> Result<Tensor> {
    let per_task: Vec<Option<Vec<f32>>> = tasks.iter().map(|t| t.task.prompts.as_ref().map(Tensor::to_vec).transpose()).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(depth_p * rows.len() * p * d);
    for layer in 0..depth_p {
        for &(_, task) in rows {
            let prompts = per_task[task].as_ref().expect("tasks in one group all have prompts");
            out.extend_from_slice(&prompts[layer * p * d..(layer + 1) * p * d]);
        }
    }
    Tensor::from_slice(gpu, &[depth_p, rows.len(), p, d], &out)
}

/// Apply each task's head to the pooled features of its rows, softmax, top-k.
fn head_rows(g: &Graph, tasks: &[TaskFile], rows: &[(usize, usize)], pooled: &crate::graph::Var, top_k: usize) -> Result<Vec<Vec<Guess>>> {
    let mut out = vec![Vec::new(); rows.len()];
    let mut used: Vec<usize> = rows.iter().map(|&(_, t)| t).collect();
    used.sort();
    used.dedup();
    for t in used {
        let task = &tasks[t];
        let logits = g.linear(pooled, &g.constant(task.task.head_weight.clone()), Some(&g.constant(task.task.head_bias.clone())))?;
        let values = logits.value().to_vec()?;
        let values = finite_logits(&values)?; // [B, C_t]: every row through this head; keep this task's rows
        for (row, &(_, rt)) in rows.iter().enumerate() {
            if rt == t {
                out[row] = top_k_of(&values[row * task.classes.len()..(row + 1) * task.classes.len()], &task.classes, top_k);
            }
        }
    }
    Ok(out)
}

/// Softmax of one row of logits, then the k most probable classes.
pub fn top_k_of(logits: &[f32], classes: &[String], k: usize) -> Vec<Guess> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let exps: Vec<f64> = logits.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| exps[b].partial_cmp(&exps[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
    order.into_iter().take(k.max(1)).map(|i| Guess { class: classes[i].clone(), probability: (exps[i] / sum) as f32 }).collect()
}
