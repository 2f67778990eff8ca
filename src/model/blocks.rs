//! How the ViT runs its blocks under a [`BlockPlan`]: how many images go through a block at once,
//! a whole block as one checkpoint (`--recompute block`), the fused or unfused attention, and
//! the final norm. The block itself is `block.rs`.

use crate::error::{Error, Result};
use crate::graph::{Graph, Pass, Var};
use crate::kernels::attention::MAX_HEAD_DIM;
use crate::model::block::{block_forward, BlockRun, BlockVars, RowsRead};
use crate::model::methods::leaves::BackboneVars;
use crate::model::plan::{AttentionChoice, Recompute};
use crate::model::stream::{Stream, StreamParts};
use crate::model::vit::Vit;

impl Vit {
    /// Transformer block `i`: x [B, T, D] (prompts included) → [B, T', D], the T' rows `rows`
    /// says are read after it, as a [`Stream`] whose last residual add is left for whatever
    /// reads it next. With
    /// `Recompute::Block` the block is one checkpoint on the tape: it keeps its input stream and
    /// nothing else.
    ///
    /// A batch whose activations would not fit one storage binding runs through the block a few
    /// images at a time (see [`Vit::images_per_run`]): every op of a block treats images apart.
    pub fn block(&self, g: &Graph, i: usize, x: Stream, rows: RowsRead, backbone: &BackboneVars) -> Result<Stream> {
        let (batch, tokens) = (x.batch(), x.tokens());
        let run = BlockRun {
            num_heads: self.cfg.num_heads,
            eps: self.cfg.eps,
            fused_attention: self.fused_attention(),
            recompute_mlp: self.plan.recompute == Recompute::Mlp,
            output_read: true,
            keep: self.keep,
            rows,
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
                "recompute",
                format!(
                    "block keeps only each block's input, but the task tunes tensors of blocks.{i} or adds its own ({}); use `recompute` mlp or none",
                    if acting.is_empty() { "none".into() } else { acting.join(", ") }
                ),
            ));
        }
        let weights = block.clone();
        // The checkpoint keeps its inputs: the stream's sum, [B, T0, D], rather than x and the
        // pending add (at ViT-B/16 batch 8 with 50 deep prompts, 108.0 → 57.2 MiB kept).
        let x = x.summed(g)?;
        let parts = x.parts();
        let inputs = x.vars();
        let outputs = g.checkpoint("block", &inputs.iter().collect::<Vec<_>>(), move |g, leaves, pass| {
            // In the rerun for the backward the block's output is never read (its gradient comes
            // from outside), so the MLP skips fc2's product.
            let run = BlockRun { output_read: pass == Pass::Forward, ..run };
            let none = BackboneVars::default();
            let frozen = BlockVars::new(g, &weights, i, &none);
            Ok(block_forward(g, &frozen, run, Stream::from_vars(leaves.to_vec(), parts))?.vars())
        })?;
        Ok(Stream::from_vars(outputs, StreamParts::BLOCK_OUTPUT))
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
        Ok(x.with_prompts_inserted(g)?.norm(g, &norm, self.cfg.eps)?.1)
    }
}
