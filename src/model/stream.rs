//! The residual stream between blocks ([`Stream`]): the tokens, the residual add not yet done,
//! and the prompts that stand after CLS in the next block's input (VPT).
//!
//! Shapes: B batch, T0 the stream's own rows (CLS and the patches, or what the last block left),
//! P prompts, D width. The next block's input is [B, T, D], T = T0 + P, in timm's order
//! [CLS, prompts, the rest].

use crate::error::Result;
use crate::graph::{Graph, Var};

/// The residual stream: `x + pending`, with the add not yet done, so that the LayerNorm that reads
/// it next (the next block's norm1, or the final norm) does the add in its own kernel: one pass
/// over [B, T0, D] and one launch less each way. Under VPT the prompts the next block reads are
/// kept beside it rather than copied into it: shared by the batch ([1, P, D]), their norm1 and
/// qkv then run once for the batch instead of once per image (`block::block_forward`).
pub struct Stream {
    x: Var,
    pending: Option<Var>,
    prompts: Option<Var>,
}

/// Which of a stream's parts a list of vars holds ([`Stream::vars`], [`Stream::from_vars`]).
#[derive(Clone, Copy, Debug)]
pub struct StreamParts {
    pending: bool,
    prompts: bool,
}

impl StreamParts {
    /// What a block's output has ([`Stream::output`]): x and the pending add.
    pub const BLOCK_OUTPUT: StreamParts = StreamParts { pending: true, prompts: false };
}

impl Stream {
    /// A stream with nothing pending and no prompts (the embedding's output).
    pub fn new(x: Var) -> Stream {
        Stream { x, pending: None, prompts: None }
    }

    /// The same stream with `prompts` [1 or B, P, D] to stand after CLS in the next block's
    /// input (replacing any given before).
    pub fn with_prompts(self, prompts: Var) -> Stream {
        Stream { prompts: Some(prompts), ..self }
    }

    /// B
    pub fn batch(&self) -> usize {
        self.x.shape()[0]
    }

    /// T = T0 + P: the rows of the next block's input.
    pub fn tokens(&self) -> usize {
        self.x.shape()[1] + self.prompt_count().unwrap_or(0)
    }

    /// P, where the stream has prompts.
    pub fn prompt_count(&self) -> Option<usize> {
        self.prompts.as_ref().map(|p| p.shape()[1])
    }

    /// The stream without its prompts, and the prompts.
    pub fn take_prompts(self) -> (Stream, Option<Var>) {
        let prompts = self.prompts;
        (Stream { prompts: None, ..self }, prompts)
    }

    /// x + pending as one tensor [B, T0, D] (the prompts left out).
    pub fn sum(self, g: &Graph) -> Result<Var> {
        match self.pending {
            Some(delta) => g.add(&self.x, &delta),
            None => Ok(self.x),
        }
    }

    /// The same stream with its pending add done: one tensor where a checkpoint keeps its
    /// inputs (`--recompute block`), instead of two.
    pub fn summed(self, g: &Graph) -> Result<Stream> {
        let (stream, prompts) = self.take_prompts();
        Ok(Stream { x: stream.sum(g)?, pending: None, prompts })
    }

    /// The next block's input as one tensor: [CLS, prompts, the rest], [B, T, D], nothing pending.
    pub fn with_prompts_inserted(self, g: &Graph) -> Result<Stream> {
        let (stream, prompts) = self.take_prompts();
        let Some(prompts) = prompts else { return Ok(stream) };
        let full = stream.sum(g)?; // the residual add, done here to edit tokens
        let cls = g.slice_tokens(&full, 0, 1)?;
        let rest = g.slice_tokens(&full, 1, full.shape()[1] - 1)?;
        Ok(Stream::new(g.concat_tokens(&[&cls, &prompts, &rest])?)) // [B, 1+P+T0−1, D]
    }

    /// LayerNorm of the stream (its prompts left out): (the stream's sum, its normalised copy),
    /// the pending add fused in.
    pub fn norm(self, g: &Graph, (w, b): &(Var, Var), eps: f32) -> Result<(Var, Var)> {
        match self.pending {
            Some(delta) => g.add_layernorm(&self.x, &delta, w, b, eps),
            None => {
                let y = g.layernorm(&self.x, w, b, eps)?;
                Ok((self.x, y))
            }
        }
    }

    /// A block's output: the rows it computed, and the residual add it leaves pending.
    pub fn output(x: Var, pending: Var) -> Stream {
        Stream { x, pending: Some(pending), prompts: None }
    }

    /// Runs of at most `images` images along the batch axis, in order. Prompts shared by the
    /// batch ([1, P, D]) go with every run.
    pub fn split_batch(self, g: &Graph, images: usize) -> Result<Vec<Stream>> {
        let batch = self.batch();
        let pieces = |v: &Var| -> Result<Vec<Var>> {
            let (tokens, width) = (v.shape()[1], v.shape()[2]);
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
        let optional = |part: &Option<Var>, runs: usize| -> Result<Vec<Option<Var>>> {
            match part {
                Some(p) if p.shape()[0] == 1 && batch > 1 => Ok(vec![Some(p.clone()); runs]),
                Some(p) => Ok(pieces(p)?.into_iter().map(Some).collect()),
                None => Ok(vec![None; runs]),
            }
        };
        let xs = pieces(&self.x)?;
        let pendings = optional(&self.pending, xs.len())?;
        let prompts = optional(&self.prompts, xs.len())?;
        Ok(xs.into_iter().zip(pendings).zip(prompts).map(|((x, pending), prompts)| Stream { x, pending, prompts }).collect())
    }

    /// The inverse of [`Stream::split_batch`] for blocks' outputs (which have no prompts): runs
    /// of images joined along the batch axis.
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
        Ok(Stream { x, pending, prompts: None })
    }

    /// Which parts [`Stream::vars`] lists.
    pub fn parts(&self) -> StreamParts {
        StreamParts { pending: self.pending.is_some(), prompts: self.prompts.is_some() }
    }

    /// [x], then pending and the prompts where the stream has them: the stream as a checkpoint's
    /// inputs or outputs.
    pub fn vars(self) -> Vec<Var> {
        std::iter::once(self.x).chain(self.pending).chain(self.prompts).collect()
    }

    /// The inverse of [`Stream::vars`], given what [`Stream::parts`] said of the stream.
    pub fn from_vars(vars: Vec<Var>, parts: StreamParts) -> Stream {
        let mut vars = vars.into_iter();
        let x = vars.next().expect("a stream has x");
        let pending = if parts.pending { vars.next() } else { None };
        let prompts = if parts.prompts { vars.next() } else { None };
        Stream { x, pending, prompts }
    }
}
