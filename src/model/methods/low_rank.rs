//! What the low-rank methods (`lora.rs`, `dora.rs`) share: a pair (A [R, D], B [3D, R]) per block,
//! its initialisation, and its product in the activations, s·(h·Aᵀ)·Bᵀ, never forming B·A.

use super::options::MethodOptions;
use super::tuner::Backbone;
use crate::error::{Error, Result};
use crate::graph::{Graph, Var};
use crate::io::TensorFile;
use crate::rng;
use crate::tensor::Tensor;

/// The rank R (setting `lora_rank`, default 8) and α (setting `lora_alpha`, default R) a
/// low-rank method makes its pairs with.
pub fn rank_and_alpha(options: &MethodOptions) -> Result<(usize, f32)> {
    let rank = options.count("lora_rank", 8)?;
    let alpha = options.number("lora_alpha")?.map_or(rank as f32, |a| a as f32);
    Ok((rank, alpha))
}

/// α as a task file keeps it (metadata `lora_alpha`), or R where it has none.
pub fn alpha_in(f: &TensorFile, rank: usize) -> Result<f32> {
    match f.metadata.get("lora_alpha") {
        Some(s) => s.parse::<f32>().ok().filter(|a| a.is_finite()).ok_or_else(|| f.err(format!("metadata lora_alpha {s:?} is not a number"))),
        None => Ok(rank as f32),
    }
}

/// The metadata a low-rank method writes beside its pairs.
pub fn alpha_metadata(alpha: f32) -> Vec<(String, String)> {
    vec![("lora_alpha".into(), alpha.to_string())]
}

/// For each block, a pair (A [R, D], B [3D, R]) of rank `rank`: A as PyTorch initialises a linear
/// weight of fan-in D (uniform in ±1/√D, block i drawn from stream i of `seed`), B zeros, so that
/// B·A = 0 at the start.
pub fn initial_pairs(backbone: &Backbone, rank: usize, seed: u64) -> Result<Vec<(Tensor, Tensor)>> {
    let (gpu, d) = (backbone.gpu, backbone.dims.width);
    if rank == 0 || rank > d {
        return Err(Error::invalid("lora_rank", format!("{rank} must be between 1 and the backbone's width {d}")));
    }
    let bound = 1.0 / (d as f64).sqrt();
    (0..backbone.dims.depth)
        .map(|i| {
            let mut state = rng::stream_at(seed, i as u64);
            let a: Vec<f32> = (0..rank * d).map(|_| ((2.0 * rng::next_unit(&mut state) - 1.0) * bound) as f32).collect();
            Ok((Tensor::from_slice(gpu, &[rank, d], &a)?, Tensor::zeros(gpu, &[3 * d, rank])?))
        })
        .collect()
}

/// s·(h·Aᵀ)·Bᵀ: h [B, T, D], A [R, D], B [3D, R] → [B, T, 3D].
pub fn delta(g: &Graph, h: &Var, a: &Var, b: &Var, s: f32) -> Result<Var> {
    let low = g.linear(h, a, None)?; // [B, T, R]
    g.scale(&g.linear(&low, b, None)?, s)
}

/// An error unless every pair has the shapes [R, D] and [3D, R] of one rank R.
pub fn check_pair(method: &str, block: usize, a: &[usize], b: &[usize]) -> std::result::Result<usize, String> {
    match (a, b) {
        (&[r, _], &[_, r2]) if r == r2 && r > 0 => Ok(r),
        _ => Err(format!("{method} {block}: A {a:?} and B {b:?} must be [R, D] and [3D, R]")),
    }
}
