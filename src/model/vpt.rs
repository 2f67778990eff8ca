//! Visual Prompt Tuning, as the official implementation (KMnP/vpt) does it.
//!
//! - prompts [depth_p, P, D]: depth_p = 1 is VPT-shallow, depth_p = L is VPT-deep, anything
//!   between prompts the first depth_p layers, depth_p = 0 (no prompts) is the linear probe;
//! - input of block 0: [CLS, prompts[0], patch tokens], prompts get no position embedding;
//! - before block i (1 ≤ i < depth_p) the previous block's outputs at the prompt positions are
//!   replaced by prompts[i] (so block i−1 does not compute them past its attention, see
//!   `block::RowsRead`; nor does the last block compute the rows the pooling does not read);
//! - after the final norm, pooling: the CLS token (default), the mean of the image tokens, or the
//!   mean of the prompt tokens; then the task's linear head;
//! - loss: mean softmax cross-entropy; prompts, head weight and head bias get gradients, and
//!   what a tuning method trains (`methods/`, `vpt grad --method`).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Dropout, Grads, Graph, Var};
use crate::io::{f32_tensors_to_bytes, TensorFile};
use crate::model::block::RowsRead;
use crate::model::methods::leaves::BackboneVars;
use crate::model::methods::method::Method;
use crate::model::methods::tuned::Tuned;
use crate::model::stream::Stream;
use crate::model::vit::Vit;
use crate::tensor::{Labels, Tensor};

/// How the final tokens become one vector per image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The CLS token after the final norm (VPT's default).
    Cls,
    /// Mean of the image (patch) tokens.
    Image,
    /// Mean of the prompt tokens.
    Prompt,
}

impl Pool {
    pub fn name(self) -> &'static str {
        match self {
            Pool::Cls => "cls",
            Pool::Image => "image",
            Pool::Prompt => "prompt",
        }
    }
}

impl std::str::FromStr for Pool {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pool> {
        match s {
            "cls" => Ok(Pool::Cls),
            "image" => Ok(Pool::Image),
            "prompt" => Ok(Pool::Prompt),
            other => Err(Error::invalid("pool", format!("unknown pooling {other:?}: use cls, image or prompt"))),
        }
    }
}

/// What a task trains: prompts, head and pooling.
pub struct VptTask {
    /// [depth_p, P, D], or None for the linear probe.
    pub prompts: Option<Tensor>,
    /// [C, D]
    pub head_weight: Tensor,
    /// [C]
    pub head_bias: Tensor,
    pub pool: Pool,
    /// Tuned backbone tensors and the tensors its methods added (`methods/tuned.rs`); empty for VPT.
    pub tuned: Tuned,
}

impl VptTask {
    /// Prompt depth (number of prompted layers) and length P.
    pub fn prompt_dims(&self) -> (usize, usize) {
        self.prompts.as_ref().map_or((0, 0), |p| (p.shape()[0], p.shape()[1]))
    }

    pub fn num_classes(&self) -> usize {
        self.head_weight.shape()[0]
    }

    /// Error unless every label is one of this task's classes; `source` names the file the labels
    /// came from.
    pub fn check_labels(&self, labels: &[u32], source: &str) -> Result<()> {
        let classes = self.num_classes();
        match labels.iter().position(|&l| l as usize >= classes) {
            Some(i) => Err(Error::Format {
                path: source.into(),
                msg: format!("tensor \"labels\" holds {} at position {i}, but the task has {classes} classes (labels 0 to {}): a batch for another task?", labels[i], classes - 1),
            }),
            None => Ok(()),
        }
    }

