//! The one interface every tuning method implements ([`Tuner`]), and what a method is handed.
//!
//! A method is one part of `--method` (`prompt`, `bias`, `adapter`, …). It may
//! - train the task's prompts ([`Tuner::trains_prompts`]);
//! - train some of the backbone's own tensors, by timm name ([`Tuner::trains`]): the task keeps
//!   tuned copies of them, the backbone is never changed;
//! - add tensors of its own to the task ([`Tuner::initial`], [`Tuner::owns`]), under names built
//!   in its own file only, and act with them at one of the points of a block:
//!   - qkv's output [B, T, 3D] ([`Tuner::qkv`]);
//!   - the MLP hidden after GELU, as fc2's weight [D, hidden] ([`Tuner::mlp_hidden`]);
//!   - the MLP's output [B, T, D], before its residual add ([`Tuner::mlp_output`]).
//!
//! A task file read back names its methods by their tensors: each method that adds tensors can
//! read its own from a file (the registry, `mod.rs`), so that inference runs them without
//! `--method`.

use std::fmt::Debug;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, Var};
use crate::io::TensorFile;
use crate::tensor::Tensor;

/// The backbone's sizes a method makes its tensors and checks a task's against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// L, the number of blocks.
    pub depth: usize,
    /// D
    pub width: usize,
    /// The MLP's hidden width (4·D in every timm preset).
    pub hidden: usize,
}

/// A tensor by its task-file name.
pub type Named = (String, Tensor);

/// The frozen backbone as a method sees it when it makes its tensors: its sizes and its tensors
/// by timm name (DoRA starts from the norms of the qkv weights).
pub struct Backbone<'a> {
    pub gpu: &'a Gpu,
    pub dims: Dims,
    pub tensors: &'a [(String, &'a Tensor)],
    /// The values of the tensors the methods asked for at their start (`Tuner::reads_at_start`),
    /// read back once by the caller, without blocking in a browser.
    pub values: &'a [(String, Vec<f32>)],
}

impl Backbone<'_> {
    /// The backbone tensor with this timm name.
    pub fn tensor(&self, timm_name: &str) -> Result<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == timm_name).map(|(_, t)| *t).ok_or_else(|| Error::Internal { what: "backbone".into(), msg: format!("no tensor {timm_name}") })
    }

    /// The values of the backbone tensor with this timm name, which the method must have named in
    /// `Tuner::reads_at_start`.
    pub fn values(&self, timm_name: &str) -> Result<&[f32]> {
        self.values
            .iter()
            .find(|(n, _)| n == timm_name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| Error::Internal { what: "backbone".into(), msg: format!("the values of {timm_name} were not read at the start: the method must name it in its Tuner::reads_at_start") })
    }
}

/// The tensors one method added to a task, and the method itself as the task's tensors define it
/// (a low-rank method read back has the rank of its tensors and the α of its file).
#[derive(Clone)]
pub struct Added {
    pub tuner: Arc<dyn Tuner>,
    /// In the method's own order (block by block).
    pub tensors: Vec<Named>,
}

/// Graph leaves by task-file or timm name: what a block looks a method's tensors up in.
#[derive(Clone, Default)]
pub struct Leaves(Vec<(String, Var)>);

impl Leaves {
    pub fn push(&mut self, name: String, leaf: Var) {
        self.0.push((name, leaf));
    }

    /// The leaf named `name`, if any.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    /// Every leaf, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = &(String, Var)> {
        self.0.iter()
    }
}

/// Where in the model a method is acting: the graph, the block's index and the leaves.
pub struct BlockSite<'a> {
    pub g: &'a Graph,
    /// i of `blocks.i`.
    pub block: usize,
    pub leaves: &'a Leaves,
}

impl BlockSite<'_> {
    /// The leaf named `name`: a method asks only for tensors it added, so a missing one is a bug.
    pub fn leaf(&self, name: &str) -> Result<Var> {
        self.leaves.get(name).ok_or_else(|| Error::Internal { what: format!("block {}", self.block), msg: format!("no leaf {name}, which its method added") })
    }
}

/// One tuning method. Every function has the answer of a method that does nothing there, so a
/// method states only what it does.
pub trait Tuner: Debug + Send + Sync {
    /// Its part of `--method`: "adapter", "partial-2".
    fn name(&self) -> String;

    /// What it trains, for a run's header line ("an adapter in every block (reduction 8)"); the
    /// run has `prompts` prompts in `prompt_layers` layers. None: nothing to say.
    fn describe(&self, prompts: usize, prompt_layers: usize) -> Option<String>;

