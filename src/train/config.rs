//! Everything `vpt train` is told ([`TrainConfig`]), as the library takes it.

use std::path::PathBuf;

use super::data::Normalization;
use super::Optimizer;
use crate::error::{Error, Result};
use crate::model::methods::method::Method;
use crate::model::plan::BlockPlan;
use crate::model::vit::Precision;
use crate::model::vpt::Pool;

/// How many layers get prompts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Depth {
    Shallow,
    Deep,
    Layers(usize),
}

impl std::str::FromStr for Depth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Depth> {
        match s {
            "shallow" => Ok(Depth::Shallow),
            "deep" => Ok(Depth::Deep),
            n => n.parse().map(Depth::Layers).map_err(|_| Error::invalid("depth", format!("{n:?} is not shallow, deep or a number of layers"))),
        }
    }
}

impl Depth {
    pub fn layers(self, backbone_depth: usize) -> Result<usize> {
        match self {
            Depth::Shallow => Ok(1),
            Depth::Deep => Ok(backbone_depth),
            Depth::Layers(n) if n <= backbone_depth => Ok(n),
            Depth::Layers(n) => Err(Error::invalid("depth", format!("{n} prompted layers but the backbone has {backbone_depth}"))),
        }
    }
}

/// Everything `vpt train` is told.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub model: String,
    pub data: PathBuf,
    /// Validation folder (or split list); without one, a seeded 90/10 split of `data`.
    pub val: Option<PathBuf>,
    /// Where a split list's paths start (`data`, `val`); default: each list's folder.
    pub root: Option<PathBuf>,
    /// Train on the validation images too (`val`, or the split's 10%) and validate on nothing:
    /// the refit of `vpt sweep` once its search has picked a recipe.
    pub train_on_val: bool,
    pub out: String,
    pub num_prompts: usize,
    pub depth: Depth,
    pub pool: Pool,
    pub epochs: usize,
    pub batch: usize,
    /// The paper's base LR: the rate used is base_lr · batch / 256.
    pub base_lr: f64,
    pub warmup_epochs: usize,
    /// The update rule and its weight decay (the learning rate comes from the schedule).
    pub optimizer: Optimizer,
    pub seed: u64,
    /// Crop size; default: the checkpoint's own image size.
    pub img_size: Option<usize>,
    pub flip: bool,
    pub prompt_dropout: f32,
    /// Default: the checkpoint's `mean`/`std` metadata, else ImageNet's.
    pub norm: Option<Normalization>,
    pub num_heads: Option<usize>,
    /// Continue the run whose files are at `out`.
    pub resume: bool,
    /// Replace the files of an earlier run at `out` (never with `resume`).
    pub force: bool,
    /// How the backbone's blocks run: attention path, recomputation. Same results either way
    /// (to f32 rounding between the attention paths, bit for bit between recompute settings).
    pub plan: BlockPlan,
    /// How the frozen weights are stored (`--precision`).
    pub precision: Precision,
    /// What trains besides the head (`--method`; `Method::prompt()` is VPT). A method without
    /// `prompt` makes no prompts, whatever `num_prompts` says.
    pub method: Method,
}
