//! `lora`: LoRA on every block's fused qkv linear, W ← W + (α/R)·B·A.
//!
//! Task names, block i: `lora.{i}.qkv.a` [R, D], `lora.{i}.qkv.b` [3D, R]; `__metadata__`
//! `lora_alpha`. A is initialised as PyTorch initialises a linear weight of fan-in D (uniform in
//! ±1/√D, seeded), B with zeros, so W is unchanged at the start. The rank R follows from the shapes.

use std::sync::Arc;

use super::low_rank;
use super::options::MethodOptions;
use super::tuner::{check_one_per_block, read_per_block, Added, Backbone, BlockSite, Dims, Named, Tuner};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Var;
use crate::io::TensorFile;

#[derive(Debug)]
pub struct Lora {
    /// R
    rank: usize,
    /// α of W + (α/R)·B·A.
    alpha: f32,
}

/// `lora`, rank from the setting `lora_rank` (default 8), α from `lora_alpha` (default R), or
/// None for another part.
pub fn parse(part: &str, options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    (part == "lora").then(|| {
        let (rank, alpha) = low_rank::rank_and_alpha(options)?;
        Ok(Arc::new(Lora { rank, alpha }) as Arc<dyn Tuner>)
    })
}

/// The LoRA pairs a task file holds, if any, with their shapes checked and α from its metadata
/// (R where it has none).
pub fn read(gpu: &Gpu, f: &TensorFile) -> Result<Option<Added>> {
    let blocks = read_per_block(gpu, f, names)?;
    if blocks.is_empty() {
        return Ok(None);
    }
    for (i, pair) in blocks.iter().enumerate() {
        low_rank::check_pair("LoRA", i, pair[0].1.shape(), pair[1].1.shape()).map_err(|msg| f.err(msg))?;
    }
    let rank = blocks[0][0].1.shape()[0];
    let alpha = low_rank::alpha_in(f, rank)?;
    Ok(Some(Added { tuner: Arc::new(Lora { rank, alpha }), tensors: blocks.into_iter().flatten().collect() }))
}

/// Block i's two task names: A, then B.
fn names(i: usize) -> Vec<String> {
    vec![format!("lora.{i}.qkv.a"), format!("lora.{i}.qkv.b")]
}

impl Tuner for Lora {
    fn name(&self) -> String {
        "lora".into()
    }

    fn describe(&self, _prompts: usize, _prompt_layers: usize) -> Option<String> {
        Some(format!("LoRA on every block's qkv (rank {}, α {})", self.rank, self.alpha))
    }

    fn options(&self) -> String {
        format!("rank {}, α {}", self.rank, self.alpha)
    }

    fn owns(&self, name: &str) -> bool {
        name.starts_with("lora.")
    }

    fn initial(&self, backbone: &Backbone, seed: u64) -> Result<Vec<Named>> {
        let pairs = low_rank::initial_pairs(backbone, self.rank, seed)?;
        Ok(pairs.into_iter().enumerate().flat_map(|(i, (a, b))| names(i).into_iter().zip([a, b])).collect())
    }

    fn metadata(&self) -> Vec<(String, String)> {
        low_rank::alpha_metadata(self.alpha)
    }

    fn check_tensors(&self, tensors: &[Named], dims: Dims) -> Result<()> {
        check_one_per_block("LoRA", tensors, 2, dims.depth)?;
        let d = dims.width;
        for pair in tensors.chunks(2) {
            let (a, b) = (pair[0].1.shape(), pair[1].1.shape());
            if a[1] != d || b[0] != 3 * d {
                return Err(Error::shape("task", format!("LoRA a {a:?}, b {b:?} must be [R, {d}] and [{}, R]", 3 * d)));
            }
        }
        Ok(())
    }

    /// h·(W + s·B·A)ᵀ = h·Wᵀ + s·(h·Aᵀ)·Bᵀ, s = α/R, never forming B·A.
    fn qkv(&self, at: &BlockSite, h: &Var, _weight: &Var, y: Var) -> Result<Var> {
        let [a, b] = <[String; 2]>::try_from(names(at.block)).expect("two names").map(|n| at.leaf(&n));
        at.g.add(&y, &low_rank::delta(at.g, h, &a?, &b?, self.alpha / self.rank as f32)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::method::Method;
    use super::*;

    #[test]
    fn lora_is_named_described_and_sized_by_its_options() {
        for name in ["lora", "bias+lora", "prompt+lora", "lora+ia3"] {
            assert_eq!(name.parse::<Method>().unwrap().name(), name);
        }
        assert_eq!("lora".parse::<Method>().unwrap().describe(0, 0), "LoRA on every block's qkv (rank 8, α 8) and the head");
        let options = MethodOptions::default().with("lora_rank", 4.0).with("lora_alpha", 2.5);
        let lora = Method::parse("lora", &options).unwrap();
        assert_eq!(lora.options(), "lora: rank 4, α 2.5");
        assert_ne!(lora, "lora".parse::<Method>().unwrap(), "options make another method");
        let err = Method::parse("lora", &MethodOptions::default().with("lora_rank", 1.5)).unwrap_err().to_string();
        assert!(err.starts_with("lora_rank:"), "{err}");
        // DoRA keeps its α under the same name: one task file cannot hold both.
        let err = "lora+dora".parse::<Method>().unwrap_err().to_string();
        assert!(err.starts_with("method:") && err.contains("lora_alpha"), "{err}");
    }
}
