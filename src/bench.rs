//! The kernel benchmarks behind `vpt bench` and `cargo bench`: every kernel of a ViT training step
//! with Visual Prompt Tuning, at that step's real shapes, timed on the GPU (see [`Gpu::profile`]).
//!
//! Each case runs once untimed (pipeline compilation, first touch), then `reps` times. Every
//! repetition uploads fresh random inputs into new buffers, outside the timed region, and times
//! only the kernels. The last repetition's output is read back and checked to be finite, so a
//! kernel that did nothing, or garbage, cannot pass as fast.
//!
//! Matmuls are reported in GFLOP/s (2·M·N·K per product), the memory-bound kernels in GB/s (the
//! bytes they must read and write at least once: inputs + outputs), both at the median time.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Profile, TimingMethod};
use crate::kernels::cross_entropy::{cross_entropy_backward, cross_entropy_forward};
use crate::kernels::gelu::{gelu_backward, gelu_forward};
use crate::kernels::layernorm::{add_layernorm_backward, add_layernorm_forward, layernorm_backward, layernorm_forward};
use crate::kernels::matmul::{matmul_forward_with, matmul_gelu_forward_with, matmul_gelu_grad_with, MatmulKernel, MatmulOptions};
use crate::kernels::softmax::{softmax_backward, softmax_forward};
use crate::tensor::{Labels, Tensor};

/// The sizes of one ViT training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Images per step.
    pub batch: usize,
    /// Tokens per image: CLS + patches + prompts.
    pub tokens: usize,
    /// Embedding width D.
    pub dim: usize,
    /// Attention heads (head width D / heads).
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp: usize,
    /// Classes of the task's linear head.
    pub classes: usize,
}

impl Dims {
    /// ViT-B/16 under VPT-deep with 50 prompts: 1 + 196 + 50 = 247 tokens of width 768, 12 heads
    /// of 64, MLP 3072, and a 100-class head (CIFAR-100, the largest VTAB-1k head but one).
    pub fn vit_b(batch: usize) -> Dims {
        Dims { batch, tokens: 1 + 196 + 50, dim: 768, heads: 12, mlp: 3072, classes: 100 }
    }

    /// ViT-B/16's widths at batch 1 with 60 tokens (CLS + the 49 patches of a 112-pixel image +
    /// 10 prompts): the same kernels on a step small enough for a CPU adapter.
    pub fn small() -> Dims {
        Dims { batch: 1, tokens: 1 + 49 + 10, dim: 768, heads: 12, mlp: 3072, classes: 100 }
    }

    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    fn check(&self) -> Result<()> {
        let d = self;
        let sizes = [d.batch, d.tokens, d.dim, d.heads, d.mlp, d.classes];
        if sizes.contains(&0) || !d.dim.is_multiple_of(d.heads) {
            return Err(Error::shape("bench", format!("{d:?}: every size must be at least 1 and dim a multiple of heads")));
        }
        Ok(())
    }
}

/// The named sizes `vpt bench --preset` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// [`Dims::small`]: a few minutes on lavapipe.
    Small,
    /// [`Dims::vit_b`], batch 32 unless given.
    VitB,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::VitB => "vit-b",
        }
    }

    /// The preset's sizes, with its batch replaced by `batch` when given.
    pub fn dims(self, batch: Option<usize>) -> Dims {
        let dims = match self {
            Preset::Small => Dims::small(),
            Preset::VitB => Dims::vit_b(32),
        };
        Dims { batch: batch.unwrap_or(dims.batch), ..dims }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub dims: Dims,
    /// Timed repetitions per case (after one untimed).
    pub reps: usize,
    /// The matmul kernels to compare, each on every matmul shape.
    pub matmul_kernels: Vec<MatmulKernel>,
    /// Run only cases whose "kernel variant" contains one of these (case-insensitive); all if empty.
    pub filter: Vec<String>,
    /// How to time; `None`: GPU timestamps where the adapter has them, else the host clock.
    pub timing: Option<TimingMethod>,
    /// Also time a whole VPT-deep training step of a ViT with these sizes (see [`train_step`]).
    pub train_step: Option<TrainStepSpec>,
}

