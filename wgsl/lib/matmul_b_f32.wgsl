// The matmul's B operand stored as f32 (everything but an f16 frozen weight). Prepended to
// wgsl/matmul.wgsl; wgsl/lib/matmul_b_f16.wgsl is the same with B stored as f16. The kernels read
// B only through b_value and b_quad4, so one text serves both.

@group(0) @binding(2) var<storage, read> b: array<f32>;
// B seen as vec4s (bound only when B_VEC4 is true; otherwise a 16-byte stand-in sits there).
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

// B's element i.
fn b_value(i: u32) -> f32 {
    return b[i];
}

// B's elements 4q .. 4q + 3, one vec4 load.
fn b_quad4(q: u32) -> vec4<f32> {
    return b4[q];
}

// A's quad q, one vec4 load from its buffer (a4, wgsl/lib/matmul_register.wgsl). The texel builds
// may read it from A's texels instead (wgsl/lib/matmul_b_texels.wgsl).
fn a_quad4(q: u32) -> vec4<f32> {
    return a4[q];
}
