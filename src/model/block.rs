//! One pre-norm transformer block on the graph, and how it runs ([`BlockPlan`]): which attention
//! kernel, and what its backward recomputes instead of keeping.
//!
//!   x = x + proj(attention(norm1(x)));   x = x + fc2(gelu(fc1(norm2(x))))
//!
//! Shapes: B batch, T tokens, D width, H heads, hd = D / H head width.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::graph::{Graph, KeepAs, MlpRun, Pass, Var};
use crate::kernels::attention::MAX_HEAD_DIM;
use crate::kernels::matmul::MatmulOptions;
use crate::model::methods::leaves::BackboneVars;
use crate::model::methods::tuner::BlockSite;
use crate::model::vit::Vit;
use crate::tensor::Tensor;

/// One transformer block's weights: (weight, bias) pairs. Cloning shares the GPU buffers.
#[derive(Clone)]
pub struct Block {
    pub norm1: (Tensor, Tensor),
    pub qkv: (Tensor, Tensor),
    pub proj: (Tensor, Tensor),
    pub norm2: (Tensor, Tensor),
    pub fc1: (Tensor, Tensor),
    pub fc2: (Tensor, Tensor),
}

/// Which attention the blocks run (`--attention`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionChoice {
    /// Fused wherever the fused kernels take the head width (see [`Vit::fused_attention`]).
    #[default]
    Auto,
    /// `kernels::attention`: never stores the T×T probabilities; keeps q, k, v, o and a
    /// log-sum-exp per row for the backward.
    Fused,
    /// q·kᵀ → softmax → ·v as three ops: the readable reference; keeps the probabilities.
    Unfused,
}

/// What the backward recomputes instead of keeping (`--recompute`). The recomputation runs the
/// same kernels on the same inputs in the same order, so the results are bit-identical.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recompute {
    /// Keep every activation the backward reads.
    #[default]
    None,
    /// The MLP keeps fc1's input [B, T, D] instead of its pre-activation [B, T, 4D] and runs
    /// fc1 again in the backward.
    Mlp,
    /// Each block keeps only its input and runs its whole forward again in the backward.
    Block,
}

/// How the blocks run. The default is what `vpt train` does without flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockPlan {
    pub attention: AttentionChoice,
    pub recompute: Recompute,
    /// Run each block on at most this many images at a time (None: as many as fit; see
    /// [`Vit::images_per_run`]).
    pub max_images: Option<usize>,
}

impl AttentionChoice {
    pub const ALL: [AttentionChoice; 3] = [AttentionChoice::Auto, AttentionChoice::Fused, AttentionChoice::Unfused];

    /// The flag value that selects it.
    pub fn name(self) -> &'static str {
        match self {
            AttentionChoice::Auto => "auto",
            AttentionChoice::Fused => "fused",
            AttentionChoice::Unfused => "unfused",
        }
    }
}

impl Recompute {
    pub const ALL: [Recompute; 3] = [Recompute::None, Recompute::Mlp, Recompute::Block];

    /// The flag value that selects it.
    pub fn name(self) -> &'static str {
        match self {
            Recompute::None => "none",
            Recompute::Mlp => "mlp",
            Recompute::Block => "block",
        }
    }
}

/// The value of `all` whose `name` is `s`, or an error for `flag` that lists the names.
fn by_name<T: Copy>(all: &[T], name: fn(T) -> &'static str, s: &str, flag: &str, what: &str) -> Result<T> {
    all.iter().copied().find(|&v| name(v) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
        Error::invalid(flag, format!("{s:?} is not {what}; use {}", names.join(", ")))
    })
}

impl FromStr for AttentionChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<AttentionChoice> {
        by_name(&AttentionChoice::ALL, AttentionChoice::name, s, "--attention", "an attention path")
    }
}

impl FromStr for Recompute {
    type Err = Error;
    fn from_str(s: &str) -> Result<Recompute> {
        by_name(&Recompute::ALL, Recompute::name, s, "--recompute", "a recompute setting")
    }
}

/// What a block needs besides its weights; `Copy`, so a recomputing backward can take it along.
#[derive(Clone, Copy, Debug)]
struct BlockRun {
    num_heads: usize,
    eps: f32,
    fused_attention: bool,
    recompute_mlp: bool,
    /// False where nothing reads the block's output value, only its gradient.
    output_read: bool,
    /// How the MLP and the fused attention keep their largest activations (`Vit::keep`).
    keep: KeepAs,
}