impl BenchOptions {
    pub fn new(dims: Dims) -> BenchOptions {
        BenchOptions { dims, reps: 10, matmul_kernels: MatmulKernel::ALL.to_vec(), filter: Vec::new(), timing: None, train_step: None }
    }
}

/// The model around [`Dims`] for the training-step benchmark: `depth` blocks, `prompts` deep
/// prompts per block, patches of `patch`² pixels; the image is square, with
/// `dims.tokens − 1 − prompts` patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainStepSpec {
    pub depth: usize,
    pub prompts: usize,
    pub patch: usize,
}

/// One VPT-deep training step, end to end: images/s and where the time goes.
#[derive(Clone, Debug)]
pub struct TrainStepResult {
    pub images_per_second: f64,
    /// Median milliseconds of the forward (to the loss), the backward (to the prompt and head
    /// gradients) and the optimizer (SGD on prompts and head), each waited for.
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    /// Kernel launches in one step.
    pub dispatches: u64,
    /// Most tensor storage alive during the step, and how much of it is the frozen weights.
    pub peak_bytes: u64,
    pub weight_bytes: u64,
    pub description: String,
}

/// One case's timings.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// What ran: "matmul fc1", "layernorm bwd", ...
    pub kernel: String,
    /// Which implementation: the matmul kernel, or the WGSL entry points the op launched.
    pub variant: String,
    /// The operands, e.g. "[247,768] @ [3072,768]^T".
    pub shape: String,
    /// Kernel time over the repetitions, in milliseconds.
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Matmuls: 2·M·N·K·batch / median time.
    pub gflops: Option<f64>,
    /// Memory-bound kernels: (bytes read + bytes written) / median time.
    pub gbps: Option<f64>,
}

/// Everything one run measured, and where.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub timing: TimingMethod,
    pub dims: Dims,
    pub reps: usize,
    pub results: Vec<BenchResult>,
    pub train_step: Option<TrainStepResult>,
}

/// Run every case `options` selects on `gpu`, calling `progress` after each. Profiles the device,
/// so nothing else should use it meanwhile.
pub fn run(gpu: &Gpu, options: &BenchOptions, mut progress: impl FnMut(&BenchResult)) -> Result<BenchReport> {
    options.dims.check()?;
    if options.reps == 0 {
        return Err(Error::shape("bench", "reps must be at least 1"));
    }
    let timing = timing_for(gpu, options.timing);
    let mut results = Vec::new();
    for case in cases(gpu, options) {
        if !case.selected(&options.filter) {
            continue;
        }
        let result = case.measure(gpu, timing, options.reps)?;
        progress(&result);
        results.push(result);
    }
    let wants_step = options.filter.is_empty() || options.filter.iter().any(|f| "train step".contains(&f.to_lowercase()));
    let train_step = match options.train_step {
        Some(spec) if wants_step => Some(train_step(gpu, &options.dims, spec, options.reps.min(3))?),
        _ => None,
    };
    let info = gpu.info();
    Ok(BenchReport {
        adapter: info.name.clone(),
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        timing,
        dims: options.dims,
        reps: options.reps,
        results,
        train_step,
    })
}

