//! Matrix multiply: C = op(A)·op(B) (+ bias), op(X) = X or Xᵀ, batched, and its backward composed
//! from the same kernel with the operands transposed. Kernels in `wgsl/matmul.wgsl`.
//!
//! Two fused variants serve the MLP's GELU: [`matmul_gelu_forward`] applies GELU as each result
//! is stored (keeping the pre-activation for backward), and [`matmul_gelu_grad`] multiplies each
//! result by GELU's derivative at a saved pre-activation.
//!
//! Shapes (M, N, K as usual; `batch...` any number of leading dims, flattened into one count):
//! - A: [batch..., M, K], or [batch..., K, M] with `trans_a`
//! - B: [batch..., K, N], or [batch..., N, K] with `trans_b`
//! - bias: [N], added to every row
//! - C: [batch..., M, N]
//!
//! Either operand may be a plain matrix (rank 2) shared by every batch of the other, like a
//! weight; when both have batch dims they must be equal.
//!
//! One family: the launcher of its eight kernels (naive and tiled in `wgsl/matmul.wgsl`, the
//! register-tiled four in `wgsl/lib/matmul_register.wgsl`, gpu64x64 in `wgsl/lib/matmul_gpu.wgsl`,
//! sg16x8 in `wgsl/lib/matmul_subgroup.wgsl`): the shape checks, the launch with its
//! specialisation constants and its f32 or f16 B, the backward and the two fused GELU variants,
//! which share all of it. Which kernel runs (`MatmulKernel`, the rule that picks one or the
//! tuned choice) is `matmul_choice.rs`.

pub use super::matmul_choice::{DxLayout, MatmulKernel, MatmulOptions, WeightSource};
use super::{reduce, same_device};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Gpu, Params, Shader, TexelBind};
use crate::tensor::{DType, Tensor};

wgsl_shader!("matmul", uses ["matmul_b_f32", "gelu_math", "matmul_register", "matmul_gpu"]);
// B stored as f16 (a frozen weight under `--precision f16`), read widened to f32.
wgsl_shader!(SHADER_F16 = "matmul" as "matmul_f16", needs SHADER_F16, f16 bindings [2, 6], uses ["matmul_b_f16", "gelu_math", "matmul_register", "matmul_gpu"]);
// The same two with the subgroup kernel (`MatmulKernel::Sg16x8`, wgsl/lib/matmul_subgroup.wgsl),
// launched only for the kernels that need SUBGROUP (`MatmulKernel::needs`), so the others never do.
wgsl_shader!(SHADER_SUBGROUP = "matmul" as "matmul_subgroup", needs SUBGROUP, uses ["matmul_b_f32", "gelu_math", "matmul_register", "matmul_gpu", "matmul_subgroup"]);
wgsl_shader!(
    SHADER_F16_SUBGROUP = "matmul" as "matmul_f16_subgroup",
    needs SHADER_F16 | SUBGROUP,
    f16 bindings [2, 6],
    uses ["matmul_b_f16", "gelu_math", "matmul_register", "matmul_gpu", "matmul_subgroup"]
);
// B read from a frozen weight's texels (`Texels`), with and without the subgroup kernel: the
// kernels are the same text (wgsl/lib/matmul_b_texels.wgsl). A storage texture's type names its
// format, so f32 texels (rgba32float) and f16 ones (rgba16float) are builds of their own. The
// f16 ones read their texels as f32, but an f16 weight exists only where the adapter has
// SHADER_F16, so they are built only there.
wgsl_shader!(SHADER_TEXELS = "matmul" as "matmul_texels", uses ["texel_rows", "matmul_b_texels_f32", "matmul_b_texels", "gelu_math", "matmul_register", "matmul_gpu"]);
wgsl_shader!(
    SHADER_TEXELS_SUBGROUP = "matmul" as "matmul_texels_subgroup",
    needs SUBGROUP,
    uses ["texel_rows", "matmul_b_texels_f32", "matmul_b_texels", "gelu_math", "matmul_register", "matmul_gpu", "matmul_subgroup"]
);
wgsl_shader!(
    SHADER_TEXELS_F16 = "matmul" as "matmul_texels_f16",
    needs SHADER_F16,
    uses ["texel_rows", "matmul_b_texels_f16", "matmul_b_texels", "gelu_math", "matmul_register", "matmul_gpu"]
);
wgsl_shader!(
    SHADER_TEXELS_F16_SUBGROUP = "matmul" as "matmul_texels_f16_subgroup",
    needs SHADER_F16 | SUBGROUP,
    uses ["texel_rows", "matmul_b_texels_f16", "matmul_b_texels", "gelu_math", "matmul_register", "matmul_gpu", "matmul_subgroup"]
);

