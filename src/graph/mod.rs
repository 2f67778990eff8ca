//! A minimal reverse-mode autodiff graph: a tape of recorded ops, each with its backward.
//!
//! The whole idea, in the spirit of micrograd:
//! - A [`Var`] is a tensor plus a flag: does anything we train depend on it (`requires_grad`)?
//!   Trainable leaves ([`Graph::param`]) do; inputs and frozen weights ([`Graph::constant`]) do
//!   not; an op's output does if any of its inputs does.
//! - Every op (see `ops.rs`, and `fused.rs` for the ViT's fused and token ops) computes its forward at once. Only if its output requires a
//!   gradient does it append an [`Entry`] to the tape: which inputs need gradients, and a closure
//!   that turns the output's gradient into the inputs' gradients. The closure captures exactly the
//!   tensors that backward needs (the "saved activations"); nothing else is kept.
//! - [`Graph::backward`] walks the tape from the end, feeding each entry the gradient of its
//!   outputs and adding what comes out into the gradients of its inputs. Each entry is consumed
//!   as it runs, so its saved tensors are freed as soon as they are used.
//!
//! - [`Graph::checkpoint`] trades memory for time: a stretch of ops keeps only its inputs and
//!   runs again, on a tape of its own, when the backward reaches it.
//!
//! What VPT gets from this: a frozen backbone weight never requires a gradient, so no gradient
//! buffer is ever made for it and no weight-gradient kernel (no dW matmul) is ever dispatched;
//! ops before the prompts enter (the patch embedding) record nothing at all.

mod fused;
mod kept;
mod ops;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

pub use fused::MlpRun;
pub use kept::KeepAs;
pub use ops::Dropout;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::elementwise;
use crate::tensor::Tensor;

/// A value in the graph.
#[derive(Clone, Debug)]
pub struct Var {
    id: usize,
    value: Tensor,
    requires_grad: bool,
}

impl Var {
    pub fn value(&self) -> &Tensor {
        &self.value
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }
}

/// Turns the gradients of an entry's outputs (None: no gradient reached that output) into the
/// gradients of its inputs (None: that input needs none).
type BackwardFn = Box<dyn FnOnce(&[Option<Tensor>]) -> Result<Vec<Option<Tensor>>>>;

/// One recorded op.
struct Entry {
    op: &'static str,
    /// For each input: its id if it requires a gradient.
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    backward: BackwardFn,
}

/// The tape. One per forward pass: build it, call `backward` once, drop it.
pub struct Graph {
    gpu: Gpu,
    /// False for inference: no op records anything and no activation is kept.
    recording: bool,
    tape: RefCell<Vec<Entry>>,
    next_id: Cell<usize>,
}

/// Which run of a [`Graph::checkpoint`]ed stretch: the forward, whose outputs are read, or the
/// rerun for the backward, whose outputs only pass gradients back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    Backward,
}

/// Gradients of the trainable leaves, by `Var`.
pub struct Grads {
    by_id: HashMap<usize, Tensor>,
}

impl Grads {
    /// The gradient of `v`, or None if `v` is not trainable or the loss does not depend on it.
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        self.by_id.get(&v.id)
    }
    /// How many gradient tensors exist: one per trainable leaf the loss depends on.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

impl Graph {
    /// A graph that records ops for a backward pass.
    pub fn new(gpu: &Gpu) -> Graph {
        Graph { gpu: gpu.clone(), recording: true, tape: RefCell::default(), next_id: Cell::new(0) }
    }

    /// A graph for inference: ops only compute forwards.
    pub fn inference(gpu: &Gpu) -> Graph {
        Graph { recording: false, ..Graph::new(gpu) }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Whether ops record their backward (false for an inference graph).
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// A trainable leaf (prompts, the head): gets a gradient from `backward`.
    pub fn param(&self, value: Tensor) -> Var {
        // An optimizer updates it in place: a transposed copy or texels made at load would fall
        // behind.
        Var { id: self.fresh_id(), value: value.without_copies(), requires_grad: self.recording }
    }

    /// A leaf that gets no gradient: inputs and frozen weights.
    pub fn constant(&self, value: Tensor) -> Var {
        Var { id: self.fresh_id(), value, requires_grad: false }
    }

    /// Names of the ops on the tape, in recording order (ops whose backward will run).
    pub fn tape_ops(&self) -> Vec<&'static str> {
        self.tape.borrow().iter().map(|e| e.op).collect()
    }

