//! Optimizer updates on the GPU, in place, with torch.optim's exact arithmetic.
//! Kernels in `wgsl/optim.wgsl`.

use super::{grid_1d, same_device, same_shape};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::tensor::Tensor;

wgsl_shader!("optim", uses["flat"]);

/// torch.optim.SGD settings (dampening is always 0, as in VPT's recipe).
#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

/// torch.optim.AdamW settings.
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamW {
    /// torch's defaults.
    fn default() -> Self {
        AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2 }
    }
}

/// One SGD step: updates `param` and `momentum_buf` (zeros before the first step) in place.
pub fn sgd_step(param: &Tensor, grad: &Tensor, momentum_buf: &Tensor, cfg: Sgd) -> Result<()> {
    check_state("sgd_step", param, grad, &[("momentum_buf", momentum_buf)])?;
    let params = Params::new()
        .dim("n", param.numel())
        .f32("lr", cfg.lr)
        .f32("weight_decay", cfg.weight_decay)
        .f32("momentum", cfg.momentum)
        .flag("nesterov", cfg.nesterov)
        // AdamW's fields of the shared struct, unused by SGD.
        .f32("beta1", 0.0)
        .f32("beta2", 0.0)
        .f32("eps", 0.0)
        .f32("bias_correction1", 0.0)
        .f32("bias_correction2", 0.0);
    let gpu = param.gpu();
    gpu.dispatch(&SHADER, "sgd_step", &params, &[Bind::read_write(1, param.buffer()), Bind::read(2, grad.buffer()), Bind::read_write(3, momentum_buf.buffer())], grid_1d(gpu, param.numel())?)
}

/// One AdamW step number `step` (1 for the first): updates `param`, `m` and `v` (zeros before the
/// first step) in place. The bias corrections are computed here in f64.
pub fn adamw_step(param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, step: u32, cfg: AdamW) -> Result<()> {
    check_state("adamw_step", param, grad, &[("m", m), ("v", v)])?;
    if step == 0 {
        return Err(Error::invalid("adamw_step", "step counts from 1"));
    }
    let bias_correction1 = 1.0 - (cfg.beta1 as f64).powi(step as i32);
    let bias_correction2 = 1.0 - (cfg.beta2 as f64).powi(step as i32);
    let params = Params::new()
        .dim("n", param.numel())
        .f32("lr", cfg.lr)
        .f32("weight_decay", cfg.weight_decay)
        .f32("momentum", 0.0)
        .u32("nesterov", 0)
        .f32("beta1", cfg.beta1)
        .f32("beta2", cfg.beta2)
        .f32("eps", cfg.eps)
        .f32("bias_correction1", bias_correction1 as f32)
        .f32("bias_correction2", bias_correction2 as f32);
    let gpu = param.gpu();
    gpu.dispatch(
        &SHADER,
        "adamw_step",
        &params,
        &[Bind::read_write(1, param.buffer()), Bind::read(2, grad.buffer()), Bind::read_write(3, m.buffer()), Bind::read_write(4, v.buffer())],
        grid_1d(gpu, param.numel())?,
    )
}

/// Gradient and state must match the parameter's shape, and nothing may alias: the kernel writes
/// param and state while reading grad.
fn check_state(op: &'static str, param: &Tensor, grad: &Tensor, state: &[(&str, &Tensor)]) -> Result<()> {
    same_device(op, param, grad)?;
    same_shape(op, param, grad, "param", "grad")?;
    let mut all = vec![("param", param), ("grad", grad)];
    for &(name, t) in state {
        same_device(op, param, t)?;
        same_shape(op, param, t, "param", name)?;
        all.push((name, t));
    }
    for (i, (a_name, a)) in all.iter().enumerate() {
        for (b_name, b) in &all[i + 1..] {
            if a.same_storage(b) {
                return Err(Error::shape(op, format!("{a_name} and {b_name} share storage; each needs its own buffer")));
            }
        }
    }
    Ok(())
}
