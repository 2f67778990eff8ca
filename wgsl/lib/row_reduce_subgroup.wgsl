// Helpers of the kernels that run one workgroup per row (softmax, layernorm, cross_entropy):
// the same functions as wgsl/lib/row_reduce.wgsl, reducing with subgroup operations. Compiled
// only on adapters with wgpu's SUBGROUP feature (`kernels::row_reduce_shader` picks the file).
//
// A subgroup is the group of invocations the hardware runs in lock-step (a warp of 32 on NVIDIA,
// a wave of 32 or 64 on AMD, 8–32 on Intel, 32 on Apple, the SIMD width on lavapipe).
// subgroupAdd / subgroupMax combine a value across it in a few register shuffles, with no memory
// and no barrier. A row's workgroup (ROW_WG threads) holds one or more subgroups, so:
//   1. each subgroup reduces its threads' values;
//   2. one thread per subgroup writes that partial to workgroup memory, at a slot it takes from
//      an atomic counter (so nothing assumes how threads are split into subgroups, or that all
//      subgroups have the same size: WGSL promises neither);
//   3. after one barrier, every thread combines the partials, in slot order.
// Three barriers per reduction, against log2(ROW_WG) + 2 for the tree (8 for a 64-thread row).
//
// Step 3's order depends on which subgroup took which slot, so the sum's last bits may differ
// between runs where the driver schedules subgroups differently; the tree's order is fixed. The
// values agree within the reduction's rounding (tests/kernels/{softmax,layernorm,cross_entropy}.rs
// hold both variants to the same tolerances).
//
// Every thread of the workgroup must call these (they contain barriers), with all of its
// threads active: the kernels only return early for a whole workgroup at once.

const LOWEST_F32: f32 = -3.4028234663852886e38;   // max() identity: −f32::MAX exactly (WGSL has no −∞ literal; Tint rejects -3.40282347e38, just past f32::MAX, which naga rounds)

// One slot per subgroup (at most ROW_WG of them, for a subgroup size of 1), and the count taken.
var<workgroup> partials: array<vec2<f32>, ROW_WG>;
var<workgroup> partial_count: atomic<u32>;

fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Steps 2 and 1's result: the subgroup's value `s` goes to a slot; returns how many slots were
// filled once every subgroup has written.
fn publish_partial(lid: u32, s: vec2<f32>) -> u32 {
    if (lid == 0u) {
        atomicStore(&partial_count, 0u);
    }
    workgroupBarrier();
    // The subgroup's lowest active invocation writes; subgroupBroadcastFirst gives its lid.
    if (lid == subgroupBroadcastFirst(lid)) {
        partials[atomicAdd(&partial_count, 1u)] = s;
    }
    workgroupBarrier();
    return atomicLoad(&partial_count);
}

fn workgroup_max(lid: u32, v: f32) -> f32 {
    let count = publish_partial(lid, vec2<f32>(subgroupMax(v), 0.0));
    var result = partials[0].x;
    for (var i = 1u; i < count; i++) {
        result = max(result, partials[i].x);
    }
    workgroupBarrier();   // all have read the slots before the next reduction resets the count
    return result;
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
    return workgroup_sum2(lid, vec2<f32>(v, 0.0)).x;
}

fn workgroup_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    let count = publish_partial(lid, subgroupAdd(v));
    var result = partials[0];
    for (var i = 1u; i < count; i++) {
        result += partials[i];
    }
    workgroupBarrier();
    return result;
}