/// Time a whole VPT-deep training step: a ViT with `dims`' widths and `spec`'s depth, synthetic
/// weights, `spec.prompts` prompts in every block, a `dims.classes` head; `reps` timed steps after
/// one untimed. Host-clock time, each phase waited for, so it includes submission and sync.
pub fn train_step(gpu: &Gpu, dims: &Dims, spec: TrainStepSpec, reps: usize) -> Result<TrainStepResult> {
    use crate::graph::Graph;
    use crate::kernels::optim::{sgd_step, Sgd};
    use crate::synthetic::{synthetic_tensor, synthetic_vit_state_dict, SyntheticVit};
    use crate::vit::{LoadOptions, StateDict, Vit};
    use crate::vpt::{vpt_logits, Pool, TaskVars, VptTask};
    use std::time::Instant;

    let patches = dims.tokens.checked_sub(1 + spec.prompts).filter(|&n| n > 0);
    let side = patches.map(|n| (n as f64).sqrt().round() as usize).filter(|s| s * s == patches.unwrap_or(0));
    let side = side.ok_or_else(|| Error::shape("bench train step", format!("{} tokens − 1 CLS − {} prompts is not a square number of patches", dims.tokens, spec.prompts)))?;
    let img = side * spec.patch;
    let cfg = SyntheticVit {
        embed_dim: dims.dim,
        depth: spec.depth,
        num_heads: dims.heads,
        patch_size: spec.patch,
        img_size: (img, img),
        in_chans: 3,
        mlp_ratio: dims.mlp as f64 / dims.dim as f64,
        num_classes: 0,
    };
    let live_before = gpu.live_bytes();
    let sd = StateDict::from_tensors("bench", synthetic_vit_state_dict(&cfg, 1), [("num_heads".to_string(), dims.heads.to_string())].into());
    let vit = Vit::from_state_dict(gpu, &sd, &LoadOptions::default())?;
    drop(sd);
    let weight_bytes = gpu.live_bytes() - live_before;
    let (b, d, c, p) = (dims.batch, dims.dim, dims.classes, spec.prompts);
    let task = VptTask {
        prompts: Some(Tensor::from_slice(gpu, &[spec.depth, p, d], &synthetic_tensor("vpt.prompts", &[spec.depth, p, d], 1))?),
        head_weight: Tensor::from_slice(gpu, &[c, d], &synthetic_tensor("vpt.head.weight", &[c, d], 1))?,
        head_bias: Tensor::zeros(gpu, &[c])?,
        pool: Pool::Cls,
    };
    let momentum: Vec<Tensor> = [&[spec.depth, p, d][..], &[c, d], &[c]].iter().map(|s| Tensor::zeros(gpu, s)).collect::<Result<_>>()?;
    let images = Tensor::from_slice(gpu, &[b, 3, img, img], &synthetic_tensor("batch.images", &[b, 3, img, img], 1))?;
    let labels = random_labels(gpu, b, c, 1)?;
    gpu.flush()?;

    let (mut fwd, mut bwd, mut opt, mut dispatches) = (Vec::new(), Vec::new(), Vec::new(), 0);
    gpu.reset_peak_bytes();
    for rep in 0..=reps {
        let start_dispatches = gpu.dispatch_count();
        let t = Instant::now();
        let g = Graph::new(gpu);
        let vars = TaskVars::params(&g, &task);
        let loss = g.cross_entropy(&vpt_logits(&g, &vit, &task, &vars, &images, None)?, &labels)?;
        loss.value().to_scalar()?; // waits for the forward
        let forward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads = g.backward(&loss)?;
        let trained = [vars.prompts.as_ref().expect("prompts"), &vars.head_weight, &vars.head_bias];
        let grads: Vec<&Tensor> = trained.iter().map(|v| grads.get(v).expect("trained tensors get gradients")).collect();
        gpu.wait_for_all()?;
        let backward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let params = [task.prompts.as_ref().expect("prompts"), &task.head_weight, &task.head_bias];
        for ((param, grad), buf) in params.iter().zip(&grads).zip(&momentum) {
            sgd_step(param, grad, buf, Sgd { lr: 1e-3, momentum: 0.9, weight_decay: 1e-4, nesterov: false })?;
        }
        gpu.wait_for_all()?;
        let optimizer = t.elapsed().as_secs_f64();
        if rep > 0 {
            fwd.push(forward * 1e3);
            bwd.push(backward * 1e3);
            opt.push(optimizer * 1e3);
            dispatches = gpu.dispatch_count() - start_dispatches;
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        median(v)
    };
    let (forward_ms, backward_ms, optimizer_ms) = (med(&mut fwd), med(&mut bwd), med(&mut opt));
    Ok(TrainStepResult {
        images_per_second: b as f64 / ((forward_ms + backward_ms + optimizer_ms) / 1e3),
        forward_ms,
        backward_ms,
        optimizer_ms,
        dispatches,
        peak_bytes: gpu.peak_bytes() - live_before,
        weight_bytes,
        description: format!("VPT-deep step: {} blocks, {p} prompts each, {img}×{img} images (patch {}), batch {b}", spec.depth, spec.patch),
    })
}

/// `wanted`, or by default GPU timestamps where the adapter has them and the host clock elsewhere.
fn timing_for(gpu: &Gpu, wanted: Option<TimingMethod>) -> TimingMethod {
    wanted.unwrap_or(if gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
        TimingMethod::GpuTimestamps
    } else {
        TimingMethod::WallClock
    })
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

/// The op of one repetition, on inputs already uploaded; returns the output to check.
type Op<'a> = Box<dyn FnOnce() -> Result<Tensor> + 'a>;

/// What a case's speed is counted in.
#[derive(Clone, Copy)]
enum Work {
    Flops(f64),
    Bytes(f64),
}

struct Case<'a> {
    kernel: String,
    /// The matmul kernel's name; `None`: named after the entry points the op launched.
    variant: Option<&'static str>,
    shape: String,
    work: Work,
    /// Upload fresh inputs (from `seed`) and return the op to time on them.
    prepare: Box<dyn Fn(u64) -> Result<Op<'a>> + 'a>,
}

