//! The benchmark cases: every kernel of one training step at that step's shapes, each with fresh
//! random inputs per repetition, timed by [`Gpu::profile_with`].

use super::{BenchOptions, BenchResult, StepShape};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Profile, TimingMethod};
use crate::kernels::cross_entropy::{cross_entropy_backward, cross_entropy_forward};
use crate::kernels::gelu::{gelu_backward, gelu_forward};
use crate::kernels::halves::{from_halves, to_halves};
use crate::kernels::layernorm::{add_layernorm_backward, add_layernorm_forward, layernorm_backward, layernorm_forward};
use crate::kernels::matmul::{matmul_forward_with, matmul_gelu_forward_with, matmul_gelu_grad_with, DxLayout, MatmulKernel, MatmulOptions, WeightSource};
use crate::kernels::softmax::{softmax_backward, softmax_forward};
use crate::kernels::{ROW_REDUCE_KEY, ROW_REDUCE_SUBGROUPS, ROW_REDUCE_WORKGROUP};
use crate::model::vit::Precision;
use crate::tensor::{DType, Labels, Tensor};

/// The op of one repetition, on inputs already uploaded; returns the output to check.
pub(super) type Op<'a> = Box<dyn FnOnce() -> Result<Tensor> + 'a>;

/// The sizes the cases are made of, from a [`StepShape`].
pub(super) struct Widths {
    pub(super) batch: usize,
    /// CLS + patches + prompts.
    pub(super) tokens: usize,
    /// The rows a block computes past its attention: all but the prompts the next block
    /// overwrites (`model::block::RowsRead`; the last block computes only CLS's).
    pub(super) read: usize,
    pub(super) dim: usize,
    pub(super) heads: usize,
    pub(super) mlp: usize,
    pub(super) classes: usize,
}

impl Widths {
    pub(super) fn of(s: &StepShape) -> Widths {
        Widths { batch: s.batch, tokens: s.tokens(), read: s.tokens() - s.prompts, dim: s.vit.embed_dim, heads: s.vit.num_heads, mlp: s.vit.mlp_hidden, classes: s.classes }
    }
}

/// What a case's speed is counted in.
#[derive(Clone, Copy)]
enum Work {
    Flops(f64),
    Bytes(f64),
}

pub(super) struct Case<'a> {
    pub(super) kernel: String,
    /// The matmul kernel's name; `None`: named after the entry points the op launched.
    variant: Option<&'static str>,
    shape: String,
    work: Work,
    /// Upload fresh inputs (from `seed`) and return the op to time on them.
    prepare: Box<dyn Fn(u64) -> Result<Op<'a>> + 'a>,
    /// The device the op runs on, when it is not the one the run profiles (the adapter opened
    /// again without subgroups).
    pub(super) device: Option<&'a Gpu>,
    /// The choice this case is one candidate of, for `vpt tune`.
    pub(super) tune: Option<Tune>,
    /// The frozen weight layout a dX case reads (`DxLayout`), or where a forward case reads its
    /// weight (`WeightSource`), for `vpt tune`: a second choice, made by the fastest kernel of
    /// each.
    pub(super) layout: Option<Tune>,
}

/// A case as a candidate of a kernel choice: the choice's key, this candidate's value, and
/// whether the engine takes it now (by the fixed rule or the tune cache in use).
#[derive(Clone, Debug)]
pub struct Tune {
    pub key: String,
    pub value: String,
    pub chosen: bool,
}

