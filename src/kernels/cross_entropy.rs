//! Softmax cross-entropy with integer labels, averaged over the batch
//! (`torch.nn.functional.cross_entropy(logits, labels)`, reduction 'mean'). Kernels in
//! `wgsl/cross_entropy.wgsl`; the batch mean is `reduce::mean_forward`.

use super::reduce::mean_forward;
use super::{expect_rank, grid_1d, same_device};
use super::{grid_rows, row_reduce_shader};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Gpu, Params, Shader};
use crate::tensor::{Labels, Tensor};

wgsl_shader!("cross_entropy", uses ["flat", "row_reduce"]);
wgsl_shader!(SHADER_SUBGROUP = "cross_entropy" as "cross_entropy_subgroup", needs SUBGROUP, uses ["flat", "row_reduce_subgroup"]);

/// The family compiled with subgroup reductions where the adapter has them (see
/// [`row_reduce_shader`]).
fn shader(gpu: &Gpu) -> &'static Shader {
    row_reduce_shader(gpu, &SHADER, &SHADER_SUBGROUP)
}

/// What the forward returns.
pub struct CrossEntropyOut {
    /// [1]: mean over the batch of `losses`.
    pub loss: Tensor,
    /// [B]: per-sample loss, logsumexp(logits) − logit[label].
    pub losses: Tensor,
    /// [B, C]: softmax of the logits, saved for the backward.
    pub probs: Tensor,
}

/// logits: [B, C], labels: B class indices, checked against C classes → loss [1], losses [B], probs [B, C].
pub fn cross_entropy_forward(logits: &Tensor, labels: &Labels) -> Result<CrossEntropyOut> {
    let op = "cross_entropy_forward";
    check_batch(op, logits, "logits", labels)?;
    let (batch, classes) = (logits.shape()[0], logits.shape()[1]);
    let probs = logits.empty_like_shape(logits.shape())?;
    let losses = logits.empty_like_shape(&[batch])?;
    let params = Params::new().dim("batch", batch).dim("classes", classes);
    let buffers = [Bind::read(1, logits.buffer()), Bind::read(2, labels.buffer()), Bind::read_write(3, probs.buffer()), Bind::read_write(4, losses.buffer())];
    logits.gpu().dispatch(shader(logits.gpu()), op, &params, &buffers, grid_rows(logits.gpu(), op, batch)?)?;
    // A separate single-workgroup pass with a fixed summation order, so the loss is deterministic
    // (atomics from each row would add in whatever order the rows finish).
    let loss = mean_forward(&losses)?;
    Ok(CrossEntropyOut { loss, losses, probs })
}

/// dlogits = (probs − onehot(labels)) · dloss / B. probs: [B, C] from the forward, dloss: [1]
/// (the upstream gradient of the mean loss) → dlogits: [B, C].
pub fn cross_entropy_backward(probs: &Tensor, labels: &Labels, dloss: &Tensor) -> Result<Tensor> {
    let op = "cross_entropy_backward";
    check_batch(op, probs, "probs", labels)?;
    same_device(op, probs, dloss)?;
    if dloss.shape() != [1] {
        return Err(Error::shape(op, format!("dloss must be [1] (the gradient of the mean loss), got shape {:?}", dloss.shape())));
    }
    let (batch, classes) = (probs.shape()[0], probs.shape()[1]);
    let dlogits = probs.empty_like_shape(probs.shape())?;
    let params = Params::new().dim("batch", batch).dim("classes", classes);
    let buffers = [Bind::read(2, labels.buffer()), Bind::read(5, probs.buffer()), Bind::read(6, dloss.buffer()), Bind::read_write(7, dlogits.buffer())];
    probs.gpu().dispatch(shader(probs.gpu()), op, &params, &buffers, grid_1d(probs.gpu(), probs.numel())?)?;
    Ok(dlogits)
}

/// `t` must be [B, C] with one label per row.
fn check_batch(op: &'static str, t: &Tensor, name: &str, labels: &Labels) -> Result<()> {
    expect_rank(op, t, name, 2, "[B, C]")?;
    if labels.len() != t.shape()[0] {
        return Err(Error::shape(op, format!("{name} has shape {:?} (B = {}) but labels has shape [{}]; they need one label per row", t.shape(), t.shape()[0], labels.len())));
    }
    // Labels were checked to lie below their class count when uploaded; that count must be C, or
    // a label could index past the row.
    if labels.num_classes() != t.shape()[1] {
        return Err(Error::shape(op, format!("{name} has shape {:?} (C = {}) but the labels were made for {} classes", t.shape(), t.shape()[1], labels.num_classes())));
    }
    Ok(())
}
