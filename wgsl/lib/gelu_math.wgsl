// The exact (erf) GELU of torch.nn.GELU() and its derivative, as plain functions.
//
// Not a kernel family of its own: WGSL has no #include, so the launchers prepend this file at
// compile time to each family that needs it (gelu.wgsl, and matmul.wgsl for its fused GELU
// epilogues), and the two can never drift apart.
//
//   gelu(x)  = x · Φ(x),             Φ(x) = ½·erfc(−x/√2)
//   gelu'(x) = Φ(x) + x · φ(x),      φ(x) = exp(−x²/2)/√(2π)

const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

// erfc(z) for any z. WGSL has no erf, so this is the Chebyshev fit of Numerical Recipes (erfcc):
// fractional error below 1.2e-7 over the whole real line, so erf = 1 − erfc is within 1.2e-7
// absolute. We compute Φ from erfc directly rather than 1 + erf, because for x ≪ 0 Φ is tiny and
// 1 + erf would cancel away all its digits.
fn erfc_approx(z: f32) -> f32 {
    let a = abs(z);
    let t = 1.0 / (1.0 + 0.5 * a);
    let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
          + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-a * a + p);
    return select(2.0 - r, r, z >= 0.0);
}

// Standard normal CDF.
fn phi_cdf(v: f32) -> f32 {
    return 0.5 * erfc_approx(-v * INV_SQRT2);
}

fn gelu_exact(v: f32) -> f32 {
    return v * phi_cdf(v);
}

fn gelu_exact_grad(v: f32) -> f32 {
    return phi_cdf(v) + v * (INV_SQRT_2PI * exp(-0.5 * v * v));
}
