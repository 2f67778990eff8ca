// Reductions and their backwards.
//
//   sum_rows:  x [R, N] → y [N],  y[j] = Σ_r x[r, j]        ("sum over batch": bias and prompt grads)
//              backward: dx[r, j] = dy[j]                    (broadcast back over the rows)
//   mean:      x [n]    → y [1],  y = Σ_i x[i] / n           (mean loss over the batch)
//              backward: dx[i] = dy[0] / n

struct Params {
    rows: u32,   // R (sum_rows) — unused by mean
    cols: u32,   // N (sum_rows) or n (mean)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

// One thread per column walks down all rows. Neighbouring threads read neighbouring addresses
// of the same row, so every load is coalesced; the order of summation is fixed, so the result is
// deterministic run to run.
@compute @workgroup_size(WG)
fn sum_rows_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let j = flat_index(wid, nwg, lid);
    if (j >= params.cols) { return; }
    var acc = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        acc += x[r * params.cols + j];
    }
    y[j] = acc;
}

@compute @workgroup_size(WG)
fn sum_rows_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.rows * params.cols) { return; }
    dx[i] = dy[i % params.cols];
}

var<workgroup> partial: array<f32, WG>;

// A single workgroup: each thread sums a strided slice, then a tree reduction in workgroup
// memory halves the active threads each step (256 → 128 → … → 1).
@compute @workgroup_size(WG)
fn mean_forward(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < params.cols; i += WG) {
        acc += x[i];
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        y[0] = partial[0] / f32(params.cols);
    }
}

@compute @workgroup_size(WG)
fn mean_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.cols) { return; }
    dx[i] = dy[0] / f32(params.cols);
}