impl Vit {
    /// Transformer block `i`: x [B, T, D] → [B, T, D], as a [`Stream`] whose last residual add is
    /// left for whatever reads it next. With `Recompute::Block` the block is one checkpoint on
    /// the tape: it keeps its input stream and nothing else.
    ///
    /// A batch whose activations would not fit one storage binding runs through the block a few
    /// images at a time (see [`Vit::images_per_run`]): every op of a block treats images apart.
    pub fn block(&self, g: &Graph, i: usize, x: Stream, backbone: &BackboneVars) -> Result<Stream> {
        let (batch, tokens) = (x.x.shape()[0], x.x.shape()[1]);
        let run = BlockRun {
            num_heads: self.cfg.num_heads,
            eps: self.cfg.eps,
            fused_attention: self.fused_attention(),
            recompute_mlp: self.plan.recompute == Recompute::Mlp,
            output_read: true,
            keep: self.keep,
        };
        let per_run = self.images_per_run(batch, tokens, run.fused_attention);
        if per_run >= batch {
            return self.block_on(g, i, run, x, backbone);
        }
        let outputs = x.split_batch(g, per_run)?.into_iter().map(|part| self.block_on(g, i, run, part, backbone)).collect::<Result<Vec<_>>>()?;
        Stream::concat_batch(g, outputs)
    }

    /// The largest tensors one image of `tokens` tokens puts through a block, in bytes (f32):
    /// (qkv [T, 3D] or the MLP's hidden activation [T, hidden], whichever is larger; the unfused
    /// attention's probabilities [H, T, T]). Saturating: an absurd T gives u64::MAX.
    pub fn block_bytes_per_image(&self, tokens: usize) -> (u64, u64) {
        let c = &self.cfg;
        let product = |dims: &[usize]| dims.iter().fold(4u64, |n, &d| n.saturating_mul(d as u64));
        (product(&[tokens, (3 * c.embed_dim).max(c.mlp_hidden)]), product(&[c.num_heads, tokens, tokens]))
    }

    /// How many images run through a block at once: all of them, unless a tensor of the block
    /// would then exceed one storage binding (see [`Vit::block_bytes_per_image`]; the
    /// probabilities only on the unfused path), or the plan caps it. At least one (a single
    /// image too large is the kernels' error, naming the tensor).
    pub fn images_per_run(&self, batch: usize, tokens: usize, fused_attention: bool) -> usize {
        let (activations, probabilities) = self.block_bytes_per_image(tokens);
        let per_image = if fused_attention { activations } else { activations.max(probabilities) };
        let fit = (self.norm.0.gpu().max_binding_bytes() / per_image.max(1)).max(1);
        let fit = usize::try_from(fit).unwrap_or(usize::MAX);
        fit.min(self.plan.max_images.unwrap_or(usize::MAX)).clamp(1, batch.max(1))
    }

    /// Block `i` on one run of images, as one checkpoint with `Recompute::Block`.
    fn block_on(&self, g: &Graph, i: usize, run: BlockRun, x: Stream, backbone: &BackboneVars) -> Result<Stream> {
        let block = &self.blocks[i];
        let weights = BlockVars::new(g, block, i, backbone);
        if self.plan.recompute != Recompute::Block {
            return block_forward(g, &weights, run, x);
        }
        // A checkpoint's rerun makes its own leaves from its inputs; its weights must be constants,
        // and it has no method's tensors.
        if backbone.has_leaf_under(&format!("blocks.{i}.")) || !backbone.acting().is_empty() {
            let acting: Vec<String> = backbone.acting().iter().map(|t| t.name()).collect();
            return Err(Error::invalid(
                "--recompute",
                format!(
                    "block keeps only each block's input, but the task tunes tensors of blocks.{i} or adds its own ({}); use --recompute mlp or none",
                    if acting.is_empty() { "none".into() } else { acting.join(", ") }
                ),
            ));
        }
        let weights = block.clone();
        let inputs = x.vars();
        let outputs = g.checkpoint("block", &inputs.iter().collect::<Vec<_>>(), move |g, leaves, pass| {
            // In the rerun for the backward the block's output is never read (its gradient comes
            // from outside), so the MLP skips fc2's product.
            let run = BlockRun { output_read: pass == Pass::Forward, ..run };
            let none = BackboneVars::default();
            let frozen = BlockVars::new(g, &weights, i, &none);
            Ok(block_forward(g, &frozen, run, Stream::from_vars(leaves.to_vec()))?.vars())
        })?;
        Ok(Stream::from_vars(outputs))
    }