/// Every case of one training step, in the order a report lists them.
fn cases<'a>(gpu: &'a Gpu, options: &BenchOptions) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    for &kernel in &options.matmul_kernels {
        cases.extend(matmul_cases(gpu, kernel, options.dims));
    }
    cases.extend(other_cases(gpu, options.dims));
    cases
}

/// The step's matmuls with one kernel. VPT freezes the backbone, so the backward needs only the
/// gradients with respect to activations (dX), never the weights'.
fn matmul_cases(gpu: &Gpu, kernel: MatmulKernel, d: Dims) -> Vec<Case<'_>> {
    let rows = d.batch * d.tokens; // every token of every image, as rows of one matrix
    let (t, hd, bh) = (d.tokens, d.head_dim(), d.batch * d.heads);
    let nt = MatmulOptions { trans_a: false, trans_b: true };
    let nn = MatmulOptions { trans_a: false, trans_b: false };
    let tn = MatmulOptions { trans_a: true, trans_b: false };
    let mm = |name: &str, a: Vec<usize>, b: Vec<usize>, opts| matmul_case(gpu, kernel, name, a, b, opts, Epilogue::None);
    let fused = |name: &str, a: Vec<usize>, b: Vec<usize>, opts, epilogue| matmul_case(gpu, kernel, name, a, b, opts, epilogue);
    vec![
        // Linear layers: X [rows, in] · W [out, in]ᵀ, and dX [rows, in] = dY [rows, out] · W.
        mm("qkv", vec![rows, d.dim], vec![3 * d.dim, d.dim], nt),
        mm("qkv dX", vec![rows, 3 * d.dim], vec![3 * d.dim, d.dim], nn),
        mm("proj", vec![rows, d.dim], vec![d.dim, d.dim], nt),
        mm("proj dX", vec![rows, d.dim], vec![d.dim, d.dim], nn),
        mm("fc1", vec![rows, d.dim], vec![d.mlp, d.dim], nt),
        mm("fc1 dX", vec![rows, d.mlp], vec![d.mlp, d.dim], nn),
        mm("fc2", vec![rows, d.mlp], vec![d.dim, d.mlp], nt),
        mm("fc2 dX", vec![rows, d.dim], vec![d.dim, d.mlp], nn),
        // What the training step runs instead of fc1 + "gelu fwd" and fc2 dX + "gelu bwd": the same
        // products with GELU, or its derivative at the saved pre-activation, applied as C is stored.
        fused("fc1+gelu", vec![rows, d.dim], vec![d.mlp, d.dim], nt, Epilogue::Gelu),
        fused("fc2 dX*gelu'", vec![rows, d.dim], vec![d.dim, d.mlp], nn, Epilogue::GeluGrad),
        // Attention, per (image, head): S = Q·Kᵀ, dQ = dS·K, dK = dSᵀ·Q.
        mm("q.kT", vec![bh, t, hd], vec![bh, t, hd], nt),
        mm("q.kT dQ", vec![bh, t, t], vec![bh, t, hd], nn),
        mm("q.kT dK", vec![bh, t, t], vec![bh, t, hd], tn),
        // O = P·V, dP = dO·Vᵀ, dV = Pᵀ·dO.
        mm("attn.v", vec![bh, t, t], vec![bh, t, hd], nn),
        mm("attn.v dP", vec![bh, t, hd], vec![bh, t, hd], nt),
        mm("attn.v dV", vec![bh, t, t], vec![bh, t, hd], tn),
    ]
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