/// Every case of one training step, in the order a report lists them. `without_subgroups`: the
/// same adapter opened without subgroups, where `gpu` has them, so that the row kernels (softmax,
/// LayerNorm, cross-entropy) are timed with both of their reductions. The attention's cases
/// follow them (`attention_cases.rs`).
pub(super) fn cases<'a>(gpu: &'a Gpu, without_subgroups: Option<&'a Gpu>, options: &BenchOptions) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    // A kernel this adapter cannot run (sg16x8 without SUBGROUP) has no rows.
    for &kernel in options.matmul_kernels.iter().filter(|k| k.available(gpu)) {
        cases.extend(matmul_cases(gpu, kernel, &options.shape, options.precision, options.weight_texels));
    }
    if options.weight_texels {
        // The kernel the engine takes for each, and no kernel choice made from these.
        cases.retain(|c| c.tune.as_ref().is_some_and(|t| t.chosen));
        return cases.into_iter().map(|c| Case { tune: None, ..c }).collect();
    }
    // The row kernels' reduction: subgroups or workgroup memory, a tuned choice.
    let row_kernels = ["layernorm", "softmax", "cross_entropy"];
    let is_row = |c: &Case| row_kernels.iter().any(|k| c.kernel.contains(k));
    let reduction = SubgroupChoice { key: ROW_REDUCE_KEY, with: ROW_REDUCE_SUBGROUPS, without: ROW_REDUCE_WORKGROUP };
    cases.extend(with_and_without_subgroups(gpu, without_subgroups, reduction, |g| other_cases(g, &options.shape), is_row));
    cases
}

/// A `vpt tune` choice between a family's build with subgroups and its build without: the key,
/// and the value naming each.
pub(super) struct SubgroupChoice {
    pub(super) key: &'static str,
    pub(super) with: &'static str,
    pub(super) without: &'static str,
}

/// The cases `made` on `gpu`; where `plain` (the same adapter without subgroups) is given, those
/// of them that are candidates of `choice` (`of_choice`) are marked so, and made again on
/// `plain` as the other candidate.
pub(super) fn with_and_without_subgroups<'a>(
    gpu: &'a Gpu,
    plain: Option<&'a Gpu>,
    choice: SubgroupChoice,
    made: impl Fn(&'a Gpu) -> Vec<Case<'a>>,
    of_choice: impl Fn(&Case) -> bool,
) -> Vec<Case<'a>> {
    let without_chosen = gpu.choice(choice.key).as_deref() == Some(choice.without);
    let tune = |subgroups: bool| Tune { key: choice.key.into(), value: if subgroups { choice.with } else { choice.without }.into(), chosen: subgroups != without_chosen };
    let mut cases: Vec<Case<'a>> = made(gpu).into_iter().map(|c| Case { tune: (of_choice(&c) && plain.is_some()).then(|| tune(true)), ..c }).collect();
    if let Some(plain) = plain {
        let again = made(plain).into_iter().filter(|c| of_choice(c));
        cases.extend(again.map(|c| Case { device: Some(plain), tune: Some(tune(false)), ..c }));
    }
    cases
}

