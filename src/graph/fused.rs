//! The ops a ViT needs beyond the generic ones in `ops.rs`: fusions that save a pass over memory
//! or a kernel launch (the MLP with GELU in its matmuls, the residual add with the LayerNorm after
//! it, softmax with its scale), and the token and head reshuffles of attention and VPT. Each
//! records a backward closure that captures only what that backward reads.
//! Shapes: B batch, T tokens, D width, H heads, hd head width, N patches.

use std::ops::Range;

use super::kept::{KeepAs, Kept};
use super::ops::{frozen_dx_operand, linear_backward, LINEAR};
use super::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::attention::AttentionOut;
use crate::kernels::layernorm::{self, AddLayerNormOut};
use crate::kernels::matmul::{self, MatmulGeluOut, MatmulNeed, MatmulOptions};
use crate::kernels::{attention, heads, patch, softmax, tokens};
use crate::tensor::Tensor;

/// How [`Graph::mlp`] runs. The default keeps the pre-activation and computes the output.
#[derive(Clone, Copy, Debug)]
pub struct MlpRun {
    /// Keep fc1's input instead of its pre-activation, and run fc1 again in the backward.
    pub recompute_fc1: bool,
    /// False: nothing will read the output's value, only send back its gradient (a block run
    /// again for its backward), so fc2's product is skipped and the output is zeros.
    pub output_read: bool,
    /// How the pre-activation is kept (f16 under `--precision f16`; see `kept.rs`).
    pub keep: KeepAs,
}

impl Default for MlpRun {
    fn default() -> MlpRun {
        MlpRun { recompute_fc1: false, output_read: true, keep: KeepAs::F32 }
    }
}

impl Graph {
    /// The transformer MLP, fc2(gelu(fc1(x))), as one op so that GELU costs no pass of its own:
    /// it runs in fc1's matmul as each result is stored, and its derivative in the matmul that
    /// takes the gradient back through fc2 (`matmul_gelu_forward`, `matmul_gelu_grad`).
    /// x: [..., D]; fc1 = (w1 [Hd, D], b1 [Hd]); fc2 = (w2 [D, Hd], b2 [D]) → [..., D].
    ///
    /// The backward needs fc1's pre-activation [..., Hd] (GELU's derivative). It is kept (as
    /// `run.keep` says), or, with `run.recompute_fc1`, fc1's input x [..., D] is kept instead (4×
    /// smaller in a ViT) and fc1 runs again in the backward: the same kernel on the same input, so
    /// the same bits.
    pub fn mlp(&self, x: &Var, fc1: (&Var, &Var), fc2: (&Var, &Var), run: MlpRun) -> Result<Var> {
        let MatmulGeluOut { pre, y: hidden } = matmul::matmul_gelu_forward(x.value(), fc1.0.value(), Some(fc1.1.value()), LINEAR)?; // [..., Hd] each
        let y = match run.output_read {
            true => matmul::matmul_forward(&hidden, fc2.0.value(), Some(fc2.1.value()), LINEAR)?, // [..., D]
            false => x.value().empty_like_shape(&[&x.shape()[..x.shape().len() - 1], &[fc2.0.shape()[0]]].concat())?,
        };
        // Kept for backward: the pre-activation or what makes it again, the weights, and the
        // layers' inputs where their weight trains. hidden, the largest, is usually freed here.
        let w1_trains = fc1.0.requires_grad();
        let saved_x = (w1_trains || run.recompute_fc1).then(|| x.value().clone());
        let keep = self.keep_for(&[x, fc1.0, fc1.1, fc2.0, fc2.1], run.keep);
        let saved_pre = (!run.recompute_fc1).then(|| Kept::new(pre, keep)).transpose()?;
        let saved_hidden = fc2.0.requires_grad().then_some(hidden);
        let (w1, b1, w2) = (fc1.0.value().clone(), fc1.1.value().clone(), fc2.0.value().clone());
        self.record("mlp", &[x, fc1.0, fc1.1, fc2.0, fc2.1], y, move |dy, needs| {
            // fc2's own parameters (dy [..., D]); its dX is never stored, see dpre.
            let [_, dw2, db2] = linear_backward(saved_hidden.as_ref(), &w2, dy, MatmulNeed { a: false, b: needs[3], bias: needs[4] })?;
            let [dx, dw1, db1] = if needs[..3].contains(&true) {
                let pre = match (saved_pre, &saved_x) {
                    (Some(pre), _) => pre.restore()?,
                    (None, Some(x)) => matmul::matmul_gelu_forward(x, &w1, Some(&b1), LINEAR)?.pre,
                    (None, None) => return Err(Error::Internal { what: "mlp".into(), msg: "neither fc1's pre-activation nor its input was kept".into() }),
                };
                // d(pre) [..., Hd] = (dy · w2) ⊙ gelu'(pre), in one kernel.
                let (w2_read, opts) = frozen_dx_operand(&w2);
                let dpre = matmul::matmul_gelu_grad(dy, w2_read, opts, &pre)?;
                drop(pre);
                let x_for_dw1 = saved_x.as_ref().filter(|_| w1_trains);
                linear_backward(x_for_dw1, &w1, &dpre, MatmulNeed { a: needs[0], b: needs[1], bias: needs[2] })?
            } else {
                [None, None, None]
            };
            Ok(vec![dx, dw1, db1, dw2, db2])
        })
    }

