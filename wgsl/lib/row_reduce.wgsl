// Helpers of the kernels that run one workgroup per row (softmax, layernorm, cross_entropy):
// reductions through workgroup memory, which every adapter has.
//
// Not a kernel family of its own: the launchers prepend this file to each of those families at
// compile time (WGSL has no #include). The family declares ROW_WG, its threads per row (a power
// of 2) and the workgroup size of its per-row kernels. wgsl/lib/row_reduce_subgroup.wgsl defines
// the same functions with subgroup operations; the launcher compiles the family with whichever
// the adapter supports (`kernels::row_reduce_shader`), so a kernel's text is the same for both.

const LOWEST_F32: f32 = -3.4028234663852886e38;   // max() identity: −f32::MAX exactly (WGSL has no −∞ literal; Tint rejects -3.40282347e38, just past f32::MAX, which naga rounds)

// The reductions' workspace: one value per thread.
var<workgroup> scratch: array<f32, ROW_WG>;
var<workgroup> scratch2: array<vec2<f32>, ROW_WG>;

// Rows are spread over a 2-D grid because one grid axis holds at most 65535 workgroups.
fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Tree reductions over the workgroup: ROW_WG → ROW_WG/2 → … → 1 partial values, then every
// thread reads the result (log2(ROW_WG) + 2 barriers). All threads of the workgroup must call
// them (they contain barriers). The last barrier stops a fast thread from overwriting `scratch`
// for the next reduction before the slow ones have read this result.
fn workgroup_max(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var stride = ROW_WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            scratch[lid] = max(scratch[lid], scratch[lid + stride]);
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var stride = ROW_WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            scratch[lid] += scratch[lid + stride];
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}

// Two sums at once (LayerNorm's dx needs mean(g) and mean(g·x̂): one reduction instead of two).
fn workgroup_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    scratch2[lid] = v;
    workgroupBarrier();
    for (var stride = ROW_WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            scratch2[lid] += scratch2[lid + stride];
        }
        workgroupBarrier();
    }
    let result = scratch2[0];
    workgroupBarrier();
    return result;
}
