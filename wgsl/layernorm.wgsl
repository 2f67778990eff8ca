// LayerNorm over the last axis (torch.nn.LayerNorm: biased variance, eps inside the square root).
//
//   forward:   mean_r = Σ_j x[r, j] / D
//              var_r  = Σ_j (x[r, j] − mean_r)² / D
//              rstd_r = 1 / sqrt(var_r + eps)
//              x̂[r, j] = (x[r, j] − mean_r) · rstd_r
//              y[r, j] = x̂[r, j] · weight[j] + bias[j]
//   backward:  g = dy · weight
//              dx[r, j]   = rstd_r · (g[r, j] − mean_j g[r, j] − x̂[r, j] · mean_j(g·x̂)[r, j])
//              dweight[j] = Σ_r dy[r, j] · x̂[r, j]
//              dbias[j]   = Σ_r dy[r, j]
//
// x, y, dy, dx: [rows, D]; weight, bias, dweight, dbias: [D]; mean, rstd: [rows].
// The forward and dx kernels run one workgroup of ROW_WG threads per row; the dweight/dbias
// kernel runs one thread per Unit of columns, walking down the rows in a fixed order (coalesced
// and deterministic).
//
// Every array of D-wide rows is read and written in Units, which the file prepended to this one
// defines: a quad of 4 f32s where D is a multiple of 4 (wgsl/lib/norm_quads.wgsl), else one f32
// (wgsl/lib/norm_scalars.wgsl); `units()` is D in Units, and unit_sum adds a Unit's values (in a
// fixed order, so the same adapter always gives the same bits). The launcher picks the build
// (`kernels::layernorm`). The per-row values (mean, rstd) stay f32.
//
// Fused with the residual add before it (a pre-norm ViT block's `x = x + attn(…); norm2(x)`):
//   add_layernorm_forward:      s = x + r, then the forward above on s (s is written too: the
//                               next residual reads it). One pass over x and r instead of an add
//                               kernel (read 2, write 1) and a LayerNorm that reads s back.
//   add_layernorm_backward_dx:  dx = dsum + (the dx above), where dsum is the gradient that
//                               reaches s from its other use (the next residual). It is the
//                               gradient of both x and r, and the add of the two gradients of s
//                               happens here instead of in a kernel of its own.
// dweight/dbias of the fused op are the plain kernel's, run on s.