    /// [1, T, D] → [B, T, D]: every image gets the same tokens (their gradient is summed over the
    /// batch). Needed where each image must have its own copy, e.g. a per-image dropout mask.
    pub fn expand_batch(&self, x: &Var, batch: usize) -> Result<Var> {
        if x.shape().len() != 3 || x.shape()[0] != 1 {
            return Err(Error::shape("expand_batch", format!("x must be [1, T, D], got {:?}", x.shape())));
        }
        let stacked = self.concat_tokens(&vec![x; batch])?; // [1, B·T, D]
        self.reshape(&stacked, &[batch, x.shape()[1], x.shape()[2]])
    }

    /// s = x + r and y = LayerNorm(s) in one kernel each way: a pre-norm block's residual add and
    /// the norm after it (see `add_layernorm_forward`). x, r: [..., D], w, b: [D] → (s, y).
    ///
    /// s has other uses (the next residual), so its gradient arrives in two parts: ds from those
    /// uses and dy through the norm. The backward adds them inside the LayerNorm backward kernel
    /// and hands the result to both x and r. Saves s, mean, rstd and w, as `layernorm` does.
    pub fn add_layernorm(&self, x: &Var, r: &Var, w: &Var, b: &Var, eps: f32) -> Result<(Var, Var)> {
        let AddLayerNormOut { sum, y, mean, rstd } = layernorm::add_layernorm_forward(x.value(), r.value(), w.value(), b.value(), eps)?;
        let (ss, ws) = (sum.clone(), w.value().clone());
        let vars = self.record_multi("add_layernorm", &[x, r, w, b], vec![sum, y], move |dys, needs| {
            let need_params = needs[2] || needs[3];
            let (dsum, dweight, dbias) = match (&dys[0], &dys[1]) {
                (Some(ds), Some(dy)) => {
                    let g = layernorm::add_layernorm_backward(&ss, &ws, &mean, &rstd, dy, ds, need_params)?;
                    (g.dx, g.dweight, g.dbias)
                }
                (None, Some(dy)) => {
                    let g = layernorm::layernorm_backward(&ss, &ws, &mean, &rstd, dy, need_params)?;
                    (g.dx, g.dweight, g.dbias)
                }
                // Nothing reached y: s's gradient is ds, and w and b get none.
                (Some(ds), None) => (ds.clone(), None, None),
                (None, None) => return Err(Error::Internal { what: "add_layernorm".into(), msg: "no gradient reached either output".into() }),
            };
            Ok(vec![needs[0].then(|| dsum.clone()), needs[1].then_some(dsum), dweight.filter(|_| needs[2]), dbias.filter(|_| needs[3])])
        });
        let [s, y]: [Var; 2] = vars.try_into().expect("two outputs");
        Ok((s, y))
    }

