//! Differentiable ops: each computes its forward with a kernel launcher and records a backward
//! closure that captures only what that backward reads. Shapes use B batch, T tokens, D width,
//! H heads, hd head width, C classes, N/K matmul sizes.

use super::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::cross_entropy::{self, CrossEntropyOut};
use crate::kernels::layernorm::{self, LayerNormOut};
use crate::kernels::matmul::{self, MatmulNeed, MatmulOptions};
use crate::kernels::{elementwise, gelu};
use crate::tensor::{Labels, Tensor};

/// torch.nn.Linear's layout: y = x · wᵀ, w stored [out, in].
pub(super) const LINEAR: MatmulOptions = MatmulOptions { trans_a: false, trans_b: true };

/// Gradients [dx, dw, db] of y = x · wᵀ + b given dy, those `need` asks for. `x` is the saved
/// input, or None when w is frozen (dw is then never asked for, and x was not kept): dx = dy · w
/// needs only the weight.
pub(super) fn linear_backward(x: Option<&Tensor>, w: &Tensor, dy: &Tensor, need: MatmulNeed) -> Result<[Option<Tensor>; 3]> {
    if let Some(x) = x {
        let g = matmul::matmul_backward(x, w, dy, LINEAR, need)?;
        return Ok([g.da, g.db, g.dbias]);
    }
    if need.b {
        return Err(Error::Internal { what: "linear_backward".into(), msg: "dW asked for, but the layer's input was not kept (its weight was frozen when the op ran)".into() });
    }
    // dx [..., K] = dy [..., N] · w [N, K]
    let dx = need
        .a
        .then(|| {
            let (b, opts) = frozen_dx_operand(w);
            matmul::matmul_forward(dy, b, None, opts)
        })
        .transpose()?;
    let db = need.bias.then(|| matmul::bias_backward(dy)).transpose()?;
    Ok([dx, None, db])
}

/// What dX = dY · w reads for a frozen weight w [N, K], and how: its transposed copy [K, N] in
/// the forward's layout (dY · (wᵀ)ᵀ), where the load made one (`DxLayout`), else w itself. The
/// same sums either way, in another kernel's order.
pub(super) fn frozen_dx_operand(w: &Tensor) -> (&Tensor, MatmulOptions) {
    match w.transposed() {
        Some(wt) => (wt, LINEAR),
        None => (w, MatmulOptions::default()),
    }
}

/// Prompt dropout: during training each element is zeroed with probability `p` and the survivors
/// scaled by 1/(1−p) (torch.nn.Dropout). The mask comes from a seeded generator on the host.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub p: f32,
    pub seed: u64,
}

impl Graph {
    /// y = x · wᵀ + b, like torch.nn.Linear. x: [..., K], w: [N, K], b: [N] → y: [..., N].
    pub fn linear(&self, x: &Var, w: &Var, b: Option<&Var>) -> Result<Var> {
        let y = matmul::matmul_forward(x.value(), w.value(), b.map(Var::value), LINEAR)?;
        // x is needed only for dW: a frozen backbone layer keeps nothing but its own weight.
        let saved_x = w.requires_grad().then(|| x.value().clone());
        let ws = w.value().clone();
        let mut inputs = vec![x, w];
        inputs.extend(b);
        self.record("linear", &inputs, y, move |dy, needs| {
            let need = MatmulNeed { a: needs[0], b: needs[1], bias: needs.get(2).copied().unwrap_or(false) };
            Ok(linear_backward(saved_x.as_ref(), &ws, dy, need)?.to_vec())
        })
    }

    /// Batched c = op(a) · op(b) (attention's q·kᵀ and attn·v).
    pub fn matmul(&self, a: &Var, b: &Var, opts: MatmulOptions) -> Result<Var> {
        let c = matmul::matmul_forward(a.value(), b.value(), None, opts)?;
        let (av, bv) = (a.value().clone(), b.value().clone());
        self.record("matmul", &[a, b], c, move |dc, needs| {
            let g = matmul::matmul_backward(&av, &bv, dc, opts, MatmulNeed { a: needs[0], b: needs[1], bias: false })?;
            Ok(vec![g.da, g.db])
        })
    }

