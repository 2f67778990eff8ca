//! The attention's cases of `vpt bench` and the choices `vpt tune` makes from them: fused
//! (`kernels::attention`) and unfused, forward and backward; the fused kernels with and without
//! subgroup shuffles, and where the subgroup kernels read the heads from (texels made for the
//! launch, or the buffers).

use super::cases::{case, random, with_and_without_subgroups, Case, SubgroupChoice, Tune, Widths};
use super::{BenchOptions, StepShape};
use crate::error::Result;
use crate::gpu::{Gpu, KernelChoices};
use crate::kernels::attention::{self, attention_backward, attention_backward_with, attention_forward, DqPath};
use crate::kernels::matmul::{matmul_backward, matmul_forward, MatmulNeed, MatmulOptions};
use crate::kernels::softmax::{softmax_scaled_backward, softmax_scaled_forward};
use crate::tensor::Tensor;

/// The attention's cases on `gpu`, and the candidates of its choices: the fused cases again on
/// `without_subgroups` (the same adapter opened without subgroups) and on `other_heads`
/// ([`other_heads_device`]).
///
/// The fused path against the unfused one is not a tuned choice: it is taken for memory (its
/// forward keeps nothing of [B, H, T, T]; its backward holds one block's score gradients while
/// it runs), even where the unfused one is faster, so that time is shown and not acted on. The
/// fused kernels with and without subgroup shuffles are a choice, where the adapter has them;
/// where the subgroup kernels run, so is where they read the heads (`attention::HEADS_KEY`),
/// by the sum of the fused cases. The texels' copies are transfers that the kernels' time leaves
/// out: `vpt tune` charges the texels as it charges a weight's copy (`DxLayout::COPY_MUST_SAVE`).
pub(super) fn cases<'a>(gpu: &'a Gpu, without_subgroups: Option<&'a Gpu>, other_heads: Option<&'a Gpu>, options: &BenchOptions) -> Vec<Case<'a>> {
    let s = &options.shape;
    let is_fused = |c: &Case| c.kernel.split([' ', ',']).any(|word| word == "fused"); // not "unfused"
    let build = SubgroupChoice { key: attention::BUILD_KEY, with: attention::BUILD_SUBGROUPS, without: attention::BUILD_PLAIN };
    let mut cases = with_and_without_subgroups(gpu, without_subgroups, build, |g| attention_cases(g, s), is_fused);
    if let Some(other) = other_heads {
        let source = |device: &Gpu, chosen: bool| Tune { key: attention::HEADS_KEY.into(), value: attention::heads_source(device).into(), chosen };
        for c in cases.iter_mut().filter(|c| c.device.is_none() && is_fused(c)) {
            c.layout = Some(source(gpu, true));
        }
        let again = attention_cases(other, s).into_iter().filter(|c| is_fused(c));
        cases.extend(again.map(|mut c| {
            c.device = Some(other);
            c.layout = Some(source(other, false));
            c
        }));
    }
    cases
}

/// `gpu` opened again and told to read the fused attention's heads from the source it does not
/// read them from now ([`attention::heads_source`]), where its subgroup kernels run: the other
/// candidate of that choice. None where they do not run (no SUBGROUP, or a tune chose the
/// plain kernels).
pub(super) fn other_heads_device(gpu: &Gpu) -> Result<Option<Gpu>> {
    let plain_chosen = gpu.choice(attention::BUILD_KEY).as_deref() == Some(attention::BUILD_PLAIN);
    if !gpu.has_subgroups() || plain_chosen {
        return Ok(None);
    }
    let other = gpu.reopen_without(wgpu::Features::empty())?;
    let mut choices = other.choices().unwrap_or_else(|| KernelChoices::for_gpu(&other, "the fused attention's other source of heads"));
    let now = attention::heads_source(gpu);
    let flipped = if now == attention::HEADS_TEXELS { attention::HEADS_BUFFERS } else { attention::HEADS_TEXELS };
    choices.choices.insert(attention::HEADS_KEY.to_string(), flipped.to_string());
    other.use_choices(choices);
    Ok(Some(other))
}

