//! One pre-norm transformer block on the graph; the residual stream between blocks is
//! `stream.rs`, and `blocks.rs` runs the blocks under a plan.
//!
//!   x = x + proj(attention(norm1(x)));   x = x + fc2(gelu(fc1(norm2(x))))
//!
//! Shapes: B batch, T tokens, D width, H heads, hd = D / H head width, P prompts, T' ≤ T the
//! rows of the output that are read ([`RowsRead`]).

use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::{Graph, KeepAs, MlpRun, Var};
use crate::kernels::matmul::MatmulOptions;
use crate::model::methods::leaves::BackboneVars;
use crate::model::methods::tuner::{BlockSite, Tuner};
use crate::model::stream::Stream;
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
            RowsRead::Only { start: 0, count } if count == x.shape()[1] => Ok(x.clone()),
            RowsRead::Only { start, count } => g.slice_tokens(x, start, count),
            RowsRead::AllBut { start, count } => g.drop_tokens(x, start, count),
        }
    }

    /// The rows read of `tokens` rows, as one range; None for `AllBut` a range inside them.
    pub fn as_range(self, tokens: usize) -> Option<Range<usize>> {
        match self {
            RowsRead::All => Some(0..tokens),
            RowsRead::Only { start, count } => Some(start..start + count),
            RowsRead::AllBut { start: 0, count } => Some(count..tokens),
            RowsRead::AllBut { start, count } if start + count == tokens => Some(0..start),
            RowsRead::AllBut { .. } => None,
        }
    }

    /// The same rows of a block input whose `prompts` rows (timm's 1..1+P, after CLS) stand last
    /// instead, behind its `others` rows (CLS and the rest): [CLS, rest, prompts]. None where a
    /// prompt row is read, or every row (the next block would then see the rows in another order).
    pub fn with_prompts_last(self, prompts: usize, others: usize) -> Option<RowsRead> {
        match self {
            RowsRead::AllBut { start: 1, count } if count == prompts => Some(RowsRead::Only { start: 0, count: others }),
            RowsRead::Only { start, count } if start + count <= 1 => Some(self),
            RowsRead::Only { start, count } if start > prompts => Some(RowsRead::Only { start: start - prompts, count }),
            _ => None,
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
    let (x, prompts, rows) = prompts_apart(g, x, run.rows)?;
    // Attention: x + proj(attention(q, k, v)). norm1 also does the previous block's residual
    // add, if that is still pending.
    let (x, h) = x.norm(g, &b.norm1, run.eps)?; // [B, T0, D] each: T0 = T − P with prompts apart
    let mut qkv = vec![qkv_of(&at, acting, &h, &b.qkv)?]; // [B, T0, 3D]
    if let Some(prompts) = &prompts {
        // Prompts shared by the batch ([1, P, D]) go through norm1 and qkv once, not once per
        // image: at ViT-B/16 batch 8 with 50 prompts, a fifth of qkv's rows. Keys and values
        // may come in any order, so the prompts' rows go last: [CLS, rest, prompts].
        let hp = g.layernorm(prompts, &b.norm1.0, &b.norm1.1, run.eps)?; // [1 or B, P, D]
        qkv.push(qkv_of(&at, acting, &hp, &b.qkv)?); // [1 or B, P, 3D]
    }
    let tokens: usize = qkv.iter().map(|part| part.shape()[1]).sum(); // T = T0 (+ P)

    // Only the rows read after the block ask anything of the attention: every key and value
    // row answers, but the queries are the T' rows read. The split takes qkv's parts as they
    // are and keeps only those query rows (a range of them: else all, then taken apart).
    let parts: Vec<&Var> = qkv.iter().collect();
    let [q, k, v] = match rows.as_range(tokens) {
        Some(queries) => g.split_heads(&parts, run.num_heads, queries)?, // q [B, H, T', hd], k, v [B, H, T, hd]
        None => {
            let [q, k, v] = g.split_heads(&parts, run.num_heads, 0..tokens)?;
            [query_rows(g, rows, &q)?, k, v]
        }
    };
    let scale = 1.0 / (q.shape()[3] as f32).sqrt();
    let o = if run.fused_attention {
        g.attention(&q, &k, &v, scale, run.keep)? // [B, H, T', hd]
    } else {
        let scores = g.matmul(&q, &k, MatmulOptions { trans_a: false, trans_b: true })?; // [B, H, T', T]

        // softmax(q·kᵀ/√hd): the scale is applied inside the softmax kernel (timm scales q
        // first; the same product, without a pass over q of its own).
        let probs = g.softmax_scaled(&scores, scale)?;
        g.matmul(&probs, &v, MatmulOptions::default())? // [B, H, T', hd]
    };
    let o = g.merge_heads(&o)?; // [B, T', D]

    // From here on only the rows read after the block: T' of T, [B, T', D] each.
    let x = rows.take(g, &x)?;
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
    Ok(Stream::output(x, h))
}

/// The block's input with its prompts kept apart where no prompt row and not every row is read
/// after the block (VPT-deep where the next block overwrites them, or the last block's pooled
/// rows): (the stream without them, the prompts, the rows read in the order [CLS, rest,
/// prompts]). Elsewhere the prompts are copied into the stream after CLS, timm's order.
fn prompts_apart(g: &Graph, x: Stream, rows: RowsRead) -> Result<(Stream, Option<Var>, RowsRead)> {
    let Some(p) = x.prompt_count() else { return Ok((x, None, rows)) };
    match rows.with_prompts_last(p, x.tokens() - p) {
        Some(rows) => {
            let (x, prompts) = x.take_prompts();
            Ok((x, prompts, rows))
        }
        None => Ok((x.with_prompts_inserted(g)?, None, rows)),
    }
}

/// The query rows of the rows read, where they are not one range (`RowsRead::as_range`): q
/// [B, H, T, hd] → [B, H, T', hd], each head's token rows taken as `rows` takes a [B, T, D]
/// tensor's.
fn query_rows(g: &Graph, rows: RowsRead, q: &Var) -> Result<Var> {
    let [batch, heads, tokens, head_dim] = q.shape().try_into().map_err(|_| Error::shape("query_rows", format!("q has shape {:?}; it must be [B, H, T, hd]", q.shape())))?;
    let taken = rows.take(g, &g.reshape(q, &[batch * heads, tokens, head_dim])?)?; // [B·H, T', hd]
    let read = taken.shape()[1];
    g.reshape(&taken, &[batch, heads, read, head_dim])
}

/// qkv's output [B, T, 3D] with what the task's methods do to it.
fn qkv_of(at: &BlockSite, acting: &[Arc<dyn Tuner>], h: &Var, weights: &(Var, Var)) -> Result<Var> {
    let mut qkv = qkv_linear(at, acting, h, weights)?;
    for method in acting {
        qkv = method.qkv(at, h, &weights.0, qkv)?;
    }
    Ok(qkv)
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