    /// A task from a task file already read: `prompts` [depth_p, P, D] (absent or with no
    /// elements for the linear probe), `head.weight` [C, D], `head.bias` [C], `__metadata__` pool
    /// (default cls). `VptTask::read` (native, `files.rs`) reads one from disk.
    pub fn from_file(gpu: &Gpu, f: &TensorFile) -> Result<VptTask> {
        let fmt = |msg: String| Error::Format { path: f.path.clone(), msg };
        let (w_shape, w) = f.checked_f32("head.weight")?;
        if w_shape.len() != 2 {
            return Err(fmt(format!("tensor \"head.weight\" has shape {w_shape:?}, expected [C, D] (classes, backbone width)")));
        }
        let head_bias = Tensor::from_slice(gpu, &[w_shape[0]], f.checked_f32_shaped("head.bias", &[w_shape[0]])?)?;
        let prompts = match f.tensors.get("prompts") {
            Some(_) => {
                let (shape, data) = f.f32("prompts")?;
                // The linear probe may store an empty prompts tensor: no elements, no prompts.
                if data.is_empty() {
                    None
                } else {
                    if shape.len() != 3 {
                        return Err(fmt(format!("tensor \"prompts\" has shape {shape:?}, expected [depth, P, D]")));
                    }
                    if shape[2] != w_shape[1] {
                        return Err(fmt(format!(
                            "tensors \"prompts\" {shape:?} and \"head.weight\" {w_shape:?} disagree on the width D ({} and {}): both must have the backbone's width",
                            shape[2], w_shape[1]
                        )));
                    }
                    f.check_finite("prompts", data)?;
                    Some(Tensor::from_slice(gpu, shape, data)?)
                }
            }
            None => None,
        };
        let pool = f.metadata.get("pool").map_or(Ok(Pool::Cls), |p| p.parse()).map_err(|e| fmt(e.to_string()))?;
        Ok(VptTask { prompts, head_weight: Tensor::from_slice(gpu, w_shape, w)?, head_bias, pool, tuned: Tuned::from_file(gpu, f)? })
    }

    /// Check the task fits the backbone: D, prompt depth ≤ L, pooling has tokens to pool.
    pub fn check_against(&self, vit: &Vit) -> Result<()> {
        let d = vit.cfg.embed_dim;
        let (depth_p, p) = self.prompt_dims();
        let op = "vpt task";
        if self.head_weight.shape()[1] != d {
            return Err(Error::shape(op, format!("head.weight {:?} does not match the backbone width D = {d}", self.head_weight.shape())));
        }
        if let Some(prompts) = &self.prompts {
            if prompts.shape()[2] != d || depth_p > vit.cfg.depth {
                return Err(Error::shape(op, format!("prompts {:?} must be [depth ≤ {}, P, {d}]", prompts.shape(), vit.cfg.depth)));
            }
        }
        if self.pool == Pool::Prompt && p == 0 {
            return Err(Error::invalid("pool", "prompt pooling needs prompts: give the task prompts, or pool cls or image"));
        }
        let shapes: Vec<(String, Vec<usize>)> = vit.named_tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
        self.tuned.check_against(vit.dims(), &shapes)
    }
}

/// The task's tensors as graph leaves, and the backbone tensors the method trains.
pub struct TaskVars {
    pub prompts: Option<Var>,
    pub head_weight: Var,
    pub head_bias: Var,
    pub backbone: BackboneVars,
}

impl TaskVars {
    /// Trainable leaves (on a recording graph): VPT's prompts and head, the backbone frozen.
    pub fn params(g: &Graph, task: &VptTask) -> TaskVars {
        TaskVars {
            prompts: task.prompts.as_ref().map(|p| g.param(p.clone())),
            head_weight: g.param(task.head_weight.clone()),
            head_bias: g.param(task.head_bias.clone()),
            backbone: BackboneVars::default(),
        }
    }

    /// What `method` trains: the head, the prompts if it is a `prompt` method (else the task's
    /// prompts, if any, run as constants), and the backbone tensors it names.
    pub fn for_method(g: &Graph, task: &VptTask, vit: &Vit, method: &Method) -> Result<TaskVars> {
        let prompt = |p: &Tensor| if method.trains_prompts() { g.param(p.clone()) } else { g.constant(p.clone()) };
        Ok(TaskVars {
            prompts: task.prompts.as_ref().map(prompt),
            head_weight: g.param(task.head_weight.clone()),
            head_bias: g.param(task.head_bias.clone()),
            backbone: vit.backbone_vars(g, method, &task.tuned)?,
        })
    }