/// The step's matmuls with one kernel. VPT freezes the backbone, so the backward needs only the
/// gradients with respect to activations (dX), never the weights'.
///
/// With `precision` f16 the linear layers' weights (B) are stored as f16, as the training step
/// stores them; attention's products have no weight and stay f32. With `texels`, only the linear
/// layers' forward products, their weights read from texels.
fn matmul_cases<'a>(gpu: &'a Gpu, kernel: MatmulKernel, s: &StepShape, precision: Precision, texels: bool) -> Vec<Case<'a>> {
    let d = Widths::of(s);
    let rows = d.batch * d.tokens; // every token of every image, as rows of one matrix: qkv's
    let read = d.batch * d.read; // what proj and the MLP run on in every block but the last
    let (t, hd, bh) = (d.tokens, d.dim / d.heads, d.batch * d.heads);
    let nt = MatmulOptions { trans_a: false, trans_b: true };
    let nn = MatmulOptions { trans_a: false, trans_b: false };
    let tn = MatmulOptions { trans_a: true, trans_b: false };
    let weight = precision.weights();
    // A forward case as a candidate of its weight's source (`WeightSource`).
    let source = WeightSource::ALL[texels as usize];
    let fused = |name: &str, a: Vec<usize>, b: Vec<usize>, opts, epilogue| {
        let chosen = WeightSource::for_weight(gpu, b[0], b[1], weight) == source;
        let layout = Tune { key: WeightSource::tune_key(b[0], b[1], weight), value: source.name().into(), chosen };
        Case { layout: Some(layout), ..matmul_case(gpu, kernel, name, a, b, opts, epilogue, (weight, texels)) }
    };
    let linear = |name: &str, a: Vec<usize>, b: Vec<usize>, opts| fused(name, a, b, opts, Epilogue::None);
    // Linear layers: X [rows, in] · W [out, in]ᵀ; and what the step runs instead of fc1 + "gelu
    // fwd": GELU applied as C is stored.
    let forward = [
        linear("qkv", vec![rows, d.dim], vec![3 * d.dim, d.dim], nt),
        linear("proj", vec![read, d.dim], vec![d.dim, d.dim], nt),
        linear("fc1", vec![read, d.dim], vec![d.mlp, d.dim], nt),
        linear("fc2", vec![read, d.mlp], vec![d.dim, d.mlp], nt),
        fused("fc1+gelu", vec![read, d.dim], vec![d.mlp, d.dim], nt, Epilogue::Gelu),
    ];
    if texels {
        return forward.into();
    }
    let [qkv, proj, fc1, fc2, fc1_gelu] = forward;
    let mm = |name: &str, a: Vec<usize>, b: Vec<usize>, opts| matmul_case(gpu, kernel, name, a, b, opts, Epilogue::None, (DType::F32, false));
    // dX [rows, in] = dY [rows, out] · W, W [out, in] read as stored or from its transposed copy.
    let dx = |name: &str, rows: usize, out: usize, inp: usize, epilogue| {
        DxLayout::ALL.map(|layout| {
            let (label, b, opts) = match layout {
                DxLayout::Stored => (name.to_string(), vec![out, inp], nn),
                DxLayout::Transposed => (format!("{name} (W^T copy)"), vec![inp, out], nt),
            };
            let chosen = DxLayout::for_weight(gpu, out, inp, weight) == layout;
            let layout = Tune { key: DxLayout::tune_key(out, inp, weight), value: layout.name().into(), chosen };
            Case { layout: Some(layout), ..matmul_case(gpu, kernel, &label, vec![rows, out], b, opts, epilogue, (weight, false)) }
        })
    };
    let [qkv_dx, qkv_dx_t] = dx("qkv dX", rows, 3 * d.dim, d.dim, Epilogue::None);
    let [proj_dx, proj_dx_t] = dx("proj dX", read, d.dim, d.dim, Epilogue::None);
    let [fc1_dx, fc1_dx_t] = dx("fc1 dX", read, d.mlp, d.dim, Epilogue::None);
    let [fc2_dx, fc2_dx_t] = dx("fc2 dX", read, d.dim, d.mlp, Epilogue::None);
    // What the training step runs instead of fc2 dX + "gelu bwd": GELU's derivative at the saved
    // pre-activation applied as C is stored.
    let [fc2_dx_gelu, fc2_dx_gelu_t] = dx("fc2 dX*gelu'", read, d.dim, d.mlp, Epilogue::GeluGrad);
    // Each linear layer's forward, then its dX [rows, in] = dY [rows, out] · W both ways.
    #[rustfmt::skip]
    let linear_layers = [qkv, qkv_dx, qkv_dx_t, proj, proj_dx, proj_dx_t, fc1, fc1_dx, fc1_dx_t, fc2, fc2_dx, fc2_dx_t, fc1_gelu, fc2_dx_gelu, fc2_dx_gelu_t];
    linear_layers
        .into_iter()
        .chain([
            // Attention, per (image, head): S = Q·Kᵀ, dQ = dS·K, dK = dSᵀ·Q.
            mm("q.kT", vec![bh, t, hd], vec![bh, t, hd], nt),
            mm("q.kT dQ", vec![bh, t, t], vec![bh, t, hd], nn),
            mm("q.kT dK", vec![bh, t, t], vec![bh, t, hd], tn),
            // O = P·V, dP = dO·Vᵀ, dV = Pᵀ·dO.
            mm("attn.v", vec![bh, t, t], vec![bh, t, hd], nn),
            mm("attn.v dP", vec![bh, t, hd], vec![bh, t, hd], nt),
            mm("attn.v dV", vec![bh, t, t], vec![bh, t, hd], tn),
        ])
        .collect()
}

