//! The backbone's leaves on the autodiff graph for a tuning method: which of its tensors are
//! trainable leaves, which are replaced by a task's tuned values, and the tensors the task's
//! methods added. Everything else enters the graph as a constant where it is used
//! (`Vit::embed`, the blocks), and so gets no gradient buffer and no dW product.

use std::sync::Arc;

use super::method::Method;
use super::tuned::{start_values, Tuned};
use super::tuner::{Added, Backbone, Dims, Leaves, Tuner};
use crate::error::Result;
use crate::graph::{Graph, Var};
use crate::tensor::Tensor;

/// The backbone's leaves that are not simply its frozen tensors, by name (what a method trains,
/// tuned values a task replaces them with, added tensors), and the methods that act inside the
/// blocks with them. The default is plain VPT: none.
#[derive(Clone, Default)]
pub struct BackboneVars {
    leaves: Leaves,
    /// The methods whose added tensors are among the leaves, in registry order.
    acting: Vec<Arc<dyn Tuner>>,
}

impl BackboneVars {
    /// The leaves on `g` for a task tuned by `method`, on a backbone of `dims` whose tensors are
    /// `backbone` (timm name, tensor): every tensor `method` trains as a trainable leaf, the
    /// task's tuned backbone tensors in place of the backbone's, and the tensors the task's
    /// methods added (made, initialised as the method says, where the method adds them and the
    /// task has none). Errors if a trained tensor is stored in f16 (`--precision f16` keeps the
    /// large weights frozen) or the task's tensors do not fit.
    pub fn new(g: &Graph, method: &Method, tuned: &Tuned, backbone: Vec<(String, &Tensor)>, dims: Dims) -> Result<BackboneVars> {
        method.check_depth(dims.depth)?;
        let shapes: Vec<(String, Vec<usize>)> = backbone.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect();
        tuned.check_against(dims, &shapes)?;
        let mut leaves = Leaves::default();
        for &(ref name, t) in &backbone {
            let value = tuned.backbone.iter().find(|(n, _)| n == name).map_or(t, |(_, v)| v);
            if method.trains(name, dims.depth) {
                method.check_trainable(name, value)?;
                leaves.push(name.clone(), g.param(value.clone()));
            } else if !std::ptr::eq(value, t) {
                leaves.push(name.clone(), g.constant(value.clone()));
            }
        }
        // The task's added tensors, and for a method the task has none of, its initial ones.
        let mut made = Vec::new();
        let fresh: Vec<Arc<dyn Tuner>> = method.parts().iter().filter(|p| !tuned.added.iter().any(|a| a.tuner.name() == p.name())).cloned().collect();
        // Read back only where a method asks (DoRA, for a task without its tensors: `vpt grad`):
        // a browser's run always has its methods' tensors, and must not block.
        let values = match fresh.iter().any(|p| !p.reads_at_start(dims.depth).is_empty()) {
            true => g.gpu().blocking("a method's start", start_values(&fresh, &backbone, dims.depth))?,
            false => Vec::new(),
        };
        let view = Backbone { gpu: g.gpu(), dims, tensors: &backbone, values: &values };
        for part in &fresh {
            let tensors = part.initial(&view, 0)?;
            if !tensors.is_empty() {
                made.push(Added { tuner: part.clone(), tensors });
            }
        }
        let mut added: Vec<&Added> = tuned.added.iter().chain(&made).collect();
        added.sort_by_key(|a| super::rank_of(&a.tuner.name()));
        let mut acting = Vec::new();
        for a in added {
            for (name, t) in &a.tensors {
                let leaf = if method.trains_added(name) { g.param(t.clone()) } else { g.constant(t.clone()) };
                leaves.push(name.clone(), leaf);
            }
            acting.push(a.tuner.clone());
        }
        Ok(BackboneVars { leaves, acting })
    }

    /// The leaf for the backbone tensor `name`: the method's or task's leaf, or a constant
    /// holding the backbone's `t`.
    pub fn var(&self, g: &Graph, name: &str, t: &Tensor) -> Var {
        self.leaves.get(name).unwrap_or_else(|| g.constant(t.clone()))
    }

    /// Every leaf by name, for the methods acting in a block.
    pub fn leaves(&self) -> &Leaves {
        &self.leaves
    }

    /// The methods that act inside the blocks, in registry order.
    pub fn acting(&self) -> &[Arc<dyn Tuner>] {
        &self.acting
    }

    /// Is there any leaf (trained or tuned) whose name starts with `prefix`?
    pub fn has_leaf_under(&self, prefix: &str) -> bool {
        self.leaves.iter().any(|(n, _)| n.starts_with(prefix))
    }

    /// The trained leaves, by name: backbone tensors in state-dict order, then added tensors.
    pub fn trained(&self) -> impl Iterator<Item = &(String, Var)> {
        self.leaves.iter().filter(|(_, v)| v.requires_grad())
    }
}