    /// Leaves that get no gradient (inference), the task's added and tuned backbone tensors in
    /// place.
    pub fn for_inference(g: &Graph, task: &VptTask, vit: &Vit) -> Result<TaskVars> {
        let frozen = Method::default();
        Ok(TaskVars { backbone: vit.backbone_vars(g, &frozen, &task.tuned)?, ..TaskVars::constants(g, task) })
    }

    /// Leaves that get no gradient (inference).
    pub fn constants(g: &Graph, task: &VptTask) -> TaskVars {
        TaskVars {
            prompts: task.prompts.as_ref().map(|p| g.constant(p.clone())),
            head_weight: g.constant(task.head_weight.clone()),
            head_bias: g.constant(task.head_bias.clone()),
            backbone: BackboneVars::default(),
        }
    }
}

/// The forward pass: images [B, C, H, W] → logits [B, C].
pub fn vpt_logits(g: &Graph, vit: &Vit, task: &VptTask, vars: &TaskVars, images: &Tensor, dropout: Option<Dropout>) -> Result<Var> {
    task.check_against(vit)?;
    let pooled = vpt_pooled(g, vit, &vars.backbone, vars.prompts.as_ref(), task.pool, images, dropout)?; // [B, D]
    g.linear(&pooled, &vars.head_weight, Some(&vars.head_bias)) // [B, C]
}

/// Backbone with prompts, final norm and pooling: images [B, C, H, W] → features [B, D].
///
/// `prompts` is [depth_p, P, D], shared by every image, or [depth_p, B, P, D], one set per image
/// (how `vpt predict` serves several tasks from one batch).
pub fn vpt_pooled(g: &Graph, vit: &Vit, backbone: &BackboneVars, prompts: Option<&Var>, pool: Pool, images: &Tensor, dropout: Option<Dropout>) -> Result<Var> {
    let batch = images.shape()[0];
    let (depth_p, p) = match prompts.map(|v| v.shape()) {
        None => (0, 0),
        Some(&[depth, n, _]) => (depth, n),
        Some(&[depth, b, n, _]) if b == batch => (depth, n),
        Some(other) => return Err(Error::shape("vpt", format!("prompts {other:?} must be [depth, P, D] or [depth, B = {batch}, P, D]"))),
    };
    if depth_p > vit.cfg.depth {
        return Err(Error::shape("vpt", format!("{depth_p} prompted layers but the backbone has {}", vit.cfg.depth)));
    }
    if pool == Pool::Prompt && p == 0 {
        return Err(Error::invalid("pool", "prompt pooling needs prompts: give the task prompts, or pool cls or image"));
    }
    let embedded = vit.embed(g, images, backbone)?; // [B, 1+N, D]
    let tokens = embedded.shape()[1] + p; // T = 1 + P + N, every block's input

    // The rows the pooling reads, of the last block's output.
    let pooled_rows = match pool {
        Pool::Cls => RowsRead::Only { start: 0, count: 1 },
        Pool::Image => RowsRead::Only { start: 1 + p, count: tokens - 1 - p },
        Pool::Prompt => RowsRead::Only { start: 1, count: p },
    };
    let mut x = Stream::new(embedded);
    for i in 0..vit.cfg.depth {
        if i < depth_p {
            let prompts = prompts.expect("depth_p > 0 implies prompts");
            let layer_dropout = dropout.map(|d| Dropout { seed: d.seed.wrapping_add(i as u64), ..d });
            let prompts = layer_prompts(g, prompts, i, batch, layer_dropout)?;
            // After CLS: block 0's input has no prompts yet, and block i−1 left out the rows
            // these prompts take the place of (`RowsRead::AllBut` below). Kept beside the
            // stream, so that the block runs norm1 and qkv on them once for the batch.
            x = x.with_prompts(prompts); // [B, 1+P+N, D] as the block reads it
        }
        let rows = if i + 1 == vit.cfg.depth {
            pooled_rows
        } else if i + 1 < depth_p {
            RowsRead::AllBut { start: 1, count: p } // the next block overwrites them
        } else {
            RowsRead::All
        };
        x = vit.block(g, i, x, rows, backbone)?; // [B, T', D]
    }
    let x = vit.final_norm(g, x, backbone)?; // [B, T', D], the pooled rows only
    match pool {
        Pool::Cls => g.reshape(&x, &[batch, vit.cfg.embed_dim]),
        Pool::Image | Pool::Prompt => g.mean_tokens(&x),
    }
}

