enable f16;

// The matmul's B operand stored as f16: a frozen weight under `--precision f16`, half the bytes
// of f32 in memory and in every load. Each value is widened to f32 as it is read, so every
// product and sum is still f32 (the only rounding is the weight's own, once, when it was stored).
// Compiled only on adapters with SHADER_F16. Prepended first to wgsl/matmul.wgsl (`enable` must
// open the module); the f32 twin is wgsl/lib/matmul_b_f32.wgsl.

@group(0) @binding(2) var<storage, read> b: array<f16>;
// B seen as vec4s of f16, 8 bytes each (bound only when B_VEC4 is true; otherwise a stand-in).
@group(0) @binding(6) var<storage, read> b4: array<vec4<f16>>;

fn b_value(i: u32) -> f32 {
    return f32(b[i]);
}

fn b_quad4(q: u32) -> vec4<f32> {
    return vec4<f32>(b4[q]);
}

// A's quad q, one vec4 load from its buffer (a4, wgsl/lib/matmul_register.wgsl). The texel builds
// may read it from A's texels instead (wgsl/lib/matmul_b_texels.wgsl).
fn a_quad4(q: u32) -> vec4<f32> {
    return a4[q];
}
