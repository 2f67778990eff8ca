//! Every kernel family against PyTorch: `fixtures/kernels/<family>.safetensors` (written by
//! `fixtures/generate.py`, torch pinned in `fixtures/requirements.txt`) hold inputs, outputs and
//! torch.autograd gradients, and are embedded in the binary (2.9 MB), so `vpt check` needs no
//! files. `tests/kernels/pytorch.rs` runs these same checks on every backend.
//!
//! Tolerances, with why (errors as [`Metric`] defines them):
//! - `EXACT` 0: data movement (concat, split, im2col) must copy bits.
//! - `ELEMENTWISE` 1e-6: one or two f32 operations per element.
//! - `SUMS` 1e-5: sums of ≤ 301 values in another order than torch's: a few 1e-7.
//! - `MATMUL` 1e-5: dot products of length ≤ 197 in another order: a few 1e-7.
//! - `ROWWISE` 1e-5: row reductions (max, Σexp, mean, variance) in another order, plus exp, log
//!   and inverseSqrt within a few ulp: a few 1e-7.

use super::{Checker, Metric};
use crate::error::{Error, Result};
use crate::io::TensorFile;
use crate::kernels::matmul::{self, MatmulKernel, MatmulNeed, MatmulOptions};
use crate::kernels::{attention, cross_entropy, elementwise, gelu, heads, layernorm, optim, patch, reduce, softmax, tokens};
use crate::reference::layernorm as layernorm_f64;
use crate::tensor::{Labels, Tensor};

const EXACT: f64 = 0.0;
const ELEMENTWISE: f64 = 1e-6;
const SUMS: f64 = 1e-5;
const MATMUL: f64 = 1e-5;
const ROWWISE: f64 = 1e-5;

/// The families built with subgroup reductions where the device has them.
pub const ROW_FAMILIES: &[&str] = &["softmax", "layernorm", "cross_entropy"];

/// `FAMILIES` and each one's fixture file, embedded at compile time, from one list.
macro_rules! embedded {
    ($($family:literal),*) => {
        /// Every family with a fixture, in the order `vpt check` runs them.
        pub const FAMILIES: &[&str] = &[$($family),*];

        /// The fixture file of `family`, as embedded at compile time.
        fn fixture_bytes(family: &str) -> Option<&'static [u8]> {
            match family {
                $($family => Some(include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/kernels/", $family, ".safetensors"))),)*
                _ => None,
            }
        }
    };
}
embedded!("elementwise", "gelu", "reduce", "tokens", "heads", "patch", "optim", "matmul", "softmax", "layernorm", "cross_entropy", "attention");

/// The parsed fixture of `family`.
pub fn fixture(family: &str) -> Result<TensorFile> {
    let bytes = fixture_bytes(family).ok_or_else(|| Error::invalid("check", format!("no PyTorch fixture for {family:?}; families: {}", FAMILIES.join(", "))))?;
    TensorFile::from_bytes(&format!("fixtures/kernels/{family}.safetensors (embedded)"), bytes)
}

/// Run the checks of each family in `families`; a family whose kernels fail to run is one failed
/// row naming the error, and the others still run.
pub fn check_all(c: &mut Checker, families: &[&str]) {
    for family in families {
        if let Err(e) = check_family(c, family) {
            c.failed(family, "pytorch", &e);
        }
    }
}

/// The checks of one family against its fixture.
pub fn check_family(c: &mut Checker, family: &str) -> Result<()> {
    let f = fixture(family)?;
    let mut fx = Fixture { c, f: &f, family };
    match family {
        "elementwise" => fx.elementwise(),
        "gelu" => fx.gelu(),
        "reduce" => fx.reduce(),
        "tokens" => fx.tokens(),
        "heads" => fx.heads(),
        "patch" => fx.patch(),
        "optim" => fx.optim(),
        "matmul" => fx.matmul(),
        "softmax" => fx.softmax(),
        "layernorm" => fx.layernorm().and_then(|()| fx.layernorm_ill_conditioned()),
        "cross_entropy" => fx.cross_entropy(),
        "attention" => fx.attention(),
        _ => Err(Error::invalid("check", format!("no checks for {family:?}"))),
    }
}

/// One family's fixture and the checker its comparisons go to.
struct Fixture<'c, 'a, 'f> {
    c: &'c mut Checker<'a>,
    f: &'f TensorFile,
    family: &'f str,
}

