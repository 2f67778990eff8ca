// GELU, forward and backward.
//
//   exact (torch.nn.GELU()):            y = x · Φ(x),  Φ(x) = ½·erfc(−x/√2)
//                                        dy/dx = Φ(x) + x·φ(x),  φ(x) = exp(−x²/2)/√(2π)
//   tanh  (torch.nn.GELU('tanh')):      y = ½·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//
// x, y, dy, dx: [n], any shape flattened. One thread per element.
//
// gelu_exact, gelu_exact_grad and the erfc fit behind them are in wgsl/lib/gelu_math.wgsl, which the
// launcher prepends to this file (matmul.wgsl's fused epilogues use the same functions).

struct Params {
    n: u32,   // number of elements
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;      // forward output
@group(0) @binding(3) var<storage, read> dy: array<f32>;            // backward: upstream gradient
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;     // backward: output gradient

const SQRT_2_OVER_PI: f32 = 0.79788456080286536;

// Flat element index for a 1-D problem spread over a 2-D grid (one grid axis holds ≤ 65535 groups).

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    y[i] = gelu_exact(x[i]);
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    dx[i] = dy[i] * gelu_exact_grad(x[i]);
}

// tanh(u) written with exp so it saturates cleanly: for large |u| exp(−2|u|) underflows to 0.
fn tanh_stable(u: f32) -> f32 {
    let e = exp(-2.0 * abs(u));
    return sign(u) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(WG)
fn gelu_tanh_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    let th = tanh_stable(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
    y[i] = 0.5 * v * (1.0 + th);
}

@compute @workgroup_size(WG)
fn gelu_tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    let th = tanh_stable(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
    dx[i] = dy[i] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du);
}