    fn fresh_id(&self) -> usize {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Record an op with one output. `backward(dy, needs)` gets the output's gradient and which
    /// inputs need one, and returns one gradient per input (None where not needed).
    pub(crate) fn record(&self, op: &'static str, inputs: &[&Var], value: Tensor, backward: impl FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + 'static) -> Result<Var> {
        let out_shape = value.shape().to_vec();
        let mut vars = self.record_multi(op, inputs, vec![value], move |dys: &[Option<Tensor>], needs: &[bool]| {
            let dy = dys[0].as_ref().ok_or_else(|| Error::shape(op, format!("no gradient for output {out_shape:?}")))?;
            backward(dy, needs)
        });
        Ok(vars.pop().expect("one output"))
    }

    /// How an op with these inputs should keep its activations: as `keep` says where its backward
    /// will be recorded, else as computed (nothing will read them, so packing would be wasted).
    pub(crate) fn keep_for(&self, inputs: &[&Var], keep: KeepAs) -> KeepAs {
        match self.recording && inputs.iter().any(|v| v.requires_grad) {
            true => keep,
            false => KeepAs::F32,
        }
    }

    /// Record an op with several outputs (e.g. splitting qkv into q, k, v).
    pub(crate) fn record_multi(&self, op: &'static str, inputs: &[&Var], values: Vec<Tensor>, backward: impl FnOnce(&[Option<Tensor>], &[bool]) -> Result<Vec<Option<Tensor>>> + 'static) -> Vec<Var> {
        let requires_grad = self.recording && inputs.iter().any(|v| v.requires_grad);
        let outputs: Vec<Var> = values.into_iter().map(|value| Var { id: self.fresh_id(), value, requires_grad }).collect();
        if requires_grad {
            let needs: Vec<bool> = inputs.iter().map(|v| v.requires_grad).collect();
            self.tape.borrow_mut().push(Entry {
                op,
                inputs: inputs.iter().map(|v| v.requires_grad.then_some(v.id)).collect(),
                outputs: outputs.iter().map(|v| v.id).collect(),
                backward: Box::new(move |dys: &[Option<Tensor>]| backward(dys, &needs)),
            });
        }
        // Without an entry the closure (and every tensor it captured) is dropped right here.
        outputs
    }

    /// Gradients of the one-element `loss` with respect to every trainable leaf it depends on.
    /// Consumes the tape: call once per forward pass.
    pub fn backward(&self, loss: &Var) -> Result<Grads> {
        if loss.value.numel() != 1 {
            return Err(Error::shape("backward", format!("the loss must be a single value, got shape {:?}", loss.shape())));
        }
        if !loss.requires_grad {
            return Err(Error::invalid("backward", "the loss does not depend on any trainable parameter (or the graph is an inference graph)"));
        }
        self.backward_from(vec![(loss.id, Tensor::full(&self.gpu, loss.shape(), 1.0)?)])
    }

    /// Walk the tape from the end, given the gradients of some of its values (`seeds`, by id).
    fn backward_from(&self, seeds: Vec<(usize, Tensor)>) -> Result<Grads> {
        let mut grads: HashMap<usize, Tensor> = seeds.into_iter().collect();
        let tape = std::mem::take(&mut *self.tape.borrow_mut());
        for entry in tape.into_iter().rev() {
            // An output's gradient is complete once we reach the op that made it: every later use
            // of it is further down the tape and has already run.
            let dys: Vec<Option<Tensor>> = entry.outputs.iter().map(|id| grads.remove(id)).collect();
            if dys.iter().all(Option::is_none) {
                continue; // nothing that reaches the loss depends on this op
            }
            let dxs = (entry.backward)(&dys).map_err(|e| match e {
                Error::Shape { op, msg } => Error::Shape { op, msg: format!("{msg} (in the backward of {})", entry.op) },
                other => other,
            })?;
            for (input, dx) in entry.inputs.iter().zip(dxs) {
                if let (Some(id), Some(dx)) = (input, dx) {
                    add_into(&mut grads, *id, dx)?;
                }
            }
        }
        Ok(Grads { by_id: grads })
    }

    /// Gradient checkpointing: `f(graph, inputs, Pass::Forward)` runs here on an inference
    /// graph, so it keeps nothing for its backward; the tape entry keeps only `inputs`. The
    /// backward runs `f(tape, inputs, Pass::Backward)` again on a fresh tape, from the same inputs
    /// with the same kernels in the same order (so with the same bits), backpropagates the
    /// outputs' gradients through it, and hands back the inputs'. In that second pass nothing
    /// reads the outputs' values, only their gradients, which `f` may use to skip work. Memory
    /// for time: one more forward of `f` per step.
    pub fn checkpoint(&self, op: &'static str, inputs: &[&Var], f: impl Fn(&Graph, &[Var], Pass) -> Result<Vec<Var>> + 'static) -> Result<Vec<Var>> {
        if !self.recording || !inputs.iter().any(|v| v.requires_grad) {
            let leaves: Vec<Var> = inputs.iter().map(|v| (*v).clone()).collect();
            return f(self, &leaves, Pass::Forward); // no gradient flows through: nothing to recompute
        }
        let plain = Graph::inference(&self.gpu);
        let leaves: Vec<Var> = inputs.iter().map(|v| plain.constant(v.value().clone())).collect();
        let values = f(&plain, &leaves, Pass::Forward)?.into_iter().map(|v| v.value).collect();
        let kept: Vec<Tensor> = inputs.iter().map(|v| v.value().clone()).collect();
        let gpu = self.gpu.clone();
        Ok(self.record_multi(op, inputs, values, move |dys, needs| {
            let again = Graph::new(&gpu);
            let leaves: Vec<Var> = kept.iter().zip(needs).map(|(t, &need)| if need { again.param(t.clone()) } else { again.constant(t.clone()) }).collect();
            let outputs = f(&again, &leaves, Pass::Backward)?;
            if outputs.len() != dys.len() {
                return Err(Error::Internal { what: op.into(), msg: format!("{} outputs when recomputed, {} the first time", outputs.len(), dys.len()) });
            }
            let seeds = outputs.iter().zip(dys).filter_map(|(o, dy)| dy.clone().filter(|_| o.requires_grad).map(|dy| (o.id, dy))).collect();
            let mut grads = again.backward_from(seeds)?;
            Ok(leaves.iter().map(|l| grads.by_id.remove(&l.id)).collect())
        }))
    }
}

/// grads[id] += dx. Out of place, because a gradient tensor may be shared by several inputs
/// (the backward of `a + b` hands the same dy to both).
fn add_into(grads: &mut HashMap<usize, Tensor>, id: usize, dx: Tensor) -> Result<()> {
    let sum = match grads.remove(&id) {
        Some(prev) => elementwise::add_forward(&prev, &dx)?,
        None => dx,
    };
    grads.insert(id, sum);
    Ok(())
}