    /// Whether the blocks run the fused attention. `Auto` takes it wherever the fused kernels
    /// take the head width (hd ≤ 128: every timm ViT). Measured on lavapipe, the one adapter
    /// measured so far, with ViT-B/16 and 50 deep prompts (docs/benchmarks.md): a whole training
    /// step is 4% faster with it at batch 8 and 6% slower at batch 1; it keeps 22% less for the
    /// backward at batch 8, and it has no [B, H, T, T] tensor to outgrow a storage binding. The
    /// same kernels then serve training and inference, so both give the same logits.
    pub fn fused_attention(&self) -> bool {
        match self.plan.attention {
            AttentionChoice::Fused => true,
            AttentionChoice::Unfused => false,
            AttentionChoice::Auto => self.cfg.head_dim() <= MAX_HEAD_DIM,
        }
    }

    /// The final LayerNorm (doing the last block's residual add in the same kernel).
    pub fn final_norm(&self, g: &Graph, x: Stream, backbone: &BackboneVars) -> Result<Var> {
        let norm = (backbone.var(g, "norm.weight", &self.norm.0), backbone.var(g, "norm.bias", &self.norm.1));
        Ok(norm_stream(g, x, &norm, self.cfg.eps)?.1)
    }
}

/// One block's weights as graph leaves (constants, except those the method trains), and what
/// the task's methods act with.
struct BlockVars<'a> {
    norm1: (Var, Var),
    qkv: (Var, Var),
    proj: (Var, Var),
    norm2: (Var, Var),
    fc1: (Var, Var),
    fc2: (Var, Var),
    /// i of `blocks.i`.
    index: usize,
    backbone: &'a BackboneVars,
}

impl BlockVars<'_> {
    fn new<'a>(g: &Graph, b: &Block, i: usize, backbone: &'a BackboneVars) -> BlockVars<'a> {
        let pair = |part: &str, (w, bias): &(Tensor, Tensor)| (backbone.var(g, &format!("blocks.{i}.{part}.weight"), w), backbone.var(g, &format!("blocks.{i}.{part}.bias"), bias));
        BlockVars {
            norm1: pair("norm1", &b.norm1),
            qkv: pair("attn.qkv", &b.qkv),
            proj: pair("attn.proj", &b.proj),
            norm2: pair("norm2", &b.norm2),
            fc1: pair("mlp.fc1", &b.fc1),
            fc2: pair("mlp.fc2", &b.fc2),
            index: i,
            backbone,
        }
    }
}

/// The block itself. A weight gets a gradient only if the method trains it (`BlockVars`); the
/// task's methods act at qkv, at the MLP hidden and at the MLP's output (`methods/tuner.rs`).
fn block_forward(g: &Graph, b: &BlockVars, run: BlockRun, x: Stream) -> Result<Stream> {
    let at = BlockSite { g, block: b.index, leaves: b.backbone.leaves() };
    let acting = b.backbone.acting();
    // Attention: x + proj(attention(q, k, v)). norm1 also does the previous block's residual
    // add, if that is still pending.
    let (x, h) = norm_stream(g, x, &b.norm1, run.eps)?; // [B, T, D] each
    let mut qkv = g.linear(&h, &b.qkv.0, Some(&b.qkv.1))?; // [B, T, 3D]
    for method in acting {
        qkv = method.qkv(&at, &h, &b.qkv.0, qkv)?;
    }
    let [q, k, v] = g.split_heads(&qkv, run.num_heads)?; // [B, H, T, hd] each
    let scale = 1.0 / (q.shape()[3] as f32).sqrt();
    let o = if run.fused_attention {
        g.attention(&q, &k, &v, scale, run.keep)? // [B, H, T, hd]
    } else {
        let scores = g.matmul(&q, &k, MatmulOptions { trans_a: false, trans_b: true })?; // [B, H, T, T]

        // softmax(q·kᵀ/√hd): the scale is applied inside the softmax kernel (timm scales q
        // first; the same product, without a pass over q of its own).
        let probs = g.softmax_scaled(&scores, scale)?;
        g.matmul(&probs, &v, MatmulOptions::default())? // [B, H, T, hd]
    };
    let o = g.merge_heads(&o)?; // [B, T, D]
    let o = g.linear(&o, &b.proj.0, Some(&b.proj.1))?;
    // The residual add and norm2 in one kernel each way: x = x + o, h = norm2(x), [B, T, D].
    let (x, h) = g.add_layernorm(&x, &o, &b.norm2.0, &b.norm2.1, run.eps)?;
    // MLP: x + fc2(gelu(fc1(norm2(x)))), the add left pending.
    let mut fc2_weight = b.fc2.0.clone(); // [D, hidden]
    for method in acting {
        fc2_weight = method.mlp_hidden(&at, fc2_weight)?;
    }
    let mlp = MlpRun { recompute_fc1: run.recompute_mlp, output_read: run.output_read, keep: run.keep };
    let mut h = g.mlp(&h, (&b.fc1.0, &b.fc1.1), (&fc2_weight, &b.fc2.1), mlp)?; // [B, T, 4D] inside
    for method in acting {
        h = method.mlp_output(&at, h)?;
    }
    Ok(Stream { x, pending: Some(h) })
}

