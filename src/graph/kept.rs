//! How an op stores an activation it keeps for its backward ([`KeepAs`]), and the kept value
//! itself ([`Kept`]).
//!
//! Under `--precision f16` the largest kept activations are stored as f16 between the forward and
//! the backward: half their memory, while every kernel still computes and sums in f32 (a kept
//! tensor is widened back, `kernels::halves`, just before its backward reads it). The forward is
//! untouched, so logits and loss are the same bits as with f32 kept; only gradients see the
//! rounding (one f16 step, 2⁻¹⁰ relative, of each kept value).
//!
//! What is kept as f16 (see `fused.rs`), and why only that:
//! - the MLP's pre-activation [B, T, 4D], which only GELU's derivative reads;
//! - the fused attention's q, k, v and o [B, H, T, hd], which its backward multiplies.
//!
//! Stay f32: the residual stream and the LayerNorm inputs (the norm's backward subtracts the row
//! mean from each value, and a row whose mean is large beside its spread would lose most of its
//! digits), the statistics (row means, 1/σ, log-sum-exp), the unfused attention's probabilities
//! (the readable reference path), and every tensor a trained weight's gradient reads.

use crate::error::Result;
use crate::kernels::halves;
use crate::tensor::{DType, Tensor};

/// How an op stores the activations it keeps for its backward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeepAs {
    /// As computed.
    #[default]
    F32,
    /// Rounded to f16 (the ones listed in this file's header; the rest as computed).
    F16,
}

/// An activation kept for a backward: as computed, or packed as f16.
pub struct Kept(Tensor);

impl Kept {
    /// Keep `t` as `keep` says.
    pub fn new(t: Tensor, keep: KeepAs) -> Result<Kept> {
        match keep {
            KeepAs::F32 => Ok(Kept(t)),
            KeepAs::F16 => Ok(Kept(halves::to_halves(&t)?)),
        }
    }

    /// The value as f32, for the backward to read (widened back if it was packed).
    pub fn restore(&self) -> Result<Tensor> {
        match self.0.dtype() {
            DType::F32 => Ok(self.0.clone()),
            DType::F16 => halves::from_halves(&self.0),
        }
    }
}
