//! GELU in f64. `libm`-free erf: we use the series/continued fraction below, accurate to ~1e-15,
//! so the reference is far more precise than the f32 kernel it checks.

/// erf(x) in double precision: Taylor series near 0, continued fraction for erfc in the tails.
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // erf(x) = 2/√π · Σ (-1)^n x^(2n+1) / (n! (2n+1)); converges fast for |x| < 2.5.
        let mut sum: f64 = 0.0;
        let mut term: f64 = x; // (-1)^n x^(2n+1) / n!
        for n in 0..200 {
            let n = n as f64;
            sum += term / (2.0 * n + 1.0);
            term *= -x * x / (n + 1.0);
            if term.abs() < 1e-18 {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        x.signum() * (1.0 - erfc_tail(x.abs()))
    }
}

/// erfc(x) for x ≥ 2.5 by Lentz's continued fraction.
fn erfc_tail(x: f64) -> f64 {
    // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + ...)))))
    let mut f = x;
    for k in (1..60).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

fn phi_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn phi_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

pub fn gelu_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v * phi_cdf(v)).collect()
}

pub fn gelu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter().zip(dy).map(|(&v, &g)| g * (phi_cdf(v) + v * phi_pdf(v))).collect()
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

pub fn gelu_tanh_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| 0.5 * v * (1.0 + (SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)).tanh())).collect()
}

pub fn gelu_tanh_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| {
            let th = (SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)).tanh();
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
            g * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du)
        })
        .collect()
}