/// LayerNorm of a stream: (the stream's sum, its normalised copy), the pending add fused in.
fn norm_stream(g: &Graph, x: Stream, (w, b): &(Var, Var), eps: f32) -> Result<(Var, Var)> {
    match x.pending {
        Some(delta) => g.add_layernorm(&x.x, &delta, w, b, eps),
        None => {
            let y = g.layernorm(&x.x, w, b, eps)?;
            Ok((x.x, y))
        }
    }
}

/// The residual stream between blocks: `x + pending`, with the add not yet done, so that the
/// LayerNorm that reads it next (the next block's norm1, or the final norm) does the add in its
/// own kernel: one pass over [B, T, D] and one launch less each way.
pub struct Stream {
    x: Var,
    pending: Option<Var>,
}

impl Stream {
    /// A stream with nothing pending (the embedding's output).
    pub fn new(x: Var) -> Stream {
        Stream { x, pending: None }
    }

    /// x + pending as one tensor: for code that must read or change the tokens themselves
    /// (VPT-deep replacing the prompt tokens between blocks).
    pub fn sum(self, g: &Graph) -> Result<Var> {
        match self.pending {
            Some(delta) => g.add(&self.x, &delta),
            None => Ok(self.x),
        }
    }

    /// Runs of at most `images` images along the batch axis, in order.
    fn split_batch(self, g: &Graph, images: usize) -> Result<Vec<Stream>> {
        let (batch, tokens, width) = (self.x.shape()[0], self.x.shape()[1], self.x.shape()[2]);
        let pieces = |v: &Var| -> Result<Vec<Var>> {
            // [B, T, D] is [1, B·T, D] in memory: a run of images is a run of tokens there.
            let flat = g.reshape(v, &[1, batch * tokens, width])?;
            (0..batch)
                .step_by(images)
                .map(|first| {
                    let n = images.min(batch - first);
                    g.reshape(&g.slice_tokens(&flat, first * tokens, n * tokens)?, &[n, tokens, width])
                })
                .collect()
        };
        let xs = pieces(&self.x)?;
        let pendings: Vec<Option<Var>> = match &self.pending {
            Some(p) => pieces(p)?.into_iter().map(Some).collect(),
            None => vec![None; xs.len()],
        };
        Ok(xs.into_iter().zip(pendings).map(|(x, pending)| Stream { x, pending }).collect())
    }

    /// The inverse of [`Stream::split_batch`]: runs of images joined along the batch axis.
    fn concat_batch(g: &Graph, parts: Vec<Stream>) -> Result<Stream> {
        let join = |vars: Vec<&Var>| -> Result<Var> {
            let (tokens, width) = (vars[0].shape()[1], vars[0].shape()[2]);
            let batch: usize = vars.iter().map(|v| v.shape()[0]).sum();
            let flat = vars.iter().map(|v| g.reshape(v, &[1, v.shape()[0] * tokens, width])).collect::<Result<Vec<_>>>()?;
            g.reshape(&g.concat_tokens(&flat.iter().collect::<Vec<_>>())?, &[batch, tokens, width])
        };
        let x = join(parts.iter().map(|p| &p.x).collect())?;
        let pending = match parts.iter().map(|p| p.pending.as_ref()).collect::<Option<Vec<_>>>() {
            Some(pendings) => Some(join(pendings)?),
            None => None,
        };
        Ok(Stream { x, pending })
    }

    /// [x] or [x, pending]: the stream as a checkpoint's inputs or outputs.
    fn vars(self) -> Vec<Var> {
        std::iter::once(self.x).chain(self.pending).collect()
    }

    fn from_vars(vars: Vec<Var>) -> Stream {
        let mut vars = vars.into_iter();
        let x = vars.next().expect("a stream has x");
        Stream { x, pending: vars.next() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_parse_back_and_bad_ones_name_the_flag() {
        for a in AttentionChoice::ALL {
            assert_eq!(a.name().parse::<AttentionChoice>().unwrap(), a);
        }
        for r in Recompute::ALL {
            assert_eq!(r.name().parse::<Recompute>().unwrap(), r);
        }
        let err = "fast".parse::<AttentionChoice>().unwrap_err().to_string();
        assert!(err.contains("--attention") && err.contains("auto, fused, unfused"), "{err}");
        let err = "all".parse::<Recompute>().unwrap_err().to_string();
        assert!(err.contains("--recompute") && err.contains("none, mlp, block"), "{err}");
    }
}
