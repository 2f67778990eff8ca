//! What a task file holds besides prompts and head: the tensors the methods added (each method
//! names its own, see the registry in `mod.rs`), and tuned copies of backbone tensors under their timm
//! names (`blocks.3.attn.qkv.bias`, `pos_embed`, …) that replace the backbone's when the task is
//! loaded. A task without them is plain VPT.

use std::sync::Arc;

use super::method::Method;
use super::tuner::{Added, Backbone, Dims, Named, Tuner};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::TensorFile;
use crate::tensor::Tensor;

/// Tuned backbone tensors and added tensors of a task (all empty for VPT).
#[derive(Clone, Default)]
pub struct Tuned {
    /// Backbone tensors by timm name, replacing the backbone's, in state-dict order.
    pub backbone: Vec<Named>,
    /// Each method's added tensors, in registry order.
    pub added: Vec<Added>,
}

/// Is `name` a backbone tensor's timm name (what a task may tune)?
pub fn is_backbone_name(name: &str) -> bool {
    ["cls_token", "pos_embed"].contains(&name) || ["patch_embed.", "blocks.", "norm."].iter().any(|p| name.starts_with(p))
}

/// Where a backbone tensor comes in timm's state dict: cls_token, pos_embed, patch_embed, the
/// blocks in order (each norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2; weight before
/// bias), the final norm. The order tuned tensors are kept, trained and written in.
pub fn state_dict_rank(name: &str) -> (usize, usize, usize) {
    const PARTS: [&str; 12] = [
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
    ];
    const EMBED: [&str; 4] = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"];
    if let Some(i) = EMBED.iter().position(|&n| n == name) {
        return (0, 0, i);
    }
    if let Some(rest) = name.strip_prefix("blocks.") {
        if let Some((i, part)) = rest.split_once('.') {
            let part = PARTS.iter().position(|&p| p == part).unwrap_or(PARTS.len());
            return (1, i.parse().unwrap_or(usize::MAX), part);
        }
    }
    (2, 0, usize::from(name != "norm.weight"))
}

impl Tuned {
    /// What a fresh run of `method` starts from on a backbone of `dims` whose tensors are
    /// `backbone` (timm name, tensor): an f32 copy of every backbone tensor it trains (the
    /// backbone itself is never changed) and the tensors its methods add, initialised. An error
    /// if one of those tensors is stored in f16 (`--precision f16`).
    pub fn for_method(method: &Method, backbone: &[(String, &Tensor)], dims: Dims, gpu: &Gpu, seed: u64) -> Result<Tuned> {
        gpu.blocking("a method's start", Tuned::for_method_async(method, backbone, dims, gpu, seed))
    }

    /// [`Tuned::for_method`] without blocking (in a browser): the backbone values the methods
    /// read at their start (`Tuner::reads_at_start`, DoRA's qkv weights) are read back first.
    pub async fn for_method_async(method: &Method, backbone: &[(String, &Tensor)], dims: Dims, gpu: &Gpu, seed: u64) -> Result<Tuned> {
        method.check_depth(dims.depth)?;
        let values = start_values(method.parts(), backbone, dims.depth).await?;
        let mut tuned = Tuned::default();
        for (name, t) in backbone {
            if method.trains(name, dims.depth) {
                method.check_trainable(name, t)?;
                // Copied on the GPU: no read-back, so a browser can start a run too.
                let copy = Tensor::zeros(t.gpu(), t.shape())?;
                copy.copy_from(t)?;
                tuned.backbone.push((name.clone(), copy));
            }
        }
        let backbone = Backbone { gpu, dims, tensors: backbone, values: &values };
        for part in method.parts() {
            let tensors = part.initial(&backbone, seed)?;
            if !tensors.is_empty() {
                tuned.added.push(Added { tuner: part.clone(), tensors });
            }
        }
        Ok(tuned)
    }

    /// Every tensor, by task-file name: tuned backbone tensors in state-dict order, then each
    /// method's added tensors.
    pub fn named(&self) -> Vec<(String, &Tensor)> {
        let backbone = self.backbone.iter().map(|(n, t)| (n.clone(), t));
        backbone.chain(self.added.iter().flat_map(|a| a.tensors.iter().map(|(n, t)| (n.clone(), t)))).collect()
    }

    /// The metadata its methods write beside their tensors.
    pub fn metadata(&self) -> Vec<(String, String)> {
        self.added.iter().flat_map(|a| a.tuner.metadata()).collect()
    }

    /// Is there nothing here (a plain VPT task)?
    pub fn is_empty(&self) -> bool {
        self.backbone.is_empty() && self.added.is_empty()
    }

    /// Read what `f` holds besides prompts and head. Each method's shapes are checked against
    /// one another here, and against the backbone by [`Tuned::check_against`].
    pub fn from_file(gpu: &Gpu, f: &TensorFile) -> Result<Tuned> {
        let mut names: Vec<&String> = f.tensors.keys().filter(|n| is_backbone_name(n)).collect();
        names.sort_by_key(|n| state_dict_rank(n));
        let backbone = names.into_iter().map(|name| Ok((name.clone(), super::tuner::read_tensor(gpu, f, name)?))).collect::<Result<Vec<Named>>>()?;
        Ok(Tuned { backbone, added: super::read_added(gpu, f)? })
    }

    /// Check the added tensors against a backbone of `dims`, and that every tuned backbone
    /// tensor exists there with the same shape (`backbone`: its tensors' shapes by name).
    pub fn check_against(&self, dims: Dims, backbone: &[(String, Vec<usize>)]) -> Result<()> {
        for added in &self.added {
            added.tuner.check_tensors(&added.tensors, dims)?;
        }
        for (name, t) in &self.backbone {
            match backbone.iter().find(|(n, _)| n == name) {
                Some((_, shape)) if shape[..] == *t.shape() => {}
                Some((_, shape)) => return Err(Error::shape("task", format!("tuned {name} {:?} does not match the backbone's {shape:?}", t.shape()))),
                None => return Err(Error::shape("task", format!("tuned {name} is not a tensor of this backbone"))),
            }
        }
        Ok(())
    }
}

/// The values of the backbone tensors `parts` read at their start (`Tuner::reads_at_start`),
/// read back without blocking (in a browser).
pub(super) async fn start_values(parts: &[Arc<dyn Tuner>], backbone: &[(String, &Tensor)], depth: usize) -> Result<Vec<(String, Vec<f32>)>> {
    let mut values = Vec::new();
    for name in parts.iter().flat_map(|p| p.reads_at_start(depth)) {
        let tensor = backbone.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        let tensor = tensor.ok_or_else(|| Error::Internal { what: "backbone".into(), msg: format!("a method reads {name}, which the backbone lacks") })?;
        values.push((name, tensor.to_vec_async().await?));
    }
    Ok(values)
}