/// Attention, fused (`kernels::attention`) and unfused (q·kᵀ, softmax, ·v, each with its
/// backward, the matmuls on their best kernel), forward and backward. GB/s counts what each must
/// move at least once: q, k, v, o (and dO and the three gradients backward), the fused path's
/// log-sum-exp, and the unfused path's [B, H, T, T] scores and probabilities.
fn attention_cases<'a>(gpu: &'a Gpu, s: &StepShape) -> Vec<Case<'a>> {
    let d = Widths::of(s);
    let (bh, t, hd) = (d.batch * d.heads, d.tokens, d.dim / d.heads);
    let shape = [d.batch, d.heads, t, hd];
    let scale = 1.0 / (hd as f32).sqrt();
    let (heads_f32, rows_f32, probs_f32) = (4.0 * (bh * t * hd) as f64, 4.0 * (bh * t) as f64, 4.0 * (bh * t * t) as f64);
    let qkv = move |seed: u64| -> Result<[Tensor; 3]> { Ok([random(gpu, &shape, seed, -2.0, 2.0)?, random(gpu, &shape, seed + 1, -2.0, 2.0)?, random(gpu, &shape, seed + 2, -1.0, 1.0)?]) };
    let qk_t = MatmulOptions { trans_a: false, trans_b: true };
    vec![
        // Reads q, k, v; writes o and L.
        case("attention fwd fused", shape.to_vec(), 4.0 * heads_f32 + rows_f32, move |seed| {
            let [q, k, v] = qkv(seed)?;
            Ok(Box::new(move || Ok(attention_forward(&q, &k, &v, scale)?.o)))
        }),
        // Reads q, k, v, o, L, dO; writes D, dq, dk, dv; with dQ by matmul also writes and reads
        // s·dS (not counted: the kernel the step takes where it fits, `DqPath::for_shape`).
        case("attention bwd fused", shape.to_vec(), 8.0 * heads_f32 + 2.0 * rows_f32, move |seed| {
            let [q, k, v] = qkv(seed)?;
            let out = attention_forward(&q, &k, &v, scale)?;
            let dout = random(gpu, &shape, seed + 3, -1.0, 1.0)?;
            Ok(Box::new(move || Ok(attention_backward(&q, &k, &v, &out, &dout, scale)?.dq)))
        }),
        // The same with dQ's kernel, which stores nothing of T² (what runs where s·dS does not fit).
        case("attention bwd fused, dq kernel", shape.to_vec(), 8.0 * heads_f32 + 2.0 * rows_f32, move |seed| {
            let [q, k, v] = qkv(seed)?;
            let out = attention_forward(&q, &k, &v, scale)?;
            let dout = random(gpu, &shape, seed + 3, -1.0, 1.0)?;
            Ok(Box::new(move || Ok(attention_backward_with(DqPath::Kernel, &q, &k, &v, &out, &dout, scale)?.dq)))
        }),
        // Reads q, k, v; writes and reads the scores and the probabilities; writes o.
        case("attention fwd unfused", shape.to_vec(), 4.0 * heads_f32 + 4.0 * probs_f32, move |seed| {
            let [q, k, v] = qkv(seed)?;
            Ok(Box::new(move || {
                let probs = softmax_scaled_forward(&matmul_forward(&q, &k, None, qk_t)?, scale)?;
                matmul_forward(&probs, &v, None, MatmulOptions::default())
            }))
        }),
        // Reads q, k, v, P, dO; writes and reads dP and dS; writes dq, dk, dv.
        case("attention bwd unfused", shape.to_vec(), 7.0 * heads_f32 + 5.0 * probs_f32, move |seed| {
            let [q, k, v] = qkv(seed)?;
            let probs = softmax_scaled_forward(&matmul_forward(&q, &k, None, qk_t)?, scale)?;
            let dout = random(gpu, &shape, seed + 3, -1.0, 1.0)?;
            let both = MatmulNeed { a: true, b: true, bias: false };
            Ok(Box::new(move || {
                let through_v = matmul_backward(&probs, &v, &dout, MatmulOptions::default(), both)?;
                let dprobs = through_v.da.expect("asked for");
                let dscores = softmax_scaled_backward(&probs, &dprobs, scale)?;
                Ok(matmul_backward(&q, &k, &dscores, qk_t, both)?.da.expect("asked for"))
            }))
        }),
    ]
}