impl Fixture<'_, '_, '_> {
    /// Upload fixture tensor `case.role` (torch's 0-d tensors, a loss, become [1]).
    fn load(&self, case: &str, role: &str) -> Result<Tensor> {
        let (shape, data) = self.f.f32(&format!("{case}.{role}"))?;
        let shape = if shape.is_empty() { vec![1] } else { shape.to_vec() };
        Tensor::from_slice(self.c.gpu, &shape, data)
    }

    fn meta<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        self.f.meta(key)
    }

    /// Compare `ours` with torch's `case.role`.
    fn check(&mut self, case: &str, role: &str, ours: &Tensor, metric: Metric, tol: f64) -> Result<()> {
        self.check_labelled(self.family, case, role, ours, metric, tol)
    }

    fn check_labelled(&mut self, kernel: &str, case: &str, role: &str, ours: &Tensor, metric: Metric, tol: f64) -> Result<()> {
        let (_, want) = self.f.f32(&format!("{case}.{role}"))?;
        let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
        self.c.compare(kernel, &format!("{case}.{role}"), "pytorch", ours, &want, metric, tol)
    }

    fn elementwise(&mut self) -> Result<()> {
        let (x, bias, dy) = (self.load("bias_add", "x")?, self.load("bias_add", "bias")?, self.load("bias_add", "dy")?);
        self.check("bias_add", "y", &elementwise::bias_add_forward(&x, &bias)?, Metric::Relative, ELEMENTWISE)?;
        let (dx, dbias) = elementwise::bias_add_backward(&dy)?;
        self.check("bias_add", "dx", &dx, Metric::Relative, EXACT)?;
        self.check("bias_add", "dbias", &dbias, Metric::Relative, SUMS)?;
        let (a, b) = (self.load("add", "a")?, self.load("add", "b")?);
        self.check("add", "y", &elementwise::add_forward(&a, &b)?, Metric::Relative, EXACT)?;
        let s: f32 = self.meta("scale.s")?;
        let (xs, dys) = (self.load("scale", "x")?, self.load("scale", "dy")?);
        self.check("scale", "y", &elementwise::scale_forward(&xs, s)?, Metric::Relative, EXACT)?;
        self.check("scale", "dx", &elementwise::scale_backward(&dys, s)?, Metric::Relative, EXACT)?;
        let (xm, factors, dym) = (self.load("mul_last", "x")?, self.load("mul_last", "s")?, self.load("mul_last", "dy")?);
        self.check("mul_last", "y", &elementwise::mul_last_forward(&xm, &factors)?, Metric::Relative, ELEMENTWISE)?;
        let (dx, ds) = elementwise::mul_last_backward(&xm, &factors, &dym, true, true)?;
        self.check("mul_last", "dx", &dx.expect("asked for"), Metric::Relative, ELEMENTWISE)?;
        self.check("mul_last", "ds", &ds.expect("asked for"), Metric::Relative, SUMS)?;
        let positive = self.load("inverse_sqrt", "x")?;
        self.check("inverse_sqrt", "y", &elementwise::inverse_sqrt_forward(&positive)?, Metric::Relative, ELEMENTWISE)
    }

    fn gelu(&mut self) -> Result<()> {
        for case in ["unit", "wide"] {
            let (x, dy) = (self.load(case, "x")?, self.load(case, "dy")?);
            // The target for exact GELU: ≤ 1e-6 absolute.
            self.check(case, "y", &gelu::gelu_forward(&x)?, Metric::Absolute, 1e-6)?;
            self.check(case, "dx", &gelu::gelu_backward(&x, &dy)?, Metric::Absolute, 1e-6)?;
            self.check(case, "y_tanh", &gelu::gelu_tanh_forward(&x)?, Metric::Absolute, 1e-6)?;
            // The tanh form's backward has 1 − tanh²(u), which cancels as |u| grows; torch's f32
            // and ours each lose ~1e-7 there, amplified by x·du/dx ≈ 3 and by |dy| up to ~4.
            self.check(case, "dx_tanh", &gelu::gelu_tanh_backward(&x, &dy)?, Metric::Absolute, 4e-6)?;
        }
        Ok(())
    }

    fn reduce(&mut self) -> Result<()> {
        for case in ["tall", "wide"] {
            let x = self.load(case, "x")?;
            self.check(case, "sum", &reduce::sum_rows_forward(&x)?, Metric::Relative, SUMS)?;
            let rows = x.shape()[0];
            self.check(case, "dx_sum", &reduce::sum_rows_backward(&self.load(case, "dsum")?, rows)?, Metric::Relative, EXACT)?;
            self.check(case, "mean", &reduce::mean_forward(&x)?, Metric::Relative, SUMS)?;
            let one = Tensor::from_slice(self.c.gpu, &[1], &[1.0])?;
            self.check(case, "dx_mean", &reduce::mean_backward(&one, x.shape())?, Metric::Relative, ELEMENTWISE)?;
        }
        Ok(())
    }

    fn tokens(&mut self) -> Result<()> {
        let parts = [self.load("vpt", "cls")?, self.load("vpt", "prompts")?, self.load("vpt", "patches")?];
        let y = tokens::concat_tokens_forward(&parts.iter().collect::<Vec<_>>())?;
        self.check("vpt", "y", &y, Metric::Relative, EXACT)?;
        let shapes: Vec<Vec<usize>> = parts.iter().map(|p| p.shape().to_vec()).collect();
        let grads = tokens::concat_tokens_backward(&self.load("vpt", "dy")?, &shapes)?;
        for (g, role) in grads.iter().zip(["dcls", "dprompts", "dpatches"]) {
            self.check("vpt", role, g, Metric::Relative, SUMS)?;
        }
        let (start, count): (usize, usize) = (self.meta("slice.start")?, self.meta("slice.count")?);
        self.check("slice", "y", &tokens::slice_tokens_forward(&y, start, count)?, Metric::Relative, EXACT)?;
        let (start, count): (usize, usize) = (self.meta("drop.start")?, self.meta("drop.count")?);
        self.check("drop", "y", &tokens::drop_tokens_forward(&y, start, count)?, Metric::Relative, EXACT)?;
        self.check("drop", "dx", &tokens::drop_tokens_backward(&self.load("drop", "dy")?, start, count)?, Metric::Relative, EXACT)
    }

    fn heads(&mut self) -> Result<()> {
        let h: usize = self.meta("split.heads")?;
        let out = heads::split_heads_forward(&self.load("split", "qkv")?, h)?;
        self.check("split", "q", &out.q, Metric::Relative, EXACT)?;
        self.check("split", "k", &out.k, Metric::Relative, EXACT)?;
        self.check("split", "v", &out.v, Metric::Relative, EXACT)?;
        let (dq, dk, dv) = (self.load("split", "dq")?, self.load("split", "dk")?, self.load("split", "dv")?);
        self.check("split", "dqkv", &heads::split_heads_backward(&dq, &dk, &dv)?, Metric::Relative, EXACT)?;
        self.check("merge", "y", &heads::merge_heads_forward(&self.load("merge", "x")?)?, Metric::Relative, EXACT)?;
        self.check("merge", "dx", &heads::merge_heads_backward(&self.load("merge", "dy")?, h)?, Metric::Relative, EXACT)
    }

    /// timm's PatchEmbed (Conv2d stride p, flatten, transpose) vs our im2col + matmul, and
    /// im2col alone against torch's unfold.
    fn patch(&mut self) -> Result<()> {
        let [images, weight, bias, dembed] = ["images", "weight", "bias", "dembed"].map(|r| self.load("embed", r));
        let (images, weight, bias, dembed) = (images?, weight?, bias?, dembed?);
        self.check("embed", "embed", &patch::patch_embed_forward(&images, &weight, Some(&bias))?, Metric::Relative, MATMUL)?;
        let g = patch::patch_embed_backward(&images, &weight, &dembed, MatmulNeed { a: true, b: true, bias: true })?;
        for (role, grad) in [("dimages", &g.dimages), ("dweight", &g.dweight), ("dbias", &g.dbias)] {
            let grad = grad.as_ref().ok_or_else(|| Error::invalid("patch_embed_backward", format!("{role} was asked for but not computed")))?;
            self.check("embed", role, grad, Metric::Relative, MATMUL)?;
        }
        let p: usize = self.meta("embed.patch")?;
        self.check("embed", "patches", &patch::im2col_forward(&images, p)?, Metric::Relative, EXACT)?;
        let dimages = patch::im2col_backward(&self.load("embed", "dpatches")?, images.shape(), p)?;
        self.check("embed", "dimages_unfold", &dimages, Metric::Relative, EXACT)
    }

    fn optim(&mut self) -> Result<()> {
        let gpu = self.c.gpu;
        for case in ["sgd", "sgd_nesterov", "adamw"] {
            let steps: usize = self.meta(&format!("{case}.steps"))?;
            let m = |k: &str| -> Result<f32> { self.meta(&format!("{case}.{k}")) };
            let p = self.load(case, "p0")?;
            let (n, (_, grads)) = (p.numel(), self.f.f32(&format!("{case}.grads"))?);
            let (s1, s2) = (Tensor::zeros(gpu, &[n])?, Tensor::zeros(gpu, &[n])?);
            for step in 0..steps {
                let g = Tensor::from_slice(gpu, &[n], &grads[step * n..(step + 1) * n])?;
                if case == "adamw" {
                    let cfg = optim::AdamW { lr: m("lr")?, beta1: m("beta1")?, beta2: m("beta2")?, eps: m("eps")?, weight_decay: m("weight_decay")? };
                    optim::adamw_step(&p, &g, &s1, &s2, step as u32 + 1, cfg)?;
                } else {
                    let cfg = optim::Sgd { lr: m("lr")?, momentum: m("momentum")?, weight_decay: m("weight_decay")?, nesterov: m("nesterov")? == 1.0 };
                    optim::sgd_step(&p, &g, &s1, cfg)?;
                }
            }
            // Six steps of a few f32 operations each, in the same order as torch's: ~1e-7.
            self.check(case, "p", &p, Metric::Relative, 1e-6)?;
        }
        Ok(())
    }

    /// Every matmul kernel on every fixture case (all four transpose layouts, with and without
    /// bias, a ViT shape), and the backward.
    fn matmul(&mut self) -> Result<()> {
        for case in ["plain", "linear", "qk", "at", "both", "vit"] {
            let opts = MatmulOptions { trans_a: self.meta::<u8>(&format!("{case}.trans_a"))? == 1, trans_b: self.meta::<u8>(&format!("{case}.trans_b"))? == 1 };
            let (a, b, dc) = (self.load(case, "a")?, self.load(case, "b")?, self.load(case, "dc")?);
            let bias = match self.f.tensors.contains_key(&format!("{case}.bias")) {
                true => Some(self.load(case, "bias")?),
                false => None,
            };
            for kernel in MatmulKernel::all_on(self.c.gpu) {
                let c = matmul::matmul_forward_with(kernel, &a, &b, bias.as_ref(), opts)?;
                self.check_labelled(&format!("matmul ({})", kernel.name()), case, "c", &c, Metric::Relative, MATMUL)?;
            }
            let grads = matmul::matmul_backward(&a, &b, &dc, opts, MatmulNeed { a: true, b: true, bias: bias.is_some() })?;
            for (role, grad) in [("da", &grads.da), ("db", &grads.db), ("dbias", &grads.dbias)] {
                if let Some(grad) = grad {
                    self.check_labelled("matmul backward", case, role, grad, Metric::Relative, MATMUL)?;
                }
            }
        }
        Ok(())
    }

    fn softmax(&mut self) -> Result<()> {
        for case in ["small", "rows", "shifted", "attn"] {
            let (x, dy) = (self.load(case, "x")?, self.load(case, "dy")?);
            let y = softmax::softmax_forward(&x)?;
            self.check(case, "y", &y, Metric::Relative, ROWWISE)?;
            self.check(case, "dx", &softmax::softmax_backward(&y, &dy)?, Metric::Relative, ROWWISE)?;
        }
        Ok(())
    }

    fn layernorm(&mut self) -> Result<()> {
        for case in ["vit", "odd"] {
            let eps: f32 = self.meta(&format!("{case}.eps"))?;
            let (x, w, b, dy) = (self.load(case, "x")?, self.load(case, "weight")?, self.load(case, "bias")?, self.load(case, "dy")?);
            let out = layernorm::layernorm_forward(&x, &w, &b, eps)?;
            self.check(case, "y", &out.y, Metric::Relative, ROWWISE)?;
            let g = layernorm::layernorm_backward(&x, &w, &out.mean, &out.rstd, &dy, true)?;
            self.check(case, "dx", &g.dx, Metric::Relative, ROWWISE)?;
            for (role, grad) in [("dweight", &g.dweight), ("dbias", &g.dbias)] {
                let grad = grad.as_ref().ok_or_else(|| Error::invalid("layernorm_backward", format!("{role} was asked for but not computed")))?;
                self.check(case, role, grad, Metric::Relative, ROWWISE)?;
            }
        }
        Ok(())
    }

    /// Two cases where torch's own f32 answer is measurably off, so ours is held to the f64
    /// computation on the same inputs (error = max|diff| / max(1, max|exact|)):
    /// - `tiny_var`, ill-conditioned on purpose: a spread of 1e-4 on an offset of 0.5, eps 1e-6.
    ///   One f32 ulp of the row mean (6e-8) is 6e-4 of x − mean: torch's y is 3e-5 from exact,
    ///   ours 4e-8. dweight = Σ dy·x̂ rebuilds x̂ from the saved f32 mean, as torch does, and both
    ///   land ~2e-4 from exact: 1e-3 for that one tensor.
    /// - `width1` (D = 1): y = bias whatever x is, so dx is exactly 0; ours is, torch's has 6e-5.
    fn layernorm_ill_conditioned(&mut self) -> Result<()> {
        for case in ["tiny_var", "width1"] {
            let eps: f32 = self.meta(&format!("{case}.eps"))?;
            let host = |r: &str| -> Result<Vec<f64>> { Ok(self.f.f32(&format!("{case}.{r}"))?.1.iter().map(|&v| v as f64).collect()) };
            let (x, w, b, dy) = (host("x")?, host("weight")?, host("bias")?, host("dy")?);
            let exact = layernorm_f64::layernorm_forward(&x, &w, &b, eps as f64);
            let exact_grads = layernorm_f64::layernorm_backward(&x, &w, &dy, eps as f64);
            let (xt, wt, bt, dyt) = (self.load(case, "x")?, self.load(case, "weight")?, self.load(case, "bias")?, self.load(case, "dy")?);
            let out = layernorm::layernorm_forward(&xt, &wt, &bt, eps)?;
            let g = layernorm::layernorm_backward(&xt, &wt, &out.mean, &out.rstd, &dyt, true)?;
            let missing = || Error::invalid("layernorm_backward", "dweight and dbias were asked for but not computed");
            let (dweight, dbias) = (g.dweight.ok_or_else(missing)?, g.dbias.ok_or_else(missing)?);
            for (name, ours, want) in [("y", &out.y, &exact.y), ("dx", &g.dx, &exact_grads.dx), ("dweight", &dweight, &exact_grads.dweight), ("dbias", &dbias, &exact_grads.dbias)] {
                let tol = if case == "tiny_var" && name == "dweight" { 1e-3 } else { ROWWISE };
                self.c.compare("layernorm", &format!("{case}.{name}"), "f64", ours, want, Metric::Scaled, tol)?;
            }
        }
        Ok(())
    }

    fn cross_entropy(&mut self) -> Result<()> {
        let gpu = self.c.gpu;
        for case in ["small", "batch", "shifted"] {
            let logits = self.load(case, "logits")?;
            let (_, labels) = self.f.i64(&format!("{case}.labels"))?;
            let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            let labels = Labels::new(gpu, &labels, logits.shape()[1])?;
            let out = cross_entropy::cross_entropy_forward(&logits, &labels)?;
            self.check(case, "loss", &out.loss, Metric::Relative, ROWWISE)?;
            let dloss = Tensor::from_slice(gpu, &[1], &[1.0])?;
            self.check(case, "dlogits", &cross_entropy::cross_entropy_backward(&out.probs, &labels, &dloss)?, Metric::Relative, ROWWISE)?;
        }
        Ok(())
    }

    /// torch's scaled_dot_product_attention, forward and backward, at ViT-B/16 head shapes (197
    /// tokens, 247 with 50 VPT-deep prompts, and 197 query rows against those 247 keys) and
    /// ViT-H's hd 80, against the fused kernels (which never form the [Tq, T] probabilities
    /// torch's math path does).
    fn attention(&mut self) -> Result<()> {
        for case in ["vit_b16", "vit_b16_deep", "vit_b16_deep_rows", "vit_h_odd"] {
            let (q, k, v, dout) = (self.load(case, "q")?, self.load(case, "k")?, self.load(case, "v")?, self.load(case, "do")?);
            let scale = 1.0 / (q.shape()[3] as f32).sqrt();
            let out = attention::attention_forward(&q, &k, &v, scale)?;
            self.check(case, "o", &out.o, Metric::Relative, ROWWISE)?;
            let g = attention::attention_backward(&q, &k, &v, &out, &dout, scale)?;
            self.check(case, "dq", &g.dq, Metric::Relative, ROWWISE)?;
            self.check(case, "dk", &g.dk, Metric::Relative, ROWWISE)?;
            self.check(case, "dv", &g.dv, Metric::Relative, ROWWISE)?;
        }
        Ok(())
    }
}
