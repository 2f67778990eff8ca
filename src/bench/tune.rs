//! `vpt tune`: time every candidate of each kernel choice at the shapes of one training step on
//! this adapter, keep the fastest, and write them to the adapter's tune cache
//! (`gpu/tuning.rs`), which every later command reads when it opens the device.
//!
//! The choices: the matmul kernel per shape and layout (every kernel but `naive`, the readable
//! reference), with f32 weights and, where the adapter has SHADER_F16, f16 ones, and the row kernels' reduction (subgroups or workgroup memory, by the total of
//! their cases, where the adapter has subgroups), and where a frozen linear layer's dX product
//! reads its weight (`DxLayout`: as stored, or a transposed copy made at load; by the sum of its
//! cases, each at its fastest kernel), where the linear layers read their weights from
//! (`WeightSource`: the buffer, or texels made at load; by the sum of each weight's forward cases,
//! the buffer's at their fastest kernel, the texels' at the kernel the engine takes), the fused
//! attention's kernels with subgroup shuffles or without (by the total of its fused cases, where
//! the adapter has subgroups), and where those with shuffles read the heads (`attention::HEADS_KEY`:
//! texels made for each launch, or the buffers; by the sum of the fused cases). A choice with
//! one candidate measured is not written: the fixed rule stays. The fused path against the
//! unfused one is not tuned: the fused kernels are taken for the memory they save (no
//! [B, H, T, T]), and `vpt bench` shows what they cost in time.

use std::collections::BTreeMap;

use super::{run, BenchOptions, BenchResult};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, KernelChoices};
use crate::kernels::matmul::{DxLayout, MatmulKernel, WeightSource};
use crate::model::vit::Precision;

/// What names the matmul cases with f16 weights (`matmul qkv (f16 W)`), lower-cased as filters are.
const F16_CASES: &str = "(f16 w)";

/// One choice as measured: each candidate's time (median ms, summed over the choice's cases).
#[derive(Clone, Debug)]
pub struct Measured {
    pub key: String,
    /// (candidate, ms), the chosen first: fastest first, a transposed copy charged for its memory.
    pub candidates: Vec<(String, f64)>,
}

impl Measured {
    pub fn winner(&self) -> &str {
        &self.candidates[0].0
    }

    /// "matmul 1976x2304x768 nt   reg32x8 12.1 ms  (reg16x8 13.0, gpu64x64 40.2, …)"
    pub fn line(&self) -> String {
        let (best, best_ms) = &self.candidates[0];
        let others: Vec<String> = self.candidates[1..].iter().map(|(name, ms)| format!("{name} {ms:.3}")).collect();
        format!("{:<32} {best:<12} {best_ms:>9.3} ms   ({})", self.key, others.join(", "))
    }
}

/// Time every candidate at `options.shape` on `gpu` (`progress` sees each case as it finishes),
/// and return the choices with what was measured.
pub fn tune(gpu: &Gpu, options: &BenchOptions, mut progress: impl FnMut(&BenchResult)) -> Result<(KernelChoices, Vec<Measured>)> {
    let options = BenchOptions { matmul_kernels: MatmulKernel::ALL.into_iter().filter(|k| *k != MatmulKernel::Naive).collect(), train_step: false, precision: Precision::F32, ..options.clone() };
    let mut results = run(gpu, &options, &mut progress)?.results;
    // Then the linear layers with f16 weights, which have choices of their own, where the
    // adapter can store f16.
    let f16 = gpu.features().contains(wgpu::Features::SHADER_F16);
    if f16 {
        let filter = if options.filter.is_empty() { vec![F16_CASES.to_string()] } else { options.filter.clone() };
        let f16 = BenchOptions { precision: Precision::F16, filter, ..options.clone() };
        results.extend(run(gpu, &f16, &mut progress)?.results.into_iter().filter(|r| r.kernel.to_lowercase().contains(F16_CASES)));
    }
    // Then the linear layers' forward products again, their weights read from texels, with the
    // kernel the engine takes (f16 weights too, where the adapter stores them). Such a run has
    // those cases alone, each with weights of its precision: nothing to filter out.
    for precision in [Precision::F32, Precision::F16].into_iter().take(1 + f16 as usize) {
        let texels = BenchOptions { weight_texels: true, precision, ..options.clone() };
        results.extend(run(gpu, &texels, &mut progress)?.results);
    }
    // Per key, per candidate: the sum of the medians of its cases.
    let mut totals: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for r in &results {
        if let Some(t) = &r.tune {
            *totals.entry(t.key.clone()).or_default().entry(t.value.clone()).or_default() += r.median_ms;
        }
    }
    // The frozen weights' dX layout and source: per candidate, its cases each at their fastest
    // kernel, summed.
    let mut fastest: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for r in &results {
        if let Some(l) = &r.layout {
            let best = fastest.entry((l.key.clone(), l.value.clone(), r.kernel.clone())).or_insert(f64::INFINITY);
            *best = best.min(r.median_ms);
        }
    }
    for ((key, layout, _), ms) in fastest {
        *totals.entry(key).or_default().entry(layout).or_default() += ms;
    }
    let mut measured = Vec::new();
    let s = &options.shape;
    let mut choices = KernelChoices::for_gpu(gpu, &format!("ViT {}×{} at batch {}, {} prompts, {} reps", s.vit.img_size.0, s.vit.img_size.1, s.batch, s.prompts, options.reps));
    for (key, candidates) in totals {
        if candidates.len() < 2 {
            continue;
        }
        let mut candidates: Vec<(String, f64)> = candidates.into_iter().collect();
        // The transposed copy and the texels cost memory (the heads' texels, copies the kernels'
        // time leaves out): each wins only where it saves `COPY_MUST_SAVE`.
        let copy = |name: &str| name == DxLayout::Transposed.name() || name == WeightSource::Texels.name();
        let charged = |(name, ms): &(String, f64)| if copy(name) { ms / (1.0 - DxLayout::COPY_MUST_SAVE) } else { *ms };
        candidates.sort_by(|a, b| charged(a).total_cmp(&charged(b)));
        let m = Measured { key: key.clone(), candidates };
        choices.choices.insert(key, m.winner().to_string());
        measured.push(m);
    }
    if measured.is_empty() {
        return Err(Error::invalid("filter", format!("{:?} leaves no choice with two candidates to compare", options.filter.join(","))));
    }
    Ok((choices, measured))
}

/// Write `choices` to `gpu`'s tune cache (atomically: a reader never sees half a file) and
/// return the path.
pub fn write_cache(gpu: &Gpu, choices: &KernelChoices) -> Result<std::path::PathBuf> {
    let path = gpu.tune_cache_path().ok_or_else(|| Error::invalid("tune", "no cache folder on this system: set VPT_CACHE_DIR to a folder for the tune cache"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::invalid("tune", format!("cannot create {}: {e}; set VPT_CACHE_DIR to a writable folder", dir.display())))?;
    }
    crate::io::write_atomically(&path, choices.to_json().as_bytes())?;
    Ok(path)
}
