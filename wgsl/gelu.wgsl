// GELU, forward and backward.
//
//   exact (torch.nn.GELU()):            y = x · Φ(x),  Φ(x) = ½·erfc(−x/√2)
//                                        dy/dx = Φ(x) + x·φ(x),  φ(x) = exp(−x²/2)/√(2π)
//   tanh  (torch.nn.GELU('tanh')):      y = ½·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//
// x, y, dy, dx: [n], any shape flattened. One thread per element.

struct Params {
    n: u32,   // number of elements
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;      // forward output
@group(0) @binding(3) var<storage, read> dy: array<f32>;            // backward: upstream gradient
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;     // backward: output gradient

const WG: u32 = 256u;
const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
const SQRT_2_OVER_PI: f32 = 0.79788456080286536;

// Flat element index for a 1-D problem spread over a 2-D grid (one grid axis holds ≤ 65535 groups).
fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

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

@compute @workgroup_size(256)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    y[i] = v * phi_cdf(v);
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
    dx[i] = dy[i] * (phi_cdf(v) + v * pdf);
}

// tanh(u) written with exp so it saturates cleanly: for large |u| exp(−2|u|) underflows to 0.
fn tanh_stable(u: f32) -> f32 {
    let e = exp(-2.0 * abs(u));
    return sign(u) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(256)
fn gelu_tanh_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    let th = tanh_stable(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
    y[i] = 0.5 * v * (1.0 + th);
}

@compute @workgroup_size(256)
fn gelu_tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    let th = tanh_stable(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
    dx[i] = dy[i] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du);
}
