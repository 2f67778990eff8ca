// Softmax over the last axis, of the input times a scale s, forward and backward.
//
//   forward:   y[r, j] = exp(s·x[r, j] − m_r) / Σ_k exp(s·x[r, k] − m_r),   m_r = max_k s·x[r, k]
//   backward:  dx[r, j] = s · y[r, j] · (dy[r, j] − Σ_k dy[r, k]·y[r, k])
//
// s = 1 is plain softmax. Attention passes s = 1/√hd: softmax(q·kᵀ/√hd) in one pass over the
// scores, where scaling q first would be a pass of its own (and another in the backward).
//
// x, y, dy, dx: [rows, n], the leading axes of any tensor flattened into rows (for attention,
// rows = B·H·T and n = T). One workgroup per row: its ROW_WG threads stride along the row, then
// combine their partial results (in workgroup memory, or with subgroup operations where the
// adapter has them).
//
// Subtracting the row max m_r changes nothing mathematically (it cancels between numerator and
// denominator) but keeps every exponent ≤ 0, so exp never overflows and the denominator is ≥ 1.

struct Params {
    rows: u32,   // number of rows
    n: u32,      // row length (the softmax axis)
    scale: f32,  // s, applied to the input before the softmax
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;           // forward input
@group(0) @binding(2) var<storage, read_write> y: array<f32>;     // forward output
@group(0) @binding(3) var<storage, read> y_saved: array<f32>;     // backward: the forward's y
@group(0) @binding(4) var<storage, read> dy: array<f32>;          // backward: upstream gradient
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;    // backward: output gradient

// Threads per row, set by the launcher (`kernels::row_workgroup_threads`): 8 on a CPU adapter, 64
// elsewhere. 64 covers the rows this engine meets (247 tokens of attention at most per row in
// ViT-B, a few dozen in small models) with a few elements per thread, and is a common hardware
// wave size. 256 left most threads idle on short rows: on lavapipe, which runs every invocation
// of a workgroup on the CPU whether it has work or not, it made softmax slower than the q·kᵀ
// matmul that feeds it. 8 is one SIMD register on lavapipe, whose barriers then switch no
// coroutines (see wgsl/layernorm.wgsl). Measured on lavapipe (Vulkan), `vpt bench --preset vit-b
// --batch 8 --filter softmax --reps 5` ([23712, 247], a busy host, two interleaved rounds,
// median ms), 64 → 8: subgroup build forward 98.7 / 108.8 → 56.2 / 52.8, backward 72.1 / 66.7 →
// 44.4 / 43.6; workgroup-memory build forward 127.8 / 139.5 → 59.4 / 60.6, backward 110.1 /
// 101.5 → 43.9 / 45.2. It must be a power of 2 (the tree reduction halves it).
override ROW_WG: u32 = 64u;
// row_index, LOWEST_F32 and the reductions are in wgsl/lib/row_reduce.wgsl (workgroup memory) or
// wgsl/lib/row_reduce_subgroup.wgsl (subgroup operations), whichever the launcher prepends.

@compute @workgroup_size(ROW_WG)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    // The whole workgroup leaves together (row is the same for all its threads), so the barriers
    // below are still reached by every thread that remains.
    if (row >= params.rows) { return; }
    let start = row * params.n;

    // Pass 1: the row max m_r.
    var local_max = LOWEST_F32;
    for (var j = lid; j < params.n; j += ROW_WG) {
        local_max = max(local_max, params.scale * x[start + j]);
    }
    let row_max = workgroup_max(lid, local_max);

    // Pass 2: the denominator Σ exp(x − m_r), each term in (0, 1], so the sum is in [1, n].
    var local_sum = 0.0;
    for (var j = lid; j < params.n; j += ROW_WG) {
        local_sum += exp(params.scale * x[start + j] - row_max);
    }
    let denom = workgroup_sum(lid, local_sum);

    // Pass 3: normalise. Recomputing exp is cheaper than storing n values in workgroup memory.
    for (var j = lid; j < params.n; j += ROW_WG) {
        y[start + j] = exp(params.scale * x[start + j] - row_max) / denom;
    }
}

@compute @workgroup_size(ROW_WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) { return; }
    let start = row * params.n;

    // The Jacobian of softmax is diag(y) − y·yᵀ, so dx = s·(y ⊙ dy − y·⟨y, dy⟩): one reduction per row.
    var local_dot = 0.0;
    for (var j = lid; j < params.n; j += ROW_WG) {
        local_dot += dy[start + j] * y_saved[start + j];
    }
    let dot = workgroup_sum(lid, local_dot);

    for (var j = lid; j < params.n; j += ROW_WG) {
        dx[start + j] = params.scale * y_saved[start + j] * (dy[start + j] - dot);
    }
}