/// Which matmul launcher a case times: the plain product or one of the fused GELU epilogues.
#[derive(Clone, Copy)]
enum Epilogue {
    None,
    /// `matmul_gelu_forward`: also writes the pre-activation.
    Gelu,
    /// `matmul_gelu_grad`: also reads a pre-activation of C's shape.
    GeluGrad,
}

#[allow(clippy::too_many_arguments)]
/// `(b_stored, texels)`: how B is stored, and whether it is read from texels (a linear weight).
fn matmul_case<'a>(gpu: &'a Gpu, kernel: MatmulKernel, name: &str, a: Vec<usize>, b: Vec<usize>, opts: MatmulOptions, epilogue: Epilogue, (b_stored, texels): (DType, bool)) -> Case<'a> {
    // op(A) [batch, M, K] · op(B) [batch, K, N]
    let batch: usize = a[..a.len() - 2].iter().product();
    let (m, k) = if opts.trans_a { (a[a.len() - 1], a[a.len() - 2]) } else { (a[a.len() - 2], a[a.len() - 1]) };
    let n = if opts.trans_b { b[b.len() - 2] } else { b[b.len() - 1] };
    let t = |yes: bool| if yes { "^T" } else { "" };
    let c_shape: Vec<usize> = a[..a.len() - 2].iter().copied().chain([m, n]).collect();
    let f16 = if b_stored == DType::F16 { " (f16 W)" } else { "" };
    let from = if texels { " (texels)" } else { "" };
    Case {
        kernel: format!("matmul {name}{f16}{from}"),
        variant: Some(kernel.name()),
        shape: format!("{}{} @ {}{}", dims_text(&a), t(opts.trans_a), dims_text(&b), t(opts.trans_b)),
        work: Work::Flops(2.0 * (batch * m * n * k) as f64),
        prepare: Box::new(move |seed| {
            let a = random(gpu, &a, seed, -1.0, 1.0)?;
            let b = match b_stored {
                DType::F32 => random(gpu, &b, seed + 1, -1.0, 1.0)?,
                DType::F16 => Tensor::from_f16_stored(gpu, &b, &random(gpu, &b, seed + 1, -1.0, 1.0)?.to_vec()?)?,
            };
            let b = if texels { b.with_texels()? } else { b };
            let op: Op<'a> = match epilogue {
                Epilogue::None => Box::new(move || matmul_forward_with(kernel, &a, &b, None, opts)),
                Epilogue::Gelu => Box::new(move || Ok(matmul_gelu_forward_with(kernel, &a, &b, None, opts)?.y)),
                Epilogue::GeluGrad => {
                    let pre = random(gpu, &c_shape, seed + 2, -3.0, 3.0)?;
                    Box::new(move || matmul_gelu_grad_with(kernel, &a, &b, opts, &pre))
                }
            };
            Ok(op)
        }),
        device: None,
        tune: Some(Tune { key: MatmulKernel::tune_key(m, n, k, opts, b_stored), value: kernel.name().into(), chosen: MatmulKernel::best_for_stored(gpu, m, n, k, opts, b_stored) == kernel }),
        layout: None,
    }
}

