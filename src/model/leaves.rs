//! The backbone's leaves on the autodiff graph for a tuning method (`method.rs`): which of its
//! tensors are trainable leaves, which are replaced by a task's tuned values, and the task's
//! adapters and LoRA pairs (`tuned.rs`). Everything else enters the graph as a constant where
//! it is used (`Vit::embed`, the blocks), and so gets no gradient buffer and no dW product.

use crate::error::Result;
use crate::graph::{Graph, Var};
use crate::model::method::Method;
use crate::model::tuned::Tuned;
use crate::model::vit::Vit;
use crate::tensor::Tensor;

impl Vit {
    /// The backbone's leaves on `g` for a task tuned by `method`: every tensor `method` trains
    /// as a trainable leaf, the task's tuned backbone tensors in place of the backbone's, and
    /// the task's adapters and LoRA (made, initialised as the method says, where the method
    /// trains them and the task has none). Errors if a trained tensor is stored in f16
    /// (`--precision f16` keeps the large weights frozen) or the task's tensors do not fit.
    pub fn backbone_vars(&self, g: &Graph, method: &Method, tuned: &Tuned) -> Result<BackboneVars> {
        let (depth, d) = (self.cfg.depth, self.cfg.embed_dim);
        method.check_depth(depth)?;
        let named = self.named_tensors();
        let shapes: Vec<(String, Vec<usize>)> = named.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect();
        tuned.check_against(depth, d, &shapes)?;
        let mut leaves = Vec::new();
        for (name, t) in named {
            let value = tuned.backbone.iter().find(|(n, _)| *n == name).map_or(t, |(_, v)| v);
            if method.trains(&name, depth) {
                method.check_trainable(&name, value)?;
                leaves.push((name, g.param(value.clone())));
            } else if !std::ptr::eq(value, t) {
                leaves.push((name, g.constant(value.clone())));
            }
        }
        let leaf = |t: &Tensor, trains: bool| if trains { g.param(t.clone()) } else { g.constant(t.clone()) };
        let made_adapters;
        let adapters = match (tuned.adapters.is_empty(), method.adapter) {
            (true, true) => {
                made_adapters = Tuned::zero_adapters(g.gpu(), depth, d, method.adapter_reduction)?;
                &made_adapters
            }
            _ => &tuned.adapters,
        };
        for (i, a) in adapters.iter().enumerate() {
            for (part, t) in [("down.weight", &a.down.0), ("down.bias", &a.down.1), ("up.weight", &a.up.0), ("up.bias", &a.up.1)] {
                leaves.push((format!("adapter.{i}.{part}"), leaf(t, method.adapter)));
            }
        }
        let made_lora;
        let (lora, alpha) = match (tuned.lora.is_empty(), method.lora) {
            (true, true) => {
                made_lora = Tuned::initial_lora(g.gpu(), depth, d, method.lora_rank, 0)?;
                (&made_lora, method.lora_alpha.unwrap_or(method.lora_rank as f32))
            }
            _ => (&tuned.lora, method.lora_alpha.unwrap_or(tuned.lora_alpha)),
        };
        for (i, l) in lora.iter().enumerate() {
            leaves.push((format!("lora.{i}.qkv.a"), leaf(&l.a, method.lora)));
            leaves.push((format!("lora.{i}.qkv.b"), leaf(&l.b, method.lora)));
        }
        let lora_scale = lora.first().map_or(0.0, |l| alpha / l.a.shape()[0] as f32);
        Ok(BackboneVars { leaves, lora_alpha: alpha, lora_scale })
    }
}

/// The backbone's leaves that are not simply its frozen tensors, by name: what a method trains,
/// tuned values a task replaces them with, adapters and LoRA. Every other backbone tensor enters
/// the graph as a constant where it is used. The default is plain VPT: none.
#[derive(Clone, Default)]
pub struct BackboneVars {
    leaves: Vec<(String, Var)>,
    /// α of the LoRA pairs, and α/R, the scale of B·A (0 without LoRA).
    pub lora_alpha: f32,
    pub lora_scale: f32,
}

impl BackboneVars {
    /// The leaf for the backbone tensor `name`: the method's or task's leaf, or a constant
    /// holding the backbone's `t`.
    pub fn var(&self, g: &Graph, name: &str, t: &Tensor) -> Var {
        self.get(name).unwrap_or_else(|| g.constant(t.clone()))
    }

    /// The leaf named `name` (an adapter's, LoRA's, or a tuned or trained backbone tensor), if any.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.leaves.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    /// Is there any leaf (trained or tuned) whose name starts with `prefix`?
    pub fn has_leaf_under(&self, prefix: &str) -> bool {
        self.leaves.iter().any(|(n, _)| n.starts_with(prefix))
    }

    /// The trained leaves, by name, in state-dict order, then adapters, then LoRA.
    pub fn trained(&self) -> impl Iterator<Item = &(String, Var)> {
        self.leaves.iter().filter(|(_, v)| v.requires_grad())
    }
}