fn matmul_case<'a>(
    gpu: &'a Gpu,
    kernel: MatmulKernel,
    name: &str,
    a: Vec<usize>,
    b: Vec<usize>,
    opts: MatmulOptions,
    epilogue: Epilogue,
) -> Case<'a> {
    // op(A) [batch, M, K] · op(B) [batch, K, N]
    let batch: usize = a[..a.len() - 2].iter().product();
    let (m, k) = if opts.trans_a { (a[a.len() - 1], a[a.len() - 2]) } else { (a[a.len() - 2], a[a.len() - 1]) };
    let n = if opts.trans_b { b[b.len() - 2] } else { b[b.len() - 1] };
    let t = |yes: bool| if yes { "^T" } else { "" };
    let c_shape: Vec<usize> = a[..a.len() - 2].iter().copied().chain([m, n]).collect();
    Case {
        kernel: format!("matmul {name}"),
        variant: Some(kernel.name()),
        shape: format!("{}{} @ {}{}", dims_text(&a), t(opts.trans_a), dims_text(&b), t(opts.trans_b)),
        work: Work::Flops(2.0 * (batch * m * n * k) as f64),
        prepare: Box::new(move |seed| {
            let (a, b) = (random(gpu, &a, seed, -1.0, 1.0)?, random(gpu, &b, seed + 1, -1.0, 1.0)?);
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
    }
}

/// A memory-bound case: `bytes` read and written at least once, on operands of `shape`.
fn case<'a>(kernel: &str, shape: Vec<usize>, bytes: f64, prepare: impl Fn(u64) -> Result<Op<'a>> + 'a) -> Case<'a> {
    Case { kernel: kernel.to_string(), variant: None, shape: dims_text(&shape), work: Work::Bytes(bytes), prepare: Box::new(prepare) }
}

/// LayerNorm (alone and fused with the residual add), softmax, GELU and cross-entropy, forward
/// and backward.
fn other_cases(gpu: &Gpu, d: Dims) -> Vec<Case<'_>> {
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
    fn selected(&self, filter: &[String]) -> bool {
        let text = format!("{} {}", self.kernel, self.variant.unwrap_or("")).to_lowercase();
        filter.is_empty() || filter.iter().any(|f| text.contains(&f.to_lowercase()))
    }

    /// One untimed run, `reps` timed ones, and a check of the last output.
    fn measure(&self, gpu: &Gpu, timing: TimingMethod, reps: usize) -> Result<BenchResult> {
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
        })
    }
}

/// Median of sorted values.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// "cross_entropy_forward+mean_forward": the entry points a profile saw, in launch order.
fn entry_points(profile: &Profile) -> String {
    let mut names: Vec<&str> = Vec::new();
    for k in &profile.kernels {
        let entry = k.name.rsplit("::").next().unwrap_or(&k.name);
        if !names.contains(&entry) {
            names.push(entry);
        }
    }
    names.join("+")
}

/// "[247,768]"
fn dims_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// A tensor of values uniform in [lo, hi), different for each seed (SplitMix64, fast enough to
/// make every repetition's inputs fresh).
fn random(gpu: &Gpu, shape: &[usize], seed: u64, lo: f32, hi: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n as u64).map(|i| lo + (hi - lo) * unit(seed.wrapping_mul(0x1_0000_0001).wrapping_add(i))).collect();
    Tensor::from_slice(gpu, shape, &data)
}

fn random_labels(gpu: &Gpu, batch: usize, classes: usize, seed: u64) -> Result<Labels> {
    let labels: Vec<u32> = (0..batch as u64).map(|i| (unit(seed.wrapping_add(i)) * classes as f32) as u32 % classes as u32).collect();
    Labels::new(gpu, &labels, classes)
}

/// The i-th value of a SplitMix64 stream, in [0, 1).
fn unit(i: u64) -> f32 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

