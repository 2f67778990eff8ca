// What the LayerNorm kernels (wgsl/layernorm.wgsl) read and write per thread: one f32, for rows
// not a multiple of 4 wide. Prepended to that file; the other build, wgsl/lib/norm_quads.wgsl,
// takes a vec4 (`kernels::layernorm` picks).

alias Unit = f32;

fn units() -> u32 {
    return params.d;
}

fn unit_sum(u: Unit) -> f32 {
    return u;
}

fn unit_first(u: Unit) -> f32 {
    return u;
}