/// Which gradients [`matmul_backward`] should compute. Nothing is dispatched for the others: a
/// frozen weight asks for `a` only.
#[derive(Clone, Copy, Debug)]
pub struct MatmulNeed {
    pub a: bool,
    pub b: bool,
    pub bias: bool,
}

/// The gradients asked for; `None` where [`MatmulNeed`] said no. Each has its operand's shape.
#[derive(Debug)]
pub struct MatmulGrads {
    pub da: Option<Tensor>,
    pub db: Option<Tensor>,
    pub dbias: Option<Tensor>,
}

/// C = op(A)·op(B) (+ bias) with the best kernel for the shape on this device
/// ([`MatmulKernel::best_for`]). See the module docs for shapes.
pub fn matmul_forward(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, opts: MatmulOptions) -> Result<Tensor> {
    matmul_forward_with(best_kernel("matmul_forward", a, b, opts)?, a, b, bias, opts)
}

/// C = op(A)·op(B) (+ bias) with the chosen kernel (for tests and benchmarks).
pub fn matmul_forward_with(kernel: MatmulKernel, a: &Tensor, b: &Tensor, bias: Option<&Tensor>, opts: MatmulOptions) -> Result<Tensor> {
    launch("matmul_forward", kernel, a, b, bias, opts, Epilogue::None)
}

/// The two results of [`matmul_gelu_forward`], both [batch..., M, N].
#[derive(Debug)]
pub struct MatmulGeluOut {
    /// op(A)·op(B) + bias: what GELU's backward needs.
    pub pre: Tensor,
    /// gelu(pre), the exact (erf) GELU of `torch.nn.GELU()`.
    pub y: Tensor,
}

/// y = gelu(op(A)·op(B) + bias) in one kernel, also returning the pre-activation: a linear layer
/// followed by GELU (the MLP's fc1) without a separate pass over its output.
pub fn matmul_gelu_forward(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, opts: MatmulOptions) -> Result<MatmulGeluOut> {
    matmul_gelu_forward_with(best_kernel("matmul_gelu_forward", a, b, opts)?, a, b, bias, opts)
}

/// [`matmul_gelu_forward`] with the chosen kernel (for tests and benchmarks).
pub fn matmul_gelu_forward_with(kernel: MatmulKernel, a: &Tensor, b: &Tensor, bias: Option<&Tensor>, opts: MatmulOptions) -> Result<MatmulGeluOut> {
    const OP: &str = "matmul_gelu_forward";
    let pre = a.empty_like_shape(&check_shapes(OP, a, b, opts)?.output_shape())?;
    let y = launch(OP, kernel, a, b, bias, opts, Epilogue::Gelu(&pre))?;
    Ok(MatmulGeluOut { pre, y })
}

/// C = (op(A)·op(B)) ⊙ gelu'(pre), pre: [batch..., M, N]. Given dY of a GELU's output, already
/// pushed back through the layer after it (A = that layer's output gradient, B its weight), this
/// is the gradient at the GELU's input in one kernel (the MLP backward: fc2's dX becomes fc1's
/// d(pre) without being stored).
pub fn matmul_gelu_grad(a: &Tensor, b: &Tensor, opts: MatmulOptions, pre: &Tensor) -> Result<Tensor> {
    matmul_gelu_grad_with(best_kernel("matmul_gelu_grad", a, b, opts)?, a, b, opts, pre)
}

/// [`matmul_gelu_grad`] with the chosen kernel (for tests and benchmarks).
pub fn matmul_gelu_grad_with(kernel: MatmulKernel, a: &Tensor, b: &Tensor, opts: MatmulOptions, pre: &Tensor) -> Result<Tensor> {
    launch("matmul_gelu_grad", kernel, a, b, None, opts, Epilogue::GeluGrad(pre))
}

/// [`MatmulKernel::best_for`] op(A)·op(B)'s shape, once the operands are checked.
fn best_kernel(op: &'static str, a: &Tensor, b: &Tensor, opts: MatmulOptions) -> Result<MatmulKernel> {
    let s = check_shapes(op, a, b, opts)?;
    Ok(MatmulKernel::best_for_stored(a.gpu(), s.m, s.n, s.k, opts, b.dtype()))
}