/// Layer i's prompts: [1, P, D] shared by the batch, or [B, P, D] (per-image prompts, or shared
/// ones expanded so each image gets its own dropout mask).
fn layer_prompts(g: &Graph, all: &Var, i: usize, batch: usize, dropout: Option<Dropout>) -> Result<Var> {
    let shape = all.shape().to_vec();
    let (per_layer, d) = (shape[1..shape.len() - 1].iter().product::<usize>(), shape[shape.len() - 1]);
    let flat = g.reshape(all, &[1, shape[0] * per_layer, d])?; // [1, depth_p·(B·)P, D]
    let mine = g.slice_tokens(&flat, i * per_layer, per_layer)?; // [1, (B·)P, D]
    let mine = if shape.len() == 4 { g.reshape(&mine, &[batch, shape[2], d])? } else { mine };
    match dropout {
        Some(drop) if drop.p > 0.0 => {
            let expanded = if mine.shape()[0] == 1 { g.expand_batch(&mine, batch)? } else { mine };
            g.dropout(&expanded, drop)
        }
        _ => Ok(mine),
    }
}

/// Result of one forward and backward pass.
pub struct VptStep {
    pub logits: Tensor,
    pub loss: Tensor,
    pub grad_prompts: Option<Tensor>,
    pub grad_head_weight: Tensor,
    pub grad_head_bias: Tensor,
    /// The gradient of every backbone tensor the method trains, by timm name, in state-dict
    /// order (empty for VPT).
    pub grad_backbone: Vec<(String, Tensor)>,
    /// Gradient tensors the backward made: one per trainable leaf, none for a frozen tensor.
    pub gradient_tensors: usize,
}

/// Loss and gradients for one batch (no dropout: what `vpt grad` computes).
pub fn vpt_grad(gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32]) -> Result<VptStep> {
    vpt_step(gpu, vit, task, images, labels, None)
}

/// [`vpt_grad`] for the tensors `method` trains.
pub fn vpt_grad_for(gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32], method: &Method) -> Result<VptStep> {
    VptForward::with_method(gpu, vit, task, images, labels, None, method)?.backward()
}

/// Loss and gradients for one batch, with optional prompt dropout (training).
pub fn vpt_step(gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32], dropout: Option<Dropout>) -> Result<VptStep> {
    VptForward::new(gpu, vit, task, images, labels, dropout)?.backward()
}

/// The first half of [`vpt_step`]: the forward to the loss, recorded on a graph, its backward
/// not yet run (so a benchmark can time the two halves apart).
pub struct VptForward {
    graph: Graph,
    vars: TaskVars,
    logits: Var,
    loss: Var,
}

