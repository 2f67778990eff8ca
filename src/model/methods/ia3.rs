//! `ia3`: IA³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper
//! than In-Context Learning"): learned vectors that rescale, in every block, the key and value
//! parts of qkv's output and the MLP hidden after GELU. Initialised to ones, so the backbone is
//! unchanged at the start. As HF PEFT's `IA3Config` for a ViT: k and v rescale qkv's output,
//! the MLP's vector rescales fc2's input.
//!
//! Task names, block i: `ia3.{i}.k` [D], `ia3.{i}.v` [D], `ia3.{i}.mlp` [hidden].
//!
//!   qkv ← qkv ⊙ [1, …, 1, k, v]             (q unchanged; [B, T, 3D] ⊙ [3D])
//!   fc2(gelu(fc1(h)) ⊙ mlp) = gelu(fc1(h))·(W₂ ⊙ mlp)ᵀ + b₂
//!
//! The MLP's rescaling is applied to fc2's weight columns, the same product, so the fused MLP
//! (and `--recompute mlp`) run unchanged; its gradient costs fc2's weight-gradient product, as
//! `partial-K` pays for a trained fc2 (chosen for the fused MLP, not measured against
//! rescaling the [B, T, hidden] activation itself).

use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::{check_one_per_block, read_per_block, Added, Backbone, BlockSite, Dims, Named, Tuner};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Var;
use crate::io::TensorFile;
use crate::tensor::{DType, Tensor};

#[derive(Debug)]
pub struct Ia3;

/// `ia3`, or None for another part.
pub fn parse(part: &str, _options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    (part == "ia3").then(|| Ok(Arc::new(Ia3) as Arc<dyn Tuner>))
}

/// The IA³ vectors a task file holds, if any (shapes are checked against the backbone by
/// [`Tuner::check_tensors`]).
pub fn read(gpu: &Gpu, f: &TensorFile) -> Result<Option<Added>> {
    let blocks = read_per_block(gpu, f, names)?;
    if blocks.is_empty() {
        return Ok(None);
    }
    if let Some((name, t)) = blocks.iter().flatten().find(|(_, t)| t.rank() != 1) {
        return Err(f.err(format!("tensor {name:?} has shape {:?}; IA³'s tensors are vectors", t.shape())));
    }
    Ok(Some(Added { tuner: Arc::new(Ia3), tensors: blocks.into_iter().flatten().collect() }))
}

/// Block i's three task names: k, v, mlp.
fn names(i: usize) -> Vec<String> {
    ["k", "v", "mlp"].iter().map(|p| format!("ia3.{i}.{p}")).collect()
}

/// The leaves of block `at.block`: k [D], v [D], mlp [hidden].
fn leaves(at: &BlockSite) -> Result<[Var; 3]> {
    let [k, v, mlp] = <[String; 3]>::try_from(names(at.block)).expect("three names").map(|n| at.leaf(&n));
    Ok([k?, v?, mlp?])
}

impl Tuner for Ia3 {
    fn name(&self) -> String {
        "ia3".into()
    }

    fn describe(&self, _prompts: usize, _prompt_layers: usize) -> Option<String> {
        Some("IA³'s rescaling of every block's keys, values and MLP hidden".into())
    }

    fn owns(&self, name: &str) -> bool {
        name.starts_with("ia3.")
    }

    fn initial(&self, backbone: &Backbone, _seed: u64) -> Result<Vec<Named>> {
        let (gpu, dims) = (backbone.gpu, backbone.dims);
        let mut out = Vec::new();
        for i in 0..dims.depth {
            for (name, width) in names(i).into_iter().zip([dims.width, dims.width, dims.hidden]) {
                out.push((name, Tensor::from_slice(gpu, &[width], &vec![1.0; width])?));
            }
        }
        Ok(out)
    }

    fn check_tensors(&self, tensors: &[Named], dims: Dims) -> Result<()> {
        check_one_per_block("IA³", tensors, 3, dims.depth)?;
        for (name, t) in tensors {
            let want = if name.ends_with(".mlp") { dims.hidden } else { dims.width };
            if t.shape() != [want] {
                return Err(Error::shape("task", format!("IA³ {name} {:?} must be [{want}] for this backbone (D = {}, MLP hidden {})", t.shape(), dims.width, dims.hidden)));
            }
        }
        Ok(())
    }

    /// qkv ⊙ [1 (D times), k, v]: queries unchanged, keys and values rescaled.
    fn qkv(&self, at: &BlockSite, _h: &Var, _weight: &Var, y: Var) -> Result<Var> {
        let [k, v, _] = leaves(at)?;
        let g = at.g;
        let d = k.shape()[0];
        let ones = g.constant(Tensor::from_slice(y.value().gpu(), &[1, 1, d], &vec![1.0; d])?);
        // [1, 1, D] ×3 joined along the token axis: [1, 3, D], which is [3D] in memory.
        let as_row = |x: &Var| g.reshape(x, &[1, 1, d]);
        let factors = g.reshape(&g.concat_tokens(&[&ones, &as_row(&k)?, &as_row(&v)?])?, &[3 * d])?;
        g.mul_last(&y, &factors) // [B, T, 3D]
    }

    /// fc2's weight [D, hidden] with its columns rescaled by mlp [hidden].
    fn mlp_hidden(&self, at: &BlockSite, fc2_weight: Var) -> Result<Var> {
        if fc2_weight.value().dtype() != DType::F32 {
            return Err(Error::invalid("method", format!("ia3 rescales blocks.{}.mlp.fc2.weight, which `precision` f16 stores in f16; run ia3 with `precision` f32", at.block)));
        }
        let [_, _, mlp] = leaves(at)?;
        at.g.mul_last(&fc2_weight, &mlp)
    }
}
