//! `dora`: DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation") on every block's
//! fused qkv linear: the weight split into a magnitude per output row and a direction, the
//! direction tuned by a low-rank pair, the magnitude learned:
//!
//!   W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖,   s = α/R,
//!
//! the norm taken per output row (over the input dimension) and treated as a constant in the
//! backward (detached, as the DoRA paper's §4.3 and HF PEFT do). Initialised with m = ‖W‖ per
//! row, A as LoRA's, B zeros, so W' = W at the start.
//!
//! Task names, block i: `dora.{i}.qkv.a` [R, D], `dora.{i}.qkv.b` [3D, R], `dora.{i}.qkv.m` [3D];
//! `__metadata__` `lora_alpha` (the settings `lora_rank` and `lora_alpha` make them).
//!
//! As HF PEFT computes it, in the activations: qkv = c ⊙ (h·Wᵀ + s·(h·Aᵀ)·Bᵀ) + bias, with
//! c = m / ‖W + s·B·A‖ [3D]. The [3D, D] weight W' is never formed; W + s·B·A is, once a step,
//! for its norms (no gradient).

use std::sync::Arc;

use super::low_rank;
use super::options::MethodOptions;
use super::tuner::{check_one_per_block, read_per_block, Added, Backbone, BlockSite, Dims, Named, Tuner};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Var;
use crate::io::TensorFile;
use crate::kernels::elementwise;
use crate::kernels::matmul::{matmul_forward, MatmulOptions};
use crate::tensor::{DType, Tensor};

#[derive(Debug)]
pub struct Dora {
    /// R
    rank: usize,
    /// α of s = α/R.
    alpha: f32,
}

/// `dora`, rank from the setting `lora_rank` (default 8), α from `lora_alpha` (default R), or
/// None for another part.
pub fn parse(part: &str, options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    (part == "dora").then(|| {
        let (rank, alpha) = low_rank::rank_and_alpha(options)?;
        Ok(Arc::new(Dora { rank, alpha }) as Arc<dyn Tuner>)
    })
}

/// The DoRA tensors a task file holds, if any, with their shapes checked against one another and
/// α from its metadata (R where it has none).
pub fn read(gpu: &Gpu, f: &TensorFile) -> Result<Option<Added>> {
    let blocks = read_per_block(gpu, f, names)?;
    if blocks.is_empty() {
        return Ok(None);
    }
    let mut rank = 0;
    for (i, block) in blocks.iter().enumerate() {
        let (a, b, m) = (block[0].1.shape(), block[1].1.shape(), block[2].1.shape());
        rank = low_rank::check_pair("DoRA", i, a, b).map_err(|msg| f.err(msg))?;
        if m != [b[0]] {
            return Err(f.err(format!("DoRA {i}: {} {m:?} must be [{}], one magnitude per row of B {b:?}", block[2].0, b[0])));
        }
    }
    let alpha = low_rank::alpha_in(f, rank)?;
    Ok(Some(Added { tuner: Arc::new(Dora { rank, alpha }), tensors: blocks.into_iter().flatten().collect() }))
}

/// Block i's three task names: A, B, m.
fn names(i: usize) -> Vec<String> {
    ["a", "b", "m"].iter().map(|p| format!("dora.{i}.qkv.{p}")).collect()
}

impl Dora {
    fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// 1 / ‖W + s·B·A‖ per row: W [3D, D], A [R, D], B [3D, R] → [3D]. No gradient: DoRA detaches
    /// the norm.
    fn inverse_row_norms(&self, w: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (rows, d) = (w.shape()[0], w.shape()[1]);
        let product = matmul_forward(b, a, None, MatmulOptions::default())?; // B·A [3D, D]
        let v = elementwise::add_forward(w, &elementwise::scale_forward(&product, self.scale())?)?;
        let squares = elementwise::mul_forward(&v, &v)?;
        // Σ over each row as a product with a row of ones: [3D, D] · [1, D]ᵀ → [3D, 1].
        let ones = Tensor::from_slice(w.gpu(), &[1, d], &vec![1.0; d])?;
        let sums = matmul_forward(&squares, &ones, None, MatmulOptions { trans_a: false, trans_b: true })?;
        elementwise::inverse_sqrt_forward(&sums.reshape(&[rows])?)
    }
}