/// A memory-bound case: `bytes` read and written at least once, on operands of `shape`.
pub(super) fn case<'a>(kernel: &str, shape: Vec<usize>, bytes: f64, prepare: impl Fn(u64) -> Result<Op<'a>> + 'a) -> Case<'a> {
    Case { kernel: kernel.to_string(), variant: None, shape: dims_text(&shape), work: Work::Bytes(bytes), prepare: Box::new(prepare), device: None, tune: None, layout: None }
}

/// LayerNorm (alone and fused with the residual add), softmax, GELU and cross-entropy, forward
/// and backward; the f16 packing of kept activations both ways.
fn other_cases<'a>(gpu: &'a Gpu, s: &StepShape) -> Vec<Case<'a>> {
    let d = Widths::of(s);
    let rows = d.batch * d.tokens;
    let attn_rows = d.batch * d.heads * d.tokens; // one softmax row per (image, head, query)
    let f32s = |n: usize| 4.0 * n as f64; // bytes of n f32 (or u32) values
    let [dim, t, mlp, b, c] = [d.dim, d.tokens, d.mlp, d.batch, d.classes];
    vec![
        // Reads x, weight, bias; writes y and the per-row mean and rstd.
        case("layernorm fwd", vec![rows, dim], f32s(2 * rows * dim + 2 * dim + 2 * rows), move |seed| {
            let x = random(gpu, &[rows, dim], seed, -1.0, 1.0)?;
            let (w, bias) = (random(gpu, &[dim], seed + 1, 0.5, 1.5)?, random(gpu, &[dim], seed + 2, -0.1, 0.1)?);
            Ok(Box::new(move || Ok(layernorm_forward(&x, &w, &bias, 1e-6)?.y)))
        }),
        // The frozen backbone's LayerNorm needs dx only. Reads x, dy, weight, mean, rstd; writes dx.
        case("layernorm bwd", vec![rows, dim], f32s(3 * rows * dim + dim + 2 * rows), move |seed| {
            let (x, dy) = (random(gpu, &[rows, dim], seed, -1.0, 1.0)?, random(gpu, &[rows, dim], seed + 1, -1.0, 1.0)?);
            let w = random(gpu, &[dim], seed + 2, 0.5, 1.5)?;
            let (mean, rstd) = (random(gpu, &[rows], seed + 3, -0.1, 0.1)?, random(gpu, &[rows], seed + 4, 0.5, 1.5)?);
            Ok(Box::new(move || Ok(layernorm_backward(&x, &w, &mean, &rstd, &dy, false)?.dx)))
        }),
        // The residual add fused with the LayerNorm after it. Reads x, r, weight, bias; writes s,
        // y and the per-row mean and rstd (an add then a LayerNorm move 5·rows·D floats).
        case("add_layernorm fwd", vec![rows, dim], f32s(4 * rows * dim + 2 * dim + 2 * rows), move |seed| {
            let (x, r) = (random(gpu, &[rows, dim], seed, -1.0, 1.0)?, random(gpu, &[rows, dim], seed + 3, -1.0, 1.0)?);
            let (w, bias) = (random(gpu, &[dim], seed + 1, 0.5, 1.5)?, random(gpu, &[dim], seed + 2, -0.1, 0.1)?);
            Ok(Box::new(move || Ok(add_layernorm_forward(&x, &r, &w, &bias, 1e-6)?.y)))
        }),
        // dx = dsum + LayerNorm's dx. Reads s, dy, dsum, weight, mean, rstd; writes dx.
        case("add_layernorm bwd", vec![rows, dim], f32s(4 * rows * dim + dim + 2 * rows), move |seed| {
            let (s, dy) = (random(gpu, &[rows, dim], seed, -1.0, 1.0)?, random(gpu, &[rows, dim], seed + 1, -1.0, 1.0)?);
            let dsum = random(gpu, &[rows, dim], seed + 5, -1.0, 1.0)?;
            let w = random(gpu, &[dim], seed + 2, 0.5, 1.5)?;
            let (mean, rstd) = (random(gpu, &[rows], seed + 3, -0.1, 0.1)?, random(gpu, &[rows], seed + 4, 0.5, 1.5)?);
            Ok(Box::new(move || Ok(add_layernorm_backward(&s, &w, &mean, &rstd, &dy, &dsum, false)?.dx)))
        }),
        // Attention probabilities: reads and writes [rows, T].
        case("softmax fwd", vec![attn_rows, t], f32s(2 * attn_rows * t), move |seed| {
            let x = random(gpu, &[attn_rows, t], seed, -4.0, 4.0)?;
            Ok(Box::new(move || softmax_forward(&x)))
        }),
        // Reads y and dy, writes dx.
        case("softmax bwd", vec![attn_rows, t], f32s(3 * attn_rows * t), move |seed| {
            let (y, dy) = (random(gpu, &[attn_rows, t], seed, 0.0, 1.0)?, random(gpu, &[attn_rows, t], seed + 1, -1.0, 1.0)?);
            Ok(Box::new(move || softmax_backward(&y, &dy)))
        }),
        // The MLP's hidden activation.
        case("gelu fwd", vec![rows, mlp], f32s(2 * rows * mlp), move |seed| {
            let x = random(gpu, &[rows, mlp], seed, -3.0, 3.0)?;
            Ok(Box::new(move || gelu_forward(&x)))
        }),
        case("gelu bwd", vec![rows, mlp], f32s(3 * rows * mlp), move |seed| {
            let (x, dy) = (random(gpu, &[rows, mlp], seed, -3.0, 3.0)?, random(gpu, &[rows, mlp], seed + 1, -1.0, 1.0)?);
            Ok(Box::new(move || gelu_backward(&x, &dy)))
        }),
        // `--precision f16` keeping the MLP's pre-activation for the backward: reads f32, writes
        // f16; then widens it back.
        case("halves to", vec![rows, mlp], 6.0 * (rows * mlp) as f64, move |seed| {
            let x = random(gpu, &[rows, mlp], seed, -3.0, 3.0)?;
            Ok(Box::new(move || to_halves(&x)))
        }),
        case("halves from", vec![rows, mlp], 6.0 * (rows * mlp) as f64, move |seed| {
            let x = to_halves(&random(gpu, &[rows, mlp], seed, -3.0, 3.0)?)?;
            Ok(Box::new(move || from_halves(&x)))
        }),
        // Reads logits and labels, writes probs and per-sample losses; then their mean.
        case("cross_entropy fwd", vec![b, c], f32s(2 * b * c + 3 * b + 1), move |seed| {
            let logits = random(gpu, &[b, c], seed, -4.0, 4.0)?;
            let labels = random_labels(gpu, b, c, seed + 1)?;
            Ok(Box::new(move || Ok(cross_entropy_forward(&logits, &labels)?.loss)))
        }),
        // Reads probs, labels and dloss, writes dlogits.
        case("cross_entropy bwd", vec![b, c], f32s(2 * b * c + b + 1), move |seed| {
            let probs = random(gpu, &[b, c], seed, 0.0, 1.0)?;
            let labels = random_labels(gpu, b, c, seed + 1)?;
            let dloss = Tensor::full(gpu, &[1], 1.0)?;
            Ok(Box::new(move || cross_entropy_backward(&probs, &labels, &dloss)))
        }),
    ]
}