impl VptForward {
    pub fn new(gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32], dropout: Option<Dropout>) -> Result<VptForward> {
        VptForward::with_method(gpu, vit, task, images, labels, dropout, &Method::prompt())
    }

    /// [`VptForward::new`] training what `method` trains (`vpt grad --method`).
    pub fn with_method(gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor, labels: &[u32], dropout: Option<Dropout>, method: &Method) -> Result<VptForward> {
        let batch = images.shape().first().copied().unwrap_or(0);
        if labels.len() != batch {
            return Err(Error::shape("vpt_grad", format!("{} labels for images {:?}", labels.len(), images.shape())));
        }
        let graph = Graph::new(gpu);
        let vars = TaskVars::for_method(&graph, task, vit, method)?;
        let logits = vpt_logits(&graph, vit, task, &vars, images, dropout)?;
        let labels = Labels::new(gpu, labels, task.num_classes())?;
        let loss = graph.cross_entropy(&logits, &labels)?;
        Ok(VptForward { graph, vars, logits, loss })
    }

    /// The mean cross-entropy [1] (computed once the GPU gets to it).
    pub fn loss(&self) -> &Tensor {
        self.loss.value()
    }

    /// The second half: the gradients of prompts and head.
    pub fn backward(self) -> Result<VptStep> {
        let VptForward { graph, vars, logits, loss } = self;
        let grads: Grads = graph.backward(&loss)?;
        let missing = || Error::Internal { what: "vpt_grad".into(), msg: "the loss does not depend on the head".into() };
        // A trained tensor the loss does not reach (none in a ViT) has a zero gradient.
        let grad_backbone =
            vars.backbone.trained().map(|(name, v)| Ok((name.clone(), grads.get(v).cloned().map_or_else(|| Tensor::zeros(v.value().gpu(), v.shape()), Ok)?))).collect::<Result<Vec<_>>>()?;
        Ok(VptStep {
            grad_backbone,
            gradient_tensors: grads.len(),
            grad_prompts: vars.prompts.as_ref().and_then(|p| grads.get(p).cloned()),
            grad_head_weight: grads.get(&vars.head_weight).cloned().ok_or_else(missing)?,
            grad_head_bias: grads.get(&vars.head_bias).cloned().ok_or_else(missing)?,
            logits: logits.value().clone(),
            loss: loss.value().clone(),
        })
    }
}

/// Logits only, recording nothing.
pub fn vpt_forward(gpu: &Gpu, vit: &Vit, task: &VptTask, images: &Tensor) -> Result<Tensor> {
    let g = Graph::inference(gpu);
    let vars = TaskVars::for_inference(&g, task, vit)?;
    Ok(vpt_logits(&g, vit, task, &vars, images, None)?.value().clone())
}

/// A batch file already read: `images` f32 [B, C, H, W] (already normalised), `labels` i64 [B].
pub fn batch_from_file(gpu: &Gpu, f: &TensorFile) -> Result<(Tensor, Vec<u32>)> {
    let path = f.path.as_str();
    let (shape, images) = f.checked_f32("images")?;
    if shape.len() != 4 {
        return Err(Error::Format { path: path.into(), msg: format!("tensor \"images\" has shape {shape:?}, expected [B, 3, H, W]") });
    }
    let labels = match f.tensors.get("labels") {
        Some(_) => {
            let (lshape, l) = f.i64("labels")?;
            if lshape != [shape[0]] {
                return Err(Error::Format { path: path.into(), msg: format!("tensor \"labels\" has shape {lshape:?}, expected [{}]", shape[0]) });
            }
            l.iter().map(|&v| u32::try_from(v).map_err(|_| Error::Format { path: path.into(), msg: format!("label {v} is negative or too large") })).collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    Ok((Tensor::from_slice(gpu, shape, images)?, labels))
}

/// Logits, loss and the gradients as a safetensors file (the `vpt grad` output format); `name`
/// names the file in errors.
pub fn step_to_bytes(name: &str, step: &VptStep) -> Result<Vec<u8>> {
    // (shape, values) of a tensor read back.
    type Host = (Vec<usize>, Vec<f32>);
    let host = |t: &Tensor| -> Result<Host> { Ok((t.shape().to_vec(), t.to_vec()?)) };
    let mut out: Vec<(String, Host)> = vec![
        ("logits".into(), host(&step.logits)?),
        ("loss".into(), (vec![], step.loss.to_vec()?)),
        ("grad.head.weight".into(), host(&step.grad_head_weight)?),
        ("grad.head.bias".into(), host(&step.grad_head_bias)?),
    ];
    if let Some(gp) = &step.grad_prompts {
        out.push(("grad.prompts".into(), host(gp)?));
    }
    for (name, g) in &step.grad_backbone {
        out.push((format!("grad.{name}"), host(g)?));
    }
    let list: Vec<(&str, &[usize], &[f32])> = out.iter().map(|(n, (s, d))| (n.as_str(), &s[..], &d[..])).collect();
    f32_tensors_to_bytes(name, &list, HashMap::new())
}