/// What the kernel does with each result on its way to memory (the `EPILOGUE` override constant
/// in the WGSL: one pipeline per epilogue).
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    /// C = dot + bias.
    None,
    /// The pre-activation dot + bias goes to this tensor, gelu of it to C.
    Gelu(&'a Tensor),
    /// C = dot · gelu'(this tensor).
    GeluGrad(&'a Tensor),
}

impl<'a> Epilogue<'a> {
    /// The WGSL's EPILOGUE_* code.
    fn code(self) -> u32 {
        match self {
            Epilogue::None => 0,
            Epilogue::Gelu(_) => 1,
            Epilogue::GeluGrad(_) => 2,
        }
    }

    /// The tensor bound as `aux`, if any.
    fn aux(self) -> Option<&'a Tensor> {
        match self {
            Epilogue::None => None,
            Epilogue::Gelu(t) | Epilogue::GeluGrad(t) => Some(t),
        }
    }
}

/// Check the operands, then dispatch `kernel` for C = op(A)·op(B) (+ bias) through `epilogue`.
fn launch(op: &'static str, kernel: MatmulKernel, a: &Tensor, b: &Tensor, bias: Option<&Tensor>, opts: MatmulOptions, epilogue: Epilogue) -> Result<Tensor> {
    let s = check_shapes(op, a, b, opts)?;
    if let Some(bias) = bias {
        check_bias(op, a, b, opts, bias, &s)?;
    }
    if let Some(aux) = epilogue.aux() {
        check_aux(op, a, b, opts, aux, &s)?;
    }
    let gpu = a.gpu();
    let grid = grid(op, kernel, gpu, &s)?;
    let c = a.empty_like_shape(&s.output_shape())?;

    // The kernels always declare the bias and aux bindings, so without them we bind 16-byte
    // stand-ins that `has_bias = 0` and `epilogue = 0` keep them from touching (16 bytes: one also
    // stands in for the vec4 views). aux gets its own: it is bound read-write, and wgpu refuses a
    // buffer bound both read-only and read-write in one dispatch.
    let stand_in = gpu.alloc("matmul: unused binding", 16)?;
    let aux_stand_in;
    let aux_buffer = match epilogue.aux() {
        Some(t) => t.buffer(),
        None => {
            aux_stand_in = gpu.alloc("matmul: unused aux binding", 16)?;
            &aux_stand_in
        }
    };
    let bias_buffer = bias.map_or(&stand_in, |t| t.buffer());
    // B stored as f16 takes the build that declares it f16; the subgroup kernel, a build with it.
    if !kernel.available(gpu) {
        return Err(Error::invalid(
            op,
            format!("the {} kernel needs {:?}, which {} lacks; pick another kernel (`vpt info` lists the adapter's features)", kernel.name(), kernel.needs(), gpu.describe()),
        ));
    }
    // B from the weight's texels where it has them (never while a trace records: a trace holds
    // buffers only), else from its buffer.
    let texels = b.texels().filter(|_| !s.b_batched && !gpu.tracing());
    let shader = b_shader(texels.is_some(), b.dtype(), kernel.needs().contains(wgpu::Features::SUBGROUP));
    let params = Params::new()
        .dim("M", s.m)
        .dim("N", s.n)
        .dim("K", s.k)
        .dim("batch", s.batch)
        .flag("trans_a", opts.trans_a)
        .flag("trans_b", opts.trans_b)
        .dim("a_batch_stride", if s.a_batched { s.m * s.k } else { 0 })
        .dim("b_batch_stride", if s.b_batched { s.k * s.n } else { 0 })
        .flag("has_bias", bias.is_some());
    let mut buffers = vec![Bind::read(1, a.buffer()), Bind::read(3, bias_buffer), Bind::read_write(4, c.buffer()), Bind::read_write(7, aux_buffer)];
    let a_texels; // A's texels for this launch, where a texel build reads them (below)
    let mut texel_binds: Vec<TexelBind> = texels.map(|t| TexelBind { binding: 2, texels: t }).into_iter().collect();
    if texels.is_none() {
        buffers.push(Bind::read(2, b.buffer()));
    }
    let epilogue_code = ("EPILOGUE", epilogue.code() as f64);
    if !kernel.specialized() {
        gpu.dispatch_reading_texels(shader, kernel.entry(), &[epilogue_code], &params, &buffers, &texel_binds, grid)?;
        return Ok(c);
    }
    // Quads of four consecutive stored values are read with one vec4 load when every stored row
    // is a multiple of 4 long, so that no quad straddles two rows and the vec4s are aligned.
    let a_vec4 = kernel.vec4_loads() && (if opts.trans_a { s.m } else { s.k }) % 4 == 0;
    let b_vec4 = kernel.vec4_loads() && (if opts.trans_b { s.k } else { s.n }) % 4 == 0;
    // A's quads from texels made for this launch, where B comes from texels (an adapter where
    // they pay) and A's fit one texture: wgsl/lib/matmul_b_texels.wgsl says why and what it gave.
    let a_from_texels = texels.is_some() && a_vec4 && a.dtype() == DType::F32 && gpu.texels_fit(a.numel());
    buffers.push(Bind::read(5, if a_vec4 && !a_from_texels { a.buffer() } else { &stand_in }));
    // B's vec4 view, where B is read from its buffer. The f16 build declares it f16 too, so its
    // stand-in must hold f16: made only where bound.
    let b_stand_in;
    if texels.is_none() {
        let b_view = match (b_vec4, b.dtype()) {
            (true, _) => b.buffer(),
            (false, DType::F32) => &stand_in,
            (false, DType::F16) => {
                b_stand_in = gpu.alloc_init_f16("matmul: unused f16 binding", &[half::f16::ZERO; 8])?;
                &b_stand_in
            }
        };
        buffers.push(Bind::read(6, b_view));
    }
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let mut constants = vec![("TRANS_A", flag(opts.trans_a)), ("TRANS_B", flag(opts.trans_b)), ("A_VEC4", flag(a_vec4)), ("B_VEC4", flag(b_vec4)), epilogue_code];
    if texels.is_some() {
        // The texel builds declare A's texels: the device's stand-in where A is read from its buffer.
        let a_texels_bound = if a_from_texels {
            a_texels = gpu.activation_texels("matmul: A's texels", a.buffer(), a.numel())?;
            &a_texels
        } else {
            gpu.stand_in_texels()?
        };
        texel_binds.push(TexelBind { binding: 8, texels: a_texels_bound });
        constants.push(("A_TEXELS", flag(a_from_texels)));
    }
    gpu.dispatch_reading_texels(shader, kernel.entry(), &constants, &params, &buffers, &texel_binds, grid)?;
    Ok(c)
}

