// Helpers of the kernels that run one workgroup per row (softmax, layernorm, cross_entropy).
//
// Not a kernel family of its own: the launchers prepend this file to each of those families at
// compile time (WGSL has no #include). The family declares the two names used here:
//   ROW_WG   threads per row (a power of 2), the workgroup size of its per-row kernels
//   scratch  var<workgroup> array<f32, ROW_WG>, the reductions' workspace

const LOWEST_F32: f32 = -3.40282347e38;   // max() identity; WGSL has no −∞ literal

// Rows are spread over a 2-D grid because one grid axis holds at most 65535 workgroups.
fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Tree reductions over the workgroup: ROW_WG → ROW_WG/2 → … → 1 partial values, then every
// thread reads the result. All threads of the workgroup must call them (they contain barriers).
// The last barrier stops a fast thread from overwriting `scratch` for the next reduction before
// the slow ones have read this result.
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
