// Element-wise ops of a transformer block and their backwards.
//
//   add:         y = a + b                      (residual connection)      backward: da = db = dy (no kernel)
//   mul:         y = a ⊙ b                      (dropout mask)             backward: da = dy ⊙ b, db = dy ⊙ a (this same kernel)
//   bias_add:    y[r, j] = x[r, j] + bias[j]    x, y: [R, N], bias: [N]    backward: dx = dy, dbias = Σ_r dy (reduce.wgsl)
//   scale:       y = s · x                                                 backward: dx = s · dy (this same kernel)
//   mul_last:    y[r, j] = x[r, j] · s[j]      x, y: [R, N], s: [N]        backward: dx = dy ⊙ s (this same kernel),
//                (IA³'s learned rescaling)                                           ds = Σ_r dy ⊙ x (mul, then reduce.wgsl)
//   inverse_sqrt: y = 1 / √x                   (DoRA's row norms, which train as constants: no backward)
//   accumulate:  acc += x, in place              (sums gradients that reach one tensor by several paths)

struct Params {
    n: u32,       // elements of the output
    cols: u32,    // N, the length of bias_add's bias and mul_last's s
    s: f32,       // the factor (scale)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(WG)
fn add_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    y[i] = a[i] + b[i];
}

@compute @workgroup_size(WG)
fn mul_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    y[i] = a[i] * b[i];
}

// a: x [R, N], b: bias [N]. The bias index is the column, i mod N.
@compute @workgroup_size(WG)
fn bias_add_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    y[i] = a[i] + b[i % params.cols];
}

// a: x [R, N], b: s [N]. The factor's index is the column, i mod N, as bias_add's.
@compute @workgroup_size(WG)
fn mul_last_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    y[i] = a[i] * b[i % params.cols];
}

@compute @workgroup_size(WG)
fn inverse_sqrt_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    // 1/sqrt rather than inverseSqrt: WGSL lets inverseSqrt be approximate, sqrt and / are
    // within a few ULP on every backend.
    y[i] = 1.0 / sqrt(a[i]);
}

@compute @workgroup_size(WG)
fn scale_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    y[i] = params.s * a[i];
}

@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    acc[i] = acc[i] + a[i];
}