impl BenchReport {
    /// The report as one JSON object (fields documented in README "Benchmarks").
    pub fn to_json(&self) -> String {
        let d = &self.dims;
        let mut out = String::from("{\n");
        out += &format!("  \"adapter\": {},\n", json_string(&self.adapter));
        out += &format!("  \"backend\": {},\n", json_string(&self.backend));
        out += &format!("  \"driver\": {},\n", json_string(&self.driver));
        out += &format!("  \"timing\": {},\n", json_string(self.timing.name()));
        out += &format!(
            "  \"dims\": {{\"batch\": {}, \"tokens\": {}, \"dim\": {}, \"heads\": {}, \"mlp\": {}, \"classes\": {}}},\n",
            d.batch, d.tokens, d.dim, d.heads, d.mlp, d.classes
        );
        out += &format!("  \"reps\": {},\n", self.reps);
        out += "  \"results\": [";
        for (i, r) in self.results.iter().enumerate() {
            out += if i == 0 { "\n" } else { ",\n" };
            out += &format!(
                "    {{\"kernel\": {}, \"variant\": {}, \"shape\": {}, \"median_ms\": {}, \"min_ms\": {}, \"max_ms\": {}, \"gflops\": {}, \"gbps\": {}}}",
                json_string(&r.kernel),
                json_string(&r.variant),
                json_string(&r.shape),
                json_number(Some(r.median_ms)),
                json_number(Some(r.min_ms)),
                json_number(Some(r.max_ms)),
                json_number(r.gflops),
                json_number(r.gbps),
            );
        }
        out += "\n  ],\n";
        out += &format!("  \"train_step\": {}\n}}\n", self.train_step.as_ref().map_or("null".to_string(), train_step_json));
        out
    }

    /// The whole report as `vpt bench` prints it.
    pub fn to_table(&self) -> String {
        let mut out = header(&self.adapter_line(), self.timing, &self.dims, self.reps);
        for r in &self.results {
            out += &table_row(r);
        }
        if let Some(t) = &self.train_step {
            out += &train_step_text(t);
        }
        out
    }

    fn adapter_line(&self) -> String {
        format!("{} ({}, {})", self.adapter, self.backend, self.driver)
    }
}

fn train_step_json(t: &TrainStepResult) -> String {
    format!(
        "{{\"description\": {}, \"images_per_second\": {}, \"forward_ms\": {}, \"backward_ms\": {}, \"optimizer_ms\": {}, \"dispatches\": {}, \"peak_bytes\": {}, \"weight_bytes\": {}}}",
        json_string(&t.description),
        json_number(Some(t.images_per_second)),
        json_number(Some(t.forward_ms)),
        json_number(Some(t.backward_ms)),
        json_number(Some(t.optimizer_ms)),
        t.dispatches,
        t.peak_bytes,
        t.weight_bytes
    )
}

/// The training-step lines under the kernel table.
pub fn train_step_text(t: &TrainStepResult) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    format!(
        "\ntrain step ({}):\n  {:.2} images/s = forward {:.1} ms + backward {:.1} ms + optimizer {:.1} ms (host clock, each waited for)\n  {} kernel launches per step; peak tensor memory {:.1} MiB, of which frozen weights {:.1} MiB\n",
        t.description, t.images_per_second, t.forward_ms, t.backward_ms, t.optimizer_ms, t.dispatches, mib(t.peak_bytes), mib(t.weight_bytes)
    )
}

/// What ran where, and the column titles of [`table_row`].
fn header(adapter: &str, timing: TimingMethod, d: &Dims, reps: usize) -> String {
    let mut out = format!("adapter: {adapter}\n");
    out += &format!("timing:  {}, median and range of {reps} repetitions\n", timing.name());
    out += &format!(
        "sizes:   batch {}, {} tokens, dim {}, {} heads, mlp {}, {} classes\n\n",
        d.batch, d.tokens, d.dim, d.heads, d.mlp, d.classes
    );
    out + &table_header()
}

/// The column titles (and a rule) of [`table_row`].
fn table_header() -> String {
    format!(
        "{:<22} {:<36} {:<32} {:>11} {:>11} {:>11} {:>9} {:>8}\n{}\n",
        "kernel",
        "variant",
        "shape",
        "median ms",
        "min ms",
        "max ms",
        "GFLOP/s",
        "GB/s",
        "-".repeat(22 + 36 + 32 + 3 * 12 + 10 + 9 + 5)
    )
}

