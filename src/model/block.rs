//! One pre-norm transformer block on the graph, and the residual stream between blocks
//! ([`Stream`]); `blocks.rs` runs them under a plan.
//!
//!   x = x + proj(attention(norm1(x)));   x = x + fc2(gelu(fc1(norm2(x))))
//!
//! Shapes: B batch, T tokens, D width, H heads, hd = D / H head width, T' ≤ T the rows of the
//! output that are read ([`RowsRead`]).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::{Graph, KeepAs, MlpRun, Var};
use crate::kernels::matmul::MatmulOptions;
use crate::model::methods::leaves::BackboneVars;
use crate::model::methods::tuner::{BlockSite, Tuner};
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

/// What a block needs besides its weights; `Copy`, so a recomputing backward can take it along.
#[derive(Clone, Copy, Debug)]
pub struct BlockRun {
    pub num_heads: usize,
    pub eps: f32,
    pub fused_attention: bool,
    pub recompute_mlp: bool,
    /// False where nothing reads the block's output value, only its gradient.
    pub output_read: bool,
    /// How the MLP and the fused attention keep their largest activations (`Vit::keep`).
    pub keep: KeepAs,
    /// The token rows of the output that anything reads; the others get no proj and no MLP.
    pub rows: RowsRead,
}

/// Which token rows of a block's output are read after it. Every op after the attention (proj,
/// the residual add, norm2, the MLP) treats rows apart, so a row nobody reads can be dropped
/// right after the attention, whose keys and values still need every row. Under VPT-deep the
/// next block overwrites the prompt rows; after the last block the pooling reads one row (CLS)
/// or one range. ViT-B/16 with 50 deep prompts: proj, fc1 and fc2 run on 197 rows of 247 in
/// blocks 0–10 and on 1 row in block 11, a fifth of the step's products, forward and backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowsRead {
    All,
    /// Rows start..start+count only.
    Only {
        start: usize,
        count: usize,
    },
    /// Every row but start..start+count.
    AllBut {
        start: usize,
        count: usize,
    },
}

impl RowsRead {
    /// x [B, T, D] → the rows read, [B, T', D].
    pub fn take(self, g: &Graph, x: &Var) -> Result<Var> {
        match self {
            RowsRead::All => Ok(x.clone()),
            RowsRead::Only { start, count } => g.slice_tokens(x, start, count),
            RowsRead::AllBut { start, count } => g.drop_tokens(x, start, count),
        }
    }
}

/// One block's weights as graph leaves (constants, except those the method trains), and what
/// the task's methods act with.
pub struct BlockVars<'a> {
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
    pub fn new<'a>(g: &Graph, b: &Block, i: usize, backbone: &'a BackboneVars) -> BlockVars<'a> {
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
pub fn block_forward(g: &Graph, b: &BlockVars, run: BlockRun, x: Stream) -> Result<Stream> {
    let at = BlockSite { g, block: b.index, leaves: b.backbone.leaves() };
    let acting = b.backbone.acting();
    // Attention: x + proj(attention(q, k, v)). norm1 also does the previous block's residual
    // add, if that is still pending.
    let (x, h) = norm_stream(g, x, &b.norm1, run.eps)?; // [B, T, D] each
    let mut qkv = qkv_linear(&at, acting, &h, &b.qkv)?; // [B, T, 3D]
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

    // From here on only the rows read after the block: T' of T, [B, T', D] each.
    let (x, o) = (run.rows.take(g, &x)?, run.rows.take(g, &o)?);
    let o = g.linear(&o, &b.proj.0, Some(&b.proj.1))?;
    // The residual add and norm2 in one kernel each way: x = x + o, h = norm2(x), [B, T', D].
    let (x, h) = g.add_layernorm(&x, &o, &b.norm2.0, &b.norm2.1, run.eps)?;
    // MLP: x + fc2(gelu(fc1(norm2(x)))), the add left pending.
    let mut fc2_weight = b.fc2.0.clone(); // [D, hidden]
    for method in acting {
        fc2_weight = method.mlp_hidden(&at, fc2_weight)?;
    }
    let mlp = MlpRun { recompute_fc1: run.recompute_mlp, output_read: run.output_read, keep: run.keep };
    let mut h = g.mlp(&h, (&b.fc1.0, &b.fc1.1), (&fc2_weight, &b.fc2.1), mlp)?; // [B, T', 4D] inside
    for method in acting {
        h = method.mlp_output(&at, h)?;
    }
    Ok(Stream { x, pending: Some(h) })
}

/// qkv's output [B, T, 3D]: the plain linear layer, or what the one method that makes it makes.
fn qkv_linear(at: &BlockSite, acting: &[Arc<dyn Tuner>], h: &Var, (w, bias): &(Var, Var)) -> Result<Var> {
    let mut made: Option<(String, Var)> = None;
    for method in acting {
        if let Some(y) = method.qkv_linear(at, h, w, bias)? {
            if let Some((first, _)) = &made {
                return Err(Error::invalid("method", format!("{first} and {} both make qkv's product; use one of them", method.name())));
            }
            made = Some((method.name(), y));
        }
    }
    match made {
        Some((_, y)) => Ok(y),
        None => at.g.linear(h, w, Some(bias)),
    }
}

/// LayerNorm of a stream: (the stream's sum, its normalised copy), the pending add fused in.
pub fn norm_stream(g: &Graph, x: Stream, (w, b): &(Var, Var), eps: f32) -> Result<(Var, Var)> {
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

    /// [B, T, D]
    pub fn shape(&self) -> &[usize] {
        self.x.shape()
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
    pub fn split_batch(self, g: &Graph, images: usize) -> Result<Vec<Stream>> {
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
    pub fn concat_batch(g: &Graph, parts: Vec<Stream>) -> Result<Stream> {
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
    pub fn vars(self) -> Vec<Var> {
        std::iter::once(self.x).chain(self.pending).collect()
    }

    pub fn from_vars(vars: Vec<Var>) -> Stream {
        let mut vars = vars.into_iter();
        let x = vars.next().expect("a stream has x");
        Stream { x, pending: vars.next() }
    }
}