/// The build of the matmul family that reads B as it is held: from texels or from a buffer, of
/// f32 or f16; with the subgroup kernel or without.
fn b_shader(from_texels: bool, b: DType, subgroup: bool) -> &'static Shader {
    match (from_texels, b, subgroup) {
        (true, DType::F32, false) => &SHADER_TEXELS,
        (true, DType::F32, true) => &SHADER_TEXELS_SUBGROUP,
        (true, DType::F16, false) => &SHADER_TEXELS_F16,
        (true, DType::F16, true) => &SHADER_TEXELS_F16_SUBGROUP,
        (false, DType::F32, false) => &SHADER,
        (false, DType::F16, false) => &SHADER_F16,
        (false, DType::F32, true) => &SHADER_SUBGROUP,
        (false, DType::F16, true) => &SHADER_F16_SUBGROUP,
    }
}

/// Gradients of C = op(A)·op(B) + bias given dC = ∂L/∂C ([batch..., M, N]), only those `need`
/// asks for. Per batch:
/// - dA = dC·op(B)ᵀ, or op(B)·dCᵀ when A entered transposed (dA then comes out [K, M] like A);
/// - dB = op(A)ᵀ·dC, or dCᵀ·op(A) when B entered transposed;
/// - dbias = the sum of dC over all rows.
///
/// An operand shared across the batch gets the sum of its per-batch gradients.
pub fn matmul_backward(a: &Tensor, b: &Tensor, dc: &Tensor, opts: MatmulOptions, need: MatmulNeed) -> Result<MatmulGrads> {
    const OP: &str = "matmul_backward";
    let s = check_shapes(OP, a, b, opts)?;
    same_device(OP, a, dc)?;
    if dc.shape() != s.output_shape() {
        return Err(Error::shape(OP, format!("dc has shape {:?} but C = op(A)·op(B) for A {:?}, B {:?} has shape {:?}", dc.shape(), a.shape(), b.shape(), s.output_shape())));
    }
    Ok(MatmulGrads {
        da: if need.a { Some(grad_a(a, b, dc, opts, &s)?) } else { None },
        db: if need.b { Some(grad_b(a, b, dc, opts, &s)?) } else { None },
        dbias: if need.bias { Some(grad_bias(dc, &s)?) } else { None },
    })
}