    /// softmax(s·x) over the last axis, in one kernel (attention's scaled scores).
    pub fn softmax_scaled(&self, x: &Var, scale: f32) -> Result<Var> {
        let y = softmax::softmax_scaled_forward(x.value(), scale)?;
        let ys = y.clone();
        self.record("softmax", &[x], y, move |dy, _| Ok(vec![Some(softmax::softmax_scaled_backward(&ys, dy, scale)?)]))
    }

    /// Fused attention, softmax(s·q·kᵀ)·v in one kernel each way (`kernels::attention`):
    /// q [B, H, Tq, hd], k, v [B, H, T, hd] → o [B, H, Tq, hd] (Tq < T where only some rows'
    /// outputs are read). Keeps q, k, v, o (as `keep` says) and the row log-sum-exp [B, H, Tq]
    /// (f32) for the backward, never the [B, H, Tq, T] probabilities the unfused path (`matmul`,
    /// `softmax_scaled`, `matmul`) keeps.
    pub fn attention(&self, q: &Var, k: &Var, v: &Var, scale: f32, keep: KeepAs) -> Result<Var> {
        let AttentionOut { o, lse } = attention::attention_forward(q.value(), k.value(), v.value(), scale)?;
        // Kept as computed, o is the output's own buffer: keeping it costs nothing more.
        let keep = self.keep_for(&[q, k, v], keep);
        let [kq, kk, kv, ko] = [q.value(), k.value(), v.value(), &o].map(|t| Kept::new(t.clone(), keep));
        let (kq, kk, kv, ko) = (kq?, kk?, kv?, ko?);
        self.record("attention", &[q, k, v], o, move |dout, needs| {
            let out = AttentionOut { o: ko.restore()?, lse };
            let g = attention::attention_backward(&kq.restore()?, &kk.restore()?, &kv.restore()?, &out, dout, scale)?;
            Ok(vec![needs[0].then_some(g.dq), needs[1].then_some(g.dk), needs[2].then_some(g.dv)])
        })
    }

    /// qkv [B, T, 3·D], given as its token parts [Bᵢ, Tᵢ, 3·D] (Bᵢ = 1 shared by the batch) →
    /// k, v [B, H, T, hd] and q [B, H, Tq, hd], q only the tokens in `queries` (the rows a block
    /// reads after it): the concatenation, the split and the slice of q in one move each way.
    pub fn split_heads(&self, parts: &[&Var], num_heads: usize, queries: Range<usize>) -> Result<[Var; 3]> {
        let values: Vec<&Tensor> = parts.iter().map(|p| p.value()).collect();
        let out = heads::split_heads_of_parts_forward(&values, num_heads, queries.clone())?;
        let shapes = [out.q.shape().to_vec(), out.k.shape().to_vec(), out.v.shape().to_vec()];
        let part_shapes: Vec<Vec<usize>> = parts.iter().map(|p| p.shape().to_vec()).collect();
        let gpu = self.gpu.clone();
        let vars = self.record_multi("split_heads", parts, vec![out.q, out.k, out.v], move |dys, needs| {
            // An output that no gradient reached (not possible in attention, but allowed) counts as
            // zeros. Every part's gradient is made, as concat_tokens's are; those no input needs are dropped.
            let d: Vec<Tensor> = dys.iter().zip(&shapes).map(|(d, shape)| d.clone().map_or_else(|| Tensor::zeros(&gpu, shape), Ok)).collect::<Result<_>>()?;
            let grads = heads::split_heads_of_parts_backward(&d[0], &d[1], &d[2], &part_shapes, queries)?;
            Ok(grads.into_iter().zip(needs).map(|(g, &need)| need.then_some(g)).collect())
        });
        let [q, k, v]: [Var; 3] = vars.try_into().expect("three outputs");
        Ok([q, k, v])
    }