impl Case<'_> {
    /// Does "kernel variant" contain one of `filter` (or is `filter` empty)?
    pub(super) fn selected(&self, filter: &[String]) -> bool {
        let text = format!("{} {}", self.kernel, self.variant.unwrap_or("")).to_lowercase();
        filter.is_empty() || filter.iter().any(|f| text.contains(&f.to_lowercase()))
    }

    /// One untimed run, `reps` timed ones, and a check of the last output.
    pub(super) fn measure(&self, gpu: &Gpu, timing: TimingMethod, reps: usize) -> Result<BenchResult> {
        let gpu = self.device.unwrap_or(gpu);
        let run = |seed: u64| -> Result<(Tensor, Profile)> {
            let op = (self.prepare)(seed)?;
            gpu.profile_with(timing, op)
        };
        let (_, warmup) = run(0)?;
        let mut times_ms = Vec::with_capacity(reps);
        let mut last = None;
        for rep in 1..=reps {
            let (out, profile) = run(rep as u64 * 16)?;
            times_ms.push(profile.total_ns() as f64 / 1e6);
            last = Some(out);
        }
        let out = last.expect("reps ≥ 1").to_vec()?;
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::Gpu { op: self.kernel.clone(), msg: format!("output {i} is {} on finite inputs", out[i]) });
        }
        times_ms.sort_by(f64::total_cmp);
        let median_ms = median(&times_ms);
        let per_second = |amount: f64| if median_ms > 0.0 { Some(amount / (median_ms / 1e3) / 1e9) } else { None };
        Ok(BenchResult {
            kernel: self.kernel.clone(),
            variant: self.variant.map_or_else(|| entry_points(&warmup), str::to_string),
            shape: self.shape.clone(),
            median_ms,
            min_ms: times_ms[0],
            max_ms: times_ms[times_ms.len() - 1],
            gflops: match self.work {
                Work::Flops(f) => per_second(f),
                Work::Bytes(_) => None,
            },
            gbps: match self.work {
                Work::Bytes(b) => per_second(b),
                Work::Flops(_) => None,
            },
            tune: self.tune.clone(),
            layout: self.layout.clone(),
        })
    }
}

