// What the LayerNorm kernels (wgsl/layernorm.wgsl) read and write per thread: a quad of 4 f32s,
// for rows a multiple of 4 wide (every ViT: D 768). Prepended to that file; the other build,
// wgsl/lib/norm_scalars.wgsl, takes one f32 (`kernels::layernorm` picks).
//
// Why a quad: lavapipe runs 8 threads in the lanes of one SIMD register and compiles every load
// and store of a storage buffer into a loop over those lanes, so a vec4 costs little more than
// one f32 (see wgsl/attention.wgsl). Measured on lavapipe (Vulkan), ViT-B/16 batch 8 rows (1976 ×
// 768), `vpt bench --preset vit-b --batch 8 --filter add_layernorm --reps 5`, subgroup build, 64
// threads per row, medians: one f32 → a quad per thread, forward 21.1 → 11.0 ms, dx 15.6 → 8.6 ms.

alias Unit = vec4<f32>;

// D in Units: the launcher takes this build only where D is a multiple of 4.
fn units() -> u32 {
    return params.d / 4u;
}

// The Unit's values added, in pairs: the sum of a thread's share of a row adds these.
fn unit_sum(u: Unit) -> f32 {
    return (u.x + u.y) + (u.z + u.w);
}

// The Unit's first value (a row's first element, where the row starts at this Unit).
fn unit_first(u: Unit) -> f32 {
    return u.x;
}