    /// y = a + b (residual connection).
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        let y = elementwise::add_forward(a.value(), b.value())?;
        self.record("add", &[a, b], y, |dy, _| {
            let (da, db) = elementwise::add_backward(dy);
            Ok(vec![Some(da), Some(db)])
        })
    }

    /// y = x + b broadcast over the rows. x: [..., N], b: [N].
    pub fn bias_add(&self, x: &Var, b: &Var) -> Result<Var> {
        let y = elementwise::bias_add_forward(x.value(), b.value())?;
        self.record("bias_add", &[x, b], y, |dy, needs| {
            let (dx, db) = if needs[1] {
                let (dx, db) = elementwise::bias_add_backward(dy)?;
                (dx, Some(db))
            } else {
                (dy.clone(), None)
            };
            Ok(vec![Some(dx), db])
        })
    }

    /// y = s · x.
    pub fn scale(&self, x: &Var, s: f32) -> Result<Var> {
        let y = elementwise::scale_forward(x.value(), s)?;
        self.record("scale", &[x], y, move |dy, _| Ok(vec![Some(elementwise::scale_backward(dy, s)?)]))
    }

    /// y = a ⊙ b.
    pub fn mul(&self, a: &Var, b: &Var) -> Result<Var> {
        let y = elementwise::mul_forward(a.value(), b.value())?;
        let (av, bv) = (a.value().clone(), b.value().clone());
        self.record("mul", &[a, b], y, move |dy, needs| {
            let (da, db) = elementwise::mul_backward(&av, &bv, dy, needs[0], needs[1])?;
            Ok(vec![da, db])
        })
    }

    /// y[.., j] = x[.., j] · s[j]: the last axis rescaled by learned factors. x: [..., N], s: [N].
    pub fn mul_last(&self, x: &Var, s: &Var) -> Result<Var> {
        let y = elementwise::mul_last_forward(x.value(), s.value())?;
        let (xv, sv) = (x.value().clone(), s.value().clone());
        self.record("mul_last", &[x, s], y, move |dy, needs| {
            let (dx, ds) = elementwise::mul_last_backward(&xv, &sv, dy, needs[0], needs[1])?;
            Ok(vec![dx, ds])
        })
    }

    /// Exact (erf) GELU.
    pub fn gelu(&self, x: &Var) -> Result<Var> {
        let y = gelu::gelu_forward(x.value())?;
        let xs = x.value().clone();
        self.record("gelu", &[x], y, move |dy, _| Ok(vec![Some(gelu::gelu_backward(&xs, dy)?)]))
    }

    /// LayerNorm over the last axis. x: [..., D], w, b: [D].
    pub fn layernorm(&self, x: &Var, w: &Var, b: &Var, eps: f32) -> Result<Var> {
        let LayerNormOut { y, mean, rstd } = layernorm::layernorm_forward(x.value(), w.value(), b.value(), eps)?;
        let (xs, ws) = (x.value().clone(), w.value().clone());
        self.record("layernorm", &[x, w, b], y, move |dy, needs| {
            let need_params = needs[1] || needs[2];
            let g = layernorm::layernorm_backward(&xs, &ws, &mean, &rstd, dy, need_params)?;
            Ok(vec![needs[0].then_some(g.dx), g.dweight.filter(|_| needs[1]), g.dbias.filter(|_| needs[2])])
        })
    }

    /// Softmax over the last axis.
    pub fn softmax(&self, x: &Var) -> Result<Var> {
        self.softmax_scaled(x, 1.0)
    }

    /// The same values with another shape of the same size.
    pub fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        let y = x.value().reshape(shape)?;
        let original = x.shape().to_vec();
        self.record("reshape", &[x], y, move |dy, _| Ok(vec![Some(dy.reshape(&original)?)]))
    }

    /// Mean softmax cross-entropy over the batch. logits [B, C] → loss [1].
    pub fn cross_entropy(&self, logits: &Var, labels: &Labels) -> Result<Var> {
        let CrossEntropyOut { loss, probs, .. } = cross_entropy::cross_entropy_forward(logits.value(), labels)?;
        let labels = labels.clone();
        self.record("cross_entropy", &[logits], loss, move |dloss, _| Ok(vec![Some(cross_entropy::cross_entropy_backward(&probs, &labels, dloss)?)]))
    }

    /// Dropout with a host-generated mask (identity when p = 0).
    pub fn dropout(&self, x: &Var, dropout: Dropout) -> Result<Var> {
        if dropout.p <= 0.0 {
            return Ok(x.clone());
        }
        if dropout.p >= 1.0 {
            return Err(Error::invalid("dropout", format!("p = {} must be below 1", dropout.p)));
        }
        let keep = 1.0 / (1.0 - dropout.p);
        let mut state = dropout.seed;
        let mask: Vec<f32> = (0..x.value().numel()).map(|_| if crate::rng::next_unit(&mut state) < dropout.p as f64 { 0.0 } else { keep }).collect();
        let mask = self.constant(Tensor::from_slice(&self.gpu, x.shape(), &mask)?);
        self.mul(x, &mask)
    }
}