impl Tuner for Dora {
    fn name(&self) -> String {
        "dora".into()
    }

    fn describe(&self, _prompts: usize, _prompt_layers: usize) -> Option<String> {
        Some(format!("DoRA on every block's qkv (rank {}, α {}, a magnitude per row)", self.rank, self.alpha))
    }

    fn options(&self) -> String {
        format!("rank {}, α {}", self.rank, self.alpha)
    }

    fn owns(&self, name: &str) -> bool {
        name.starts_with("dora.")
    }

    /// Each block's qkv weight, for m.
    fn reads_at_start(&self, depth: usize) -> Vec<String> {
        (0..depth).map(|i| format!("blocks.{i}.attn.qkv.weight")).collect()
    }

    /// A and B as LoRA's; m = ‖W‖ per row of each block's qkv weight, so W' = W.
    fn initial(&self, backbone: &Backbone, seed: u64) -> Result<Vec<Named>> {
        let pairs = low_rank::initial_pairs(backbone, self.rank, seed)?;
        let mut out = Vec::new();
        for (i, (a, b)) in pairs.into_iter().enumerate() {
            let name = format!("blocks.{i}.attn.qkv.weight");
            let [rows, d] = [backbone.tensor(&name)?.shape()[0], backbone.tensor(&name)?.shape()[1]];
            let values = backbone.values(&name)?;
            let norms: Vec<f32> = values.chunks(d).map(|row| row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32).collect();
            let m = Tensor::from_slice(backbone.gpu, &[rows], &norms)?;
            out.extend(names(i).into_iter().zip([a, b, m]));
        }
        Ok(out)
    }

    fn metadata(&self) -> Vec<(String, String)> {
        low_rank::alpha_metadata(self.alpha)
    }

    fn check_tensors(&self, tensors: &[Named], dims: Dims) -> Result<()> {
        check_one_per_block("DoRA", tensors, 3, dims.depth)?;
        let d = dims.width;
        for block in tensors.chunks(3) {
            let (a, b) = (block[0].1.shape(), block[1].1.shape());
            if a[1] != d || b[0] != 3 * d {
                return Err(Error::shape("task", format!("DoRA a {a:?}, b {b:?} must be [R, {d}] and [{}, R]", 3 * d)));
            }
        }
        Ok(())
    }

    /// c ⊙ (h·Wᵀ + s·(h·Aᵀ)·Bᵀ) + bias, c = m / ‖W + s·B·A‖ (a constant norm).
    fn qkv_linear(&self, at: &BlockSite, h: &Var, weight: &Var, bias: &Var) -> Result<Option<Var>> {
        if weight.value().dtype() != DType::F32 {
            return Err(Error::invalid("method", format!("dora needs blocks.{}.attn.qkv.weight for its norms, which `precision` f16 stores in f16; run dora with `precision` f32", at.block)));
        }
        let [a, b, m] = <[String; 3]>::try_from(names(at.block)).expect("three names").map(|n| at.leaf(&n));
        let (a, b, m) = (a?, b?, m?);
        let g = at.g;
        let inverse_norms = g.constant(self.inverse_row_norms(weight.value(), a.value(), b.value())?); // [3D]
        let c = g.mul(&m, &inverse_norms)?; // [3D]
        let direction = g.add(&g.linear(h, weight, None)?, &low_rank::delta(g, h, &a, &b, self.scale())?)?; // [B, T, 3D]
        Ok(Some(g.bias_add(&g.mul_last(&direction, &c)?, bias)?))
    }
}