/// One result as a table line.
fn table_row(r: &BenchResult) -> String {
    let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    format!(
        "{:<22} {:<36} {:<32} {:>11.3} {:>11.3} {:>11.3} {:>9} {:>8}\n",
        r.kernel,
        r.variant,
        r.shape,
        r.median_ms,
        r.min_ms,
        r.max_ms,
        rate(r.gflops),
        rate(r.gbps)
    )
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\n' => out += "\\n",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number, or `null` for none (and for NaN or infinity, which JSON cannot hold).
fn json_number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Command line: `vpt bench FLAGS` and `cargo bench -- FLAGS` share these flags and this function.
// ---------------------------------------------------------------------------------------------

/// The flags of `vpt bench` (and of `cargo bench -- ...`).
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Sizes: `small` (ViT-B widths, batch 1, 60 tokens: minutes on lavapipe) or `vit-b` (ViT-B/16
    /// with 50 VPT prompts: 247 tokens, batch 32 unless --batch says otherwise).
    #[arg(long, value_enum, default_value_t = PresetArg::Small)]
    pub preset: PresetArg,
    /// Images per step, replacing the preset's.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed repetitions per case (each after one untimed run).
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// GPU API to use; default: WGPU_BACKEND if set, else the best adapter of any.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Only the cases whose "kernel variant" contains one of these words, comma-separated
    /// (e.g. `fc1`, `reg16x8`, `softmax,gelu`).
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// `gpu`: timestamps written by the GPU around each kernel; `wall`: the host clock around each
    /// kernel submitted alone; `auto`: `gpu` where the adapter supports it.
    #[arg(long, value_enum, default_value_t = TimingArg::Auto)]
    pub timing: TimingArg,
    /// Print one JSON object at the end instead of the table (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PresetArg {
    Small,
    VitB,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BackendArg {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TimingArg {
    Auto,
    Gpu,
    Wall,
}

impl BenchArgs {
    /// The device the flags ask for.
    pub fn gpu(&self) -> Result<Gpu> {
        match self.backend {
            None => Gpu::new(),
            Some(b) => Gpu::with_backends(match b {
                BackendArg::Vulkan => wgpu::Backends::VULKAN,
                BackendArg::Metal => wgpu::Backends::METAL,
                BackendArg::Dx12 => wgpu::Backends::DX12,
                BackendArg::Gl => wgpu::Backends::GL,
            }),
        }
    }

    pub fn options(&self) -> BenchOptions {
        let preset = match self.preset {
            PresetArg::Small => Preset::Small,
            PresetArg::VitB => Preset::VitB,
        };
        BenchOptions {
            reps: self.reps,
            filter: self.filter.clone(),
            timing: match self.timing {
                TimingArg::Auto => None,
                TimingArg::Gpu => Some(TimingMethod::GpuTimestamps),
                TimingArg::Wall => Some(TimingMethod::WallClock),
            },
            // ViT-B/16: 12 blocks of 16×16 patches; the presets' tokens are 1 + patches + prompts.
            train_step: Some(TrainStepSpec { depth: 12, prompts: if preset == Preset::VitB { 50 } else { 10 }, patch: 16 }),
            ..BenchOptions::new(preset.dims(self.batch))
        }
    }
}

/// Run the benchmarks the flags ask for: the table on stdout, a row as each case finishes, or
/// with `--json` the JSON object on stdout at the end (and the rows on stderr meanwhile).
pub fn run_cli(args: &BenchArgs) -> Result<()> {
    let gpu = args.gpu()?;
    let options = args.options();
    let timing = timing_for(&gpu, options.timing);
    let head = header(&format!("{} ({:?})", gpu.info().name, gpu.info().backend), timing, &options.dims, options.reps);
    let show = |text: &str| if args.json { eprint!("{text}") } else { print!("{text}") };
    show(&head);
    let report = run(&gpu, &options, |r| show(&table_row(r)))?;
    if let Some(t) = &report.train_step {
        show(&train_step_text(t));
    }
    if report.results.is_empty() && report.train_step.is_none() {
        return Err(Error::shape("bench", format!("--filter {:?} matches no case", args.filter.join(","))));
    }
    if args.json {
        print!("{}", report.to_json());
    }
    Ok(())
}
