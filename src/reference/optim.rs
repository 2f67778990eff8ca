//! Optimizer steps in f64, written as torch.optim documents them.

/// SGD with momentum (dampening 0); buf starts at zeros.
pub fn sgd_step(p: &mut [f64], grad: &[f64], buf: &mut [f64], lr: f64, momentum: f64, wd: f64, nesterov: bool) {
    for i in 0..p.len() {
        let g = grad[i] + wd * p[i];
        buf[i] = momentum * buf[i] + g;
        let step = if nesterov { g + momentum * buf[i] } else { buf[i] };
        p[i] -= lr * step;
    }
}

/// AdamW step number `t` (from 1); m and v start at zeros.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(p: &mut [f64], grad: &[f64], m: &mut [f64], v: &mut [f64], t: u32, lr: f64, beta1: f64, beta2: f64, eps: f64, wd: f64) {
    let bc1 = 1.0 - beta1.powi(t as i32);
    let bc2 = 1.0 - beta2.powi(t as i32);
    for i in 0..p.len() {
        p[i] *= 1.0 - lr * wd;
        m[i] = beta1 * m[i] + (1.0 - beta1) * grad[i];
        v[i] = beta2 * v[i] + (1.0 - beta2) * grad[i] * grad[i];
        p[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
    }
}
