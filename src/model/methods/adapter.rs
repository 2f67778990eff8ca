//! `adapter`: a Pfeiffer adapter in every block (KMnP/vpt's `vit_adapter`), after the MLP and
//! before its residual add:
//!
//!   m = fc2(gelu(fc1(norm2(x))));   m ← m + up(gelu(down(m)));   x ← x + m
//!
//! Task names, block i: `adapter.{i}.down.weight` [D/R, D], `adapter.{i}.down.bias` [D/R],
//! `adapter.{i}.up.weight` [D, D/R], `adapter.{i}.up.bias` [D]. Zero-initialised, as the official
//! code does (`nn.init.zeros_` on all four). The reduction R follows from the shapes.

use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::{check_one_per_block, read_per_block, Added, Backbone, BlockSite, Dims, Named, Tuner};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Var;
use crate::io::TensorFile;
use crate::tensor::Tensor;

const PARTS: [&str; 4] = ["down.weight", "down.bias", "up.weight", "up.bias"];

#[derive(Debug)]
pub struct Adapter {
    /// R: the adapter is D/R wide.
    reduction: usize,
}

/// `adapter`, reduction from the setting `adapter_reduction` (default 8), or None for another part.
pub fn parse(part: &str, options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    (part == "adapter").then(|| Ok(Arc::new(Adapter { reduction: options.count("adapter_reduction", 8)? }) as Arc<dyn Tuner>))
}

/// The adapters a task file holds, if any, with their shapes checked against one another.
pub fn read(gpu: &Gpu, f: &TensorFile) -> Result<Option<Added>> {
    let blocks = read_per_block(gpu, f, names)?;
    let Some(first) = blocks.first() else { return Ok(None) };
    let (r, d) = match first[0].1.shape() {
        &[r, d] if r > 0 => (r, d),
        other => return Err(f.err(format!("tensor \"adapter.0.down.weight\" has shape {other:?}, expected [D/R, D]"))),
    };
    for (i, block) in blocks.iter().enumerate() {
        let shapes: Vec<&[usize]> = block.iter().map(|(_, t)| t.shape()).collect();
        if shapes != [&[r, d][..], &[r], &[d, r], &[d]] {
            return Err(f.err(format!("adapter {i}: down.weight, down.bias, up.weight, up.bias are {shapes:?}, and must be [{r}, {d}], [{r}], [{d}, {r}], [{d}]")));
        }
    }
    Ok(Some(Added { tuner: Arc::new(Adapter { reduction: d / r }), tensors: blocks.into_iter().flatten().collect() }))
}

/// Block i's four task names, in the order they are kept and written.
fn names(i: usize) -> Vec<String> {
    PARTS.iter().map(|p| format!("adapter.{i}.{p}")).collect()
}

impl Tuner for Adapter {
    fn name(&self) -> String {
        "adapter".into()
    }

    fn describe(&self, _prompts: usize, _prompt_layers: usize) -> Option<String> {
        Some(format!("an adapter in every block (reduction {})", self.reduction))
    }

    fn options(&self) -> String {
        format!("reduction {}", self.reduction)
    }

    fn owns(&self, name: &str) -> bool {
        name.starts_with("adapter.")
    }

    fn initial(&self, backbone: &Backbone, _seed: u64) -> Result<Vec<Named>> {
        let (gpu, dims) = (backbone.gpu, backbone.dims);
        let (reduction, d) = (self.reduction, dims.width);
        if reduction == 0 || d / reduction == 0 {
            return Err(Error::invalid("adapter_reduction", format!("{reduction} leaves no width: the backbone's width {d} divided by it must be at least 1")));
        }
        let r = d / reduction;
        let mut out = Vec::new();
        for i in 0..dims.depth {
            for (name, shape) in names(i).into_iter().zip([vec![r, d], vec![r], vec![d, r], vec![d]]) {
                out.push((name, Tensor::zeros(gpu, &shape)?));
            }
        }
        Ok(out)
    }

    fn check_tensors(&self, tensors: &[Named], dims: Dims) -> Result<()> {
        check_one_per_block("adapter", tensors, PARTS.len(), dims.depth)?;
        match tensors.first().map(|(_, t)| t.shape()) {
            Some(&[_, d]) if d != dims.width => Err(Error::shape("task", format!("adapter down.weight {:?} does not match the backbone width D = {}", tensors[0].1.shape(), dims.width))),
            _ => Ok(()),
        }
    }

    /// m + up(gelu(down(m))).
    fn mlp_output(&self, at: &BlockSite, m: Var) -> Result<Var> {
        let leaves = names(at.block).iter().map(|n| at.leaf(n)).collect::<Result<Vec<Var>>>()?;
        let [down_w, down_b, up_w, up_b] = &leaves[..] else { unreachable!("four parts per block") };
        let g = at.g;
        let a = g.gelu(&g.linear(&m, down_w, Some(down_b))?)?; // [B, T, D/R]
        g.add(&m, &g.linear(&a, up_w, Some(up_b))?)
    }
}