struct Params {
    rows: u32,   // rows: the leading axes flattened (B·T for a ViT)
    d: u32,      // D: the normalised width, in f32s
    eps: f32,    // added to the variance (timm's ViT: 1e-6)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<Unit>;              // [rows, D]
@group(0) @binding(2) var<storage, read> weight: array<Unit>;         // [D]
@group(0) @binding(3) var<storage, read> bias: array<Unit>;           // [D]
@group(0) @binding(4) var<storage, read_write> y: array<Unit>;        // forward: [rows, D]
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;  // forward: [rows]
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;  // forward: [rows]
@group(0) @binding(7) var<storage, read> mean: array<f32>;            // backward: the forward's mean
@group(0) @binding(8) var<storage, read> rstd: array<f32>;            // backward: the forward's rstd
@group(0) @binding(9) var<storage, read> dy: array<Unit>;             // backward: [rows, D]
@group(0) @binding(10) var<storage, read_write> dx: array<Unit>;      // backward: [rows, D]
@group(0) @binding(11) var<storage, read_write> dweight: array<Unit>; // backward: [D]
@group(0) @binding(12) var<storage, read_write> dbias: array<Unit>;   // backward: [D]
// The fused add. Each entry point's automatic layout has only the bindings it uses, and none
// uses more than 8 storage buffers (wgpu's default per-stage limit): the fused forward uses
// 1-6, 13 and 14, the fused dx 1, 2, 7-10 and 15.
@group(0) @binding(13) var<storage, read> r: array<Unit>;              // fused forward: [rows, D]
@group(0) @binding(14) var<storage, read_write> sum_out: array<Unit>;  // fused forward: s = x + r, [rows, D]
@group(0) @binding(15) var<storage, read> dsum: array<Unit>;           // fused dx: [rows, D]

// Threads per row in the per-row kernels (forward, dx), set by the launcher
// (`kernels::row_workgroup_threads`): 8 on a CPU adapter, 64 elsewhere. Lavapipe runs 8
// invocations in the lanes of one SIMD register and runs a workgroup with barriers as coroutines,
// one per 8 invocations, switched at every barrier; a row's workgroup of 8 is one register, and
// its reductions switch nothing. Measured on lavapipe (Vulkan), ViT-B/16 batch 8 rows (1976 ×
// 768), `vpt bench --preset vit-b --batch 8 --filter add_layernorm --reps 5`, subgroup build,
// medians: with a quad per thread, 64 → 32 → 16 → 8 threads: forward 11.0 → 8.5 → 7.5 → 5.2 ms,
// dx 8.6 → 7.7 → 6.2 → 4.8 ms. 64 on a GPU is the value lavapipe chose before (where it beat
// 256); no GPU has measured it. ROW_WG must be a power of 2 (the tree reduction halves it); it
// also sizes the reductions' workgroup arrays.
override ROW_WG: u32 = 64u;
// row_index, workgroup_sum and workgroup_sum2 are in wgsl/lib/row_reduce.wgsl (or its subgroup
// twin, row_reduce_subgroup.wgsl), and flat_index for the per-column kernel (dweight, dbias) in
// wgsl/lib/flat.wgsl, prepended to this file.

@compute @workgroup_size(ROW_WG)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    // Uniform across the workgroup, so every thread that stays reaches the barriers below.
    if (row >= params.rows) { return; }
    let start = row * units();
    let d = f32(params.d);

    // Everything is computed relative to the row's first element, x0. For a row like 30 + noise,
    // Σx in f32 rounds at the scale of 30·D and loses the noise's low digits; x − x0 is exact
    // (Sterbenz: the operands are within 2× of each other) and Σ(x − x0) rounds only at the
    // noise's scale. The shift cancels exactly out of x − mean.
    let x0 = unit_first(x[start]);

    // Pass 1: mean, as x0 + mean(x − x0).
    var local_sum = 0.0;
    for (var j = lid; j < units(); j += ROW_WG) {
        local_sum += unit_sum(x[start + j] - x0);
    }
    let shifted_mean = workgroup_sum(lid, local_sum) / d;

    // Pass 2: variance as the mean of squared deviations. The one-pass E[x²] − E[x]² would
    // subtract two nearly equal numbers when |mean| ≫ std and keep only rounding noise.
    var local_sq = 0.0;
    for (var j = lid; j < units(); j += ROW_WG) {
        let centered = (x[start + j] - x0) - shifted_mean;
        local_sq += unit_sum(centered * centered);
    }
    let variance = workgroup_sum(lid, local_sq) / d;
    let row_rstd = inverseSqrt(variance + params.eps);

    // Pass 3: normalise, scale and shift.
    for (var j = lid; j < units(); j += ROW_WG) {
        let xhat = ((x[start + j] - x0) - shifted_mean) * row_rstd;
        y[start + j] = xhat * weight[j] + bias[j];
    }
    if (lid == 0u) {
        mean_out[row] = x0 + shifted_mean;
        rstd_out[row] = row_rstd;
    }
}