    /// x [B, H, T, hd] → [B, T, H·hd].
    pub fn merge_heads(&self, x: &Var) -> Result<Var> {
        let y = heads::merge_heads_forward(x.value())?;
        let num_heads = x.shape()[1];
        self.record("merge_heads", &[x], y, move |dy, _| Ok(vec![Some(heads::merge_heads_backward(dy, num_heads)?)]))
    }

    /// Concatenate [Bᵢ, Tᵢ, D] parts along the token axis (Bᵢ = 1 broadcasts over the batch).
    pub fn concat_tokens(&self, parts: &[&Var]) -> Result<Var> {
        let values: Vec<&Tensor> = parts.iter().map(|p| p.value()).collect();
        let y = tokens::concat_tokens_forward(&values)?;
        let shapes: Vec<Vec<usize>> = parts.iter().map(|p| p.shape().to_vec()).collect();
        self.record("concat_tokens", parts, y, move |dy, needs| {
            // Slicing out every part is cheap; drop the ones no input needs.
            let grads = tokens::concat_tokens_backward(dy, &shapes)?;
            Ok(grads.into_iter().zip(needs).map(|(g, &need)| need.then_some(g)).collect())
        })
    }

    /// x [B, T, D] → tokens start..start+count, [B, count, D].
    pub fn slice_tokens(&self, x: &Var, start: usize, count: usize) -> Result<Var> {
        let y = tokens::slice_tokens_forward(x.value(), start, count)?;
        let total = x.shape()[1];
        self.record("slice_tokens", &[x], y, move |dy, _| Ok(vec![Some(tokens::slice_tokens_backward(dy, total, start)?)]))
    }

    /// x [B, T, D] → [B, T − count, D], without tokens start..start+count.
    pub fn drop_tokens(&self, x: &Var, start: usize, count: usize) -> Result<Var> {
        let y = tokens::drop_tokens_forward(x.value(), start, count)?;
        self.record("drop_tokens", &[x], y, move |dy, _| Ok(vec![Some(tokens::drop_tokens_backward(dy, start, count)?)]))
    }

    /// Mean over the token axis: x [B, T, D] → [B, D]. A matmul with a row of 1/T, so it needs no
    /// kernel of its own: [1, T] · [B, T, D] → [B, 1, D].
    pub fn mean_tokens(&self, x: &Var) -> Result<Var> {
        let (batch, count, width) = match x.shape() {
            &[b, t, d] => (b, t, d),
            other => return Err(Error::shape("mean_tokens", format!("x must be [B, T, D], got {other:?}"))),
        };
        let averager = self.constant(Tensor::full(&self.gpu, &[1, count], 1.0 / count as f32)?);
        let pooled = self.matmul(&averager, x, MatmulOptions::default())?;
        self.reshape(&pooled, &[batch, width])
    }

    /// timm's PatchEmbed: images [B, C, H, W], weight [D, C, p, p], bias [D] → [B, N, D].
    pub fn patch_embed(&self, images: &Var, weight: &Var, bias: &Var) -> Result<Var> {
        let y = patch::patch_embed_forward(images.value(), weight.value(), Some(bias.value()))?;
        let (im, w) = (images.value().clone(), weight.value().clone());
        self.record("patch_embed", &[images, weight, bias], y, move |dy, needs| {
            let g = patch::patch_embed_backward(&im, &w, dy, MatmulNeed { a: needs[0], b: needs[1], bias: needs[2] })?;
            Ok(vec![g.dimages, g.dweight, g.dbias])
        })
    }
}