/// dA, shaped like A.
fn grad_a(a: &Tensor, b: &Tensor, dc: &Tensor, opts: MatmulOptions, s: &MatmulShape) -> Result<Tensor> {
    let per_batch = if opts.trans_a {
        // dA [K, M] = op(B) [K, N] · dCᵀ [N, M]
        matmul_forward(b, dc, None, MatmulOptions { trans_a: opts.trans_b, trans_b: true })?
    } else {
        // dA [M, K] = dC [M, N] · op(B)ᵀ [N, K]
        matmul_forward(dc, b, None, MatmulOptions { trans_a: false, trans_b: !opts.trans_b })?
    };
    // per_batch: [batch..., rows, cols] of A's own layout.
    if s.is_shared(s.a_batched) {
        sum_over_batch(&per_batch, s.batch, a.shape())
    } else {
        Ok(per_batch)
    }
}

/// dB, shaped like B.
fn grad_b(a: &Tensor, b: &Tensor, dc: &Tensor, opts: MatmulOptions, s: &MatmulShape) -> Result<Tensor> {
    let shared = s.is_shared(s.b_batched);
    if shared && !opts.trans_a {
        // Σ over batches of op(A)ᵀ·dC is a single product once the batches are stacked as rows:
        // A [batch·M, K] and dC [batch·M, N] contract over all batch·M rows at once, with no
        // per-batch intermediate and no separate sum. (With trans_a, A is [batch, K, M], whose
        // batches do not stack along M, so that case takes the general path below.)
        let a_rows = a.reshape(&[s.batch * s.m, s.k])?;
        let dc_rows = dc.reshape(&[s.batch * s.m, s.n])?;
        return db_product(&a_rows, &dc_rows, opts);
    }
    let per_batch = db_product(a, dc, opts)?;
    if shared {
        sum_over_batch(&per_batch, s.batch, b.shape())
    } else {
        Ok(per_batch)
    }
}

/// The per-batch dB products, in B's own layout.
fn db_product(a: &Tensor, dc: &Tensor, opts: MatmulOptions) -> Result<Tensor> {
    if opts.trans_b {
        // dB [N, K] = dCᵀ [N, M] · op(A) [M, K]
        matmul_forward(dc, a, None, MatmulOptions { trans_a: true, trans_b: opts.trans_a })
    } else {
        // dB [K, N] = op(A)ᵀ [K, M] · dC [M, N]
        matmul_forward(a, dc, None, MatmulOptions { trans_a: !opts.trans_a, trans_b: false })
    }
}

/// dbias [N]: the bias was added to every row of C, so its gradient sums dC over all of them.
fn grad_bias(dc: &Tensor, s: &MatmulShape) -> Result<Tensor> {
    reduce::sum_rows_forward(&dc.reshape(&[dc.rows(), s.n])?)
}

/// The gradient of a bias added to every row: dC [..., N] summed over all rows → [N].
pub fn bias_backward(dc: &Tensor) -> Result<Tensor> {
    let n = *dc.shape().last().ok_or_else(|| Error::shape("bias_backward", "dc must have at least one dim, got a scalar shape []"))?;
    reduce::sum_rows_forward(&dc.reshape(&[dc.numel() / n.max(1), n])?)
}

/// Sum per-batch gradients [batch..., rows, cols] into one matrix of `shape` (the shared operand's).
fn sum_over_batch(per_batch: &Tensor, batch: usize, shape: &[usize]) -> Result<Tensor> {
    if batch == 1 {
        // One batch: nothing to add. `per_batch` is our own fresh tensor, so sharing it is safe.
        return per_batch.reshape(shape);
    }
    let summed = reduce::sum_rows_forward(&per_batch.reshape(&[batch, per_batch.numel() / batch])?)?;
    summed.reshape(shape)
}

/// A checked problem: `batch` products op(A) [M, K] · op(B) [K, N].
struct MatmulShape {
    /// C's leading dims: those of whichever operand has them (both, when both do).
    batch_dims: Vec<usize>,
    /// Product of `batch_dims` (1 when there are none).
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a_batched: bool,
    b_batched: bool,
}

impl MatmulShape {
    /// C: [batch..., M, N].
    fn output_shape(&self) -> Vec<usize> {
        let mut shape = self.batch_dims.clone();
        shape.extend([self.m, self.n]);
        shape
    }