// layernorm_forward on s = x + r, writing s as well. Pass 1 makes s (each element once) and
// reads only x and r; passes 2 and 3 read s back, each thread the Units it wrote itself
// (the same j = lid + k·ROW_WG in every pass), so no barrier is needed for them. The shift s0
// is recomputed by every thread rather than read from sum_out, which thread 0 writes.
@compute @workgroup_size(ROW_WG)
fn add_layernorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) { return; }
    let start = row * units();
    let d = f32(params.d);
    let s0 = unit_first(x[start]) + unit_first(r[start]);

    // Pass 1: s, and its mean as s0 + mean(s − s0) (see layernorm_forward for the shift).
    var local_sum = 0.0;
    for (var j = lid; j < units(); j += ROW_WG) {
        let s = x[start + j] + r[start + j];
        sum_out[start + j] = s;
        local_sum += unit_sum(s - s0);
    }
    let shifted_mean = workgroup_sum(lid, local_sum) / d;

    // Pass 2: variance as the mean of squared deviations.
    var local_sq = 0.0;
    for (var j = lid; j < units(); j += ROW_WG) {
        let centered = (sum_out[start + j] - s0) - shifted_mean;
        local_sq += unit_sum(centered * centered);
    }
    let variance = workgroup_sum(lid, local_sq) / d;
    let row_rstd = inverseSqrt(variance + params.eps);

    // Pass 3: normalise, scale and shift.
    for (var j = lid; j < units(); j += ROW_WG) {
        let shat = ((sum_out[start + j] - s0) - shifted_mean) * row_rstd;
        y[start + j] = shat * weight[j] + bias[j];
    }
    if (lid == 0u) {
        mean_out[row] = s0 + shifted_mean;
        rstd_out[row] = row_rstd;
    }
}

// Row means of g and g·x̂, g = dy·weight (the gradient reaching x̂): the two sums the chain rule
// through mean_r and rstd_r needs. One reduction for both. Every thread of the row must call it.
fn dx_row_means(start: u32, lid: u32, row_mean: f32, row_rstd: f32) -> vec2<f32> {
    var local = vec2<f32>(0.0, 0.0);
    for (var j = lid; j < units(); j += ROW_WG) {
        let xhat = (x[start + j] - row_mean) * row_rstd;
        let g = dy[start + j] * weight[j];
        local += vec2<f32>(unit_sum(g), unit_sum(g * xhat));
    }
    return workgroup_sum2(lid, local) / f32(params.d);
}

// dx of Unit j of a row: the chain rule through mean_r and rstd_r takes from g its row mean
// (adding a constant to x leaves x̂ unchanged) and a part along x̂ (since ∂rstd_r/∂x ∝ x − mean_r).
fn dx_unit(start: u32, j: u32, row_mean: f32, row_rstd: f32, means: vec2<f32>) -> Unit {
    let xhat = (x[start + j] - row_mean) * row_rstd;
    let g = dy[start + j] * weight[j];
    return row_rstd * (g - means.x - xhat * means.y);
}

@compute @workgroup_size(ROW_WG)
fn layernorm_backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) { return; }
    let start = row * units();
    let row_mean = mean[row];
    let row_rstd = rstd[row];
    let means = dx_row_means(start, lid, row_mean, row_rstd);
    for (var j = lid; j < units(); j += ROW_WG) {
        dx[start + j] = dx_unit(start, j, row_mean, row_rstd, means);
    }
}

// layernorm_backward_dx plus the gradient s receives from elsewhere (x here is the forward's s).
// A separate entry point rather than a flag: a flag would put dsum in the plain kernel's layout,
// which would then need a dummy buffer bound.
@compute @workgroup_size(ROW_WG)
fn add_layernorm_backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) { return; }
    let start = row * units();
    let row_mean = mean[row];
    let row_rstd = rstd[row];
    let means = dx_row_means(start, lid, row_mean, row_rstd);
    for (var j = lid; j < units(); j += ROW_WG) {
        dx[start + j] = dsum[start + j] + dx_unit(start, j, row_mean, row_rstd, means);
    }
}

// One thread per Unit j of columns, down the rows in order.
@compute @workgroup_size(WG)
fn layernorm_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let j = flat_index(wid, nwg, lid);
    if (j >= units()) { return; }
    var dw = Unit();
    var db = Unit();
    for (var r = 0u; r < params.rows; r++) {
        let i = r * units() + j;
        let xhat = (x[i] - mean[r]) * rstd[r];
        dw += dy[i] * xhat;
        db += dy[i];
    }
    dweight[j] = dw;
    dbias[j] = db;
}