/// Median of sorted values.
pub(super) fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// "cross_entropy_forward+mean_forward": the entry points a profile saw, in launch order, and
/// " (subgroups)" after them where one was a family's subgroup build (`softmax_subgroup::…`),
/// " (subgroups, texels)" where that build read texels (`attention_texels_subgroup::…`).
fn entry_points(profile: &Profile) -> String {
    let mut names: Vec<&str> = Vec::new();
    let (mut subgroups, mut texels) = (false, false);
    for k in &profile.kernels {
        let (shader, entry) = k.name.rsplit_once("::").unwrap_or(("", &k.name));
        subgroups |= shader.ends_with("_subgroup");
        texels |= shader.ends_with("_texels_subgroup");
        if !names.contains(&entry) {
            names.push(entry);
        }
    }
    names.join("+")
        + match (subgroups, texels) {
            (true, true) => " (subgroups, texels)",
            (true, false) => " (subgroups)",
            _ => "",
        }
}

/// "[247,768]"
fn dims_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// A tensor of values uniform in [lo, hi), different for each seed (SplitMix64, fast enough to
/// make every repetition's inputs fresh).
pub(super) fn random(gpu: &Gpu, shape: &[usize], seed: u64, lo: f32, hi: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n as u64).map(|i| lo + (hi - lo) * unit(seed.wrapping_mul(0x1_0000_0001).wrapping_add(i))).collect();
    Tensor::from_slice(gpu, shape, &data)
}

fn random_labels(gpu: &Gpu, batch: usize, classes: usize, seed: u64) -> Result<Labels> {
    Labels::new(gpu, &random_label_values(batch, classes, seed), classes)
}

/// `batch` class indices below `classes`, different for each seed.
pub(super) fn random_label_values(batch: usize, classes: usize, seed: u64) -> Vec<u32> {
    (0..batch as u64).map(|i| (unit(seed.wrapping_add(i)) * classes as f32) as u32 % classes as u32).collect()
}

/// The i-th value of the crate's random stream, in [0, 1).
fn unit(i: u64) -> f32 {
    (crate::rng::stream_at(0, i) >> 40) as f32 / (1u64 << 24) as f32
}