    /// Is an operand with (`batched`) or without batch dims one matrix shared by a batched product?
    fn is_shared(&self, batched: bool) -> bool {
        !batched && !self.batch_dims.is_empty()
    }
}

/// "A [2, 3, 4] and B [4, 5] (transposed)": the operands, for error messages.
fn describe(a: &Tensor, b: &Tensor, opts: MatmulOptions) -> String {
    let t = |yes: bool| if yes { " (transposed)" } else { "" };
    format!("A {:?}{} and B {:?}{}", a.shape(), t(opts.trans_a), b.shape(), t(opts.trans_b))
}

/// The trailing matrix of `t` as op(t) sees it: (rows, cols).
fn op_matrix(t: &Tensor, trans: bool) -> (usize, usize) {
    let s = t.shape();
    let (rows, cols) = (s[s.len() - 2], s[s.len() - 1]);
    if trans {
        (cols, rows)
    } else {
        (rows, cols)
    }
}

/// Check A and B can be multiplied and work out M, N, K and the batch.
fn check_shapes(op: &'static str, a: &Tensor, b: &Tensor, opts: MatmulOptions) -> Result<MatmulShape> {
    same_device(op, a, b)?;
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Error::shape(op, format!("{}: both need rank ≥ 2 (a matrix, optionally with batch dims in front)", describe(a, b, opts))));
    }
    let (m, k) = op_matrix(a, opts.trans_a);
    let (k_b, n) = op_matrix(b, opts.trans_b);
    if k != k_b {
        return Err(Error::shape(op, format!("{}: op(A) is {m}×{k} but op(B) is {k_b}×{n}; the inner dimensions {k} and {k_b} must match", describe(a, b, opts))));
    }
    let a_batch = &a.shape()[..a.rank() - 2];
    let b_batch = &b.shape()[..b.rank() - 2];
    if !a_batch.is_empty() && !b_batch.is_empty() && a_batch != b_batch {
        return Err(Error::shape(
            op,
            format!("{}: batch dims {a_batch:?} and {b_batch:?} differ; they must be equal, or one operand must be a plain matrix shared across the batch", describe(a, b, opts)),
        ));
    }
    let batch_dims = if a_batch.is_empty() { b_batch.to_vec() } else { a_batch.to_vec() };
    Ok(MatmulShape { batch: batch_dims.iter().product(), batch_dims, m, k, n, a_batched: !a_batch.is_empty(), b_batched: !b_batch.is_empty() })
}

fn check_bias(op: &'static str, a: &Tensor, b: &Tensor, opts: MatmulOptions, bias: &Tensor, s: &MatmulShape) -> Result<()> {
    same_device(op, a, bias)?;
    if bias.shape() != [s.n] {
        return Err(Error::shape(op, format!("bias has shape {:?} but C = op(A)·op(B) for {} is {:?}, so bias must be [{}]", bias.shape(), describe(a, b, opts), s.output_shape(), s.n)));
    }
    Ok(())
}

/// The epilogue's tensor must have C's shape: it is read or written at C's indices.
fn check_aux(op: &'static str, a: &Tensor, b: &Tensor, opts: MatmulOptions, aux: &Tensor, s: &MatmulShape) -> Result<()> {
    same_device(op, a, aux)?;
    if aux.shape() != s.output_shape() {
        return Err(Error::shape(op, format!("the pre-activation has shape {:?} but op(A)·op(B) for {} is {:?}; they must match", aux.shape(), describe(a, b, opts), s.output_shape())));
    }
    Ok(())
}

/// Workgroups along (x: column tiles, y: row tiles, z: batch), each within the adapter's limit.
fn grid(op: &'static str, kernel: MatmulKernel, gpu: &Gpu, s: &MatmulShape) -> Result<[u32; 3]> {
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    let (tile_rows, tile_cols) = kernel.tile();
    let counts = [
        (s.n.div_ceil(tile_cols), format!("N = {} in tiles of {tile_cols} columns", s.n)),
        (s.m.div_ceil(tile_rows), format!("M = {} in tiles of {tile_rows} rows", s.m)),
        (s.batch, format!("a batch of {} matrices, one workgroup layer each", s.batch)),
    ];
    for (groups, what) in &counts {
        if *groups > max {
            return Err(Error::shape(op, format!("{what} needs {groups} workgroups along one grid axis, but this adapter allows at most {max}; split the work into smaller calls")));
        }
    }
    Ok(counts.map(|(groups, _)| groups as u32))
}
