// The matmul's B operand read from a texture: a frozen weight's copy made at load (`Texels`,
// src/gpu/texels.rs), its values in their stored order, four to a texel (rgba32float, or
// rgba16float for an f16 weight, read widened to f32 either way), TEXELS_PER_ROW texels to a row
// of the texture. Prepended to wgsl/matmul.wgsl in place of wgsl/lib/matmul_b_f32.wgsl: the
// kernels read B only through b_value and b_quad4, so every kernel reads a texture unchanged, and
// the same values give the same bits.
//
// Why a texture: on lavapipe (Mesa 22.3) every load from a storage buffer is a loop over the 8
// SIMD lanes with a branch and a bounds check per lane and per component, while a texel fetch is
// addressed, bounds-checked and gathered for all 8 lanes at once. Measured on lavapipe (Vulkan),
// sg16x8 alone, ViT-B batch 8 (scratch timing of one launch, best of 3, interleaved): qkv
// 1976×2304×768 334/339 → 274/282 ms, qkv's dX 1976×768×2304 298/227 → 249/217 ms, fc2's dX
// 1976×768×3072 426/434 → 323/294 ms. With B's loads replaced by arithmetic (no memory at all),
// qkv took 151–182 ms: B's loads were about 40% of the kernel. Not measured on a GPU.

// Texels per texture row: a power of two, so the texel of quad q is a shift and a mask away.
// 2048 is the least `max_texture_dimension_2d` any WebGPU adapter offers (wgpu's downlevel
// limits), so a texture this wide fits everywhere. Must equal `TEXELS_PER_ROW` in src/gpu/texels.rs.
const TEXELS_PER_ROW: u32 = 2048u;

@group(0) @binding(2) var b_texels: texture_2d<f32>;

// B's elements 4q .. 4q + 3: texel q.
fn b_quad4(q: u32) -> vec4<f32> {
    return textureLoad(b_texels, vec2<u32>(q % TEXELS_PER_ROW, q / TEXELS_PER_ROW), 0);
}

// B's element i.
fn b_value(i: u32) -> f32 {
    return b_quad4(i / 4u)[i % 4u];
}