    /// The options that shape what it makes ("rank 8, α 8"), for a resumed run to compare.
    fn options(&self) -> String {
        String::new()
    }

    fn trains_prompts(&self) -> bool {
        false
    }

    /// Does it train the backbone tensor with this timm name, in a backbone of `depth` blocks?
    fn trains(&self, _timm_name: &str, _depth: usize) -> bool {
        false
    }

    /// An error unless it fits a backbone of `depth` blocks.
    fn check_depth(&self, _depth: usize) -> Result<()> {
        Ok(())
    }

    /// Is `name` one of the tensors it adds to a task?
    fn owns(&self, _name: &str) -> bool {
        false
    }

    /// The backbone tensors (timm names) whose values `initial` reads, on a backbone of `depth`
    /// blocks: read back for it once, without blocking in a browser (`Backbone::values`).
    fn reads_at_start(&self, _depth: usize) -> Vec<String> {
        Vec::new()
    }

    /// The tensors it adds, initialised for a fresh run on `backbone` (none for a method that
    /// only picks tensors to train).
    fn initial(&self, _backbone: &Backbone, _seed: u64) -> Result<Vec<Named>> {
        Ok(Vec::new())
    }

    /// Metadata it writes into a task file beside its tensors.
    fn metadata(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// An error unless `tensors` (its own, as a task holds them) fit a backbone of `dims`.
    fn check_tensors(&self, _tensors: &[Named], _dims: Dims) -> Result<()> {
        Ok(())
    }

    /// qkv's output [B, T, 3D] from the block's normed input h [B, T, D], qkv's weight [3D, D]
    /// and bias [3D], made by the method instead of the plain linear layer (DoRA); None: the
    /// method leaves the product as it is. At most one method of a run makes it.
    fn qkv_linear(&self, _at: &BlockSite, _h: &Var, _weight: &Var, _bias: &Var) -> Result<Option<Var>> {
        Ok(None)
    }

    /// qkv's output y [B, T, 3D], from the block's normed input h [B, T, D] and qkv's weight
    /// [3D, D]: changed as the method changes it (a low-rank update adds, IA³ rescales).
    fn qkv(&self, _at: &BlockSite, _h: &Var, _weight: &Var, y: Var) -> Result<Var> {
        Ok(y)
    }

    /// fc2's weight [D, hidden]: a method that rescales the MLP hidden after GELU rescales this
    /// weight's columns instead (the same product: fc2(z ⊙ l) = z·(W ⊙ l)ᵀ + b).
    fn mlp_hidden(&self, _at: &BlockSite, fc2_weight: Var) -> Result<Var> {
        Ok(fc2_weight)
    }

    /// The MLP's output m [B, T', D] (the rows read after the block, `block::RowsRead`), before
    /// the residual add.
    fn mlp_output(&self, _at: &BlockSite, m: Var) -> Result<Var> {
        Ok(m)
    }
}

/// The f32 tensor `name` of a task file, on `gpu`.
pub fn read_tensor(gpu: &Gpu, f: &TensorFile, name: &str) -> Result<Tensor> {
    let (shape, data) = f.checked_f32(name)?;
    Tensor::from_slice(gpu, shape, data)
}

/// The tensors `names(i)` of every block i of a task file, block by block, until a block has none
/// of them. An error if a block has some of them and not all.
pub fn read_per_block(gpu: &Gpu, f: &TensorFile, names: impl Fn(usize) -> Vec<String>) -> Result<Vec<Vec<Named>>> {
    let mut blocks = Vec::new();
    for i in 0.. {
        let names = names(i);
        if !names.iter().any(|n| f.tensors.contains_key(n)) {
            break;
        }
        blocks.push(names.into_iter().map(|n| Ok((n.clone(), read_tensor(gpu, f, &n)?))).collect::<Result<Vec<Named>>>()?);
    }
    Ok(blocks)
}

/// An error unless a method's tensors, `per_block` of them for each block, cover a backbone of
/// `depth` blocks: a task has them for every block or for none.
pub fn check_one_per_block(method: &str, tensors: &[Named], per_block: usize, depth: usize) -> Result<()> {
    if tensors.len() != per_block * depth {
        return Err(Error::shape("task", format!("{method} tensors for {} blocks, and the backbone has {depth}: a task has them for every block or none", tensors.len() / per_block.max(1))));
    }
    Ok(())
}
