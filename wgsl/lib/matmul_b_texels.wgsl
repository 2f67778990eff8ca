// The matmul's B operand read from a texture: a frozen weight's copy made at load (`Texels`,
// src/gpu/texels.rs), its values in their stored order, four to a texel (rgba32float, or
// rgba16float for an f16 weight, read widened to f32 either way), TEXELS_PER_ROW texels to a row
// of the texture (wgsl/lib/texel_rows.wgsl, prepended before this file). Prepended to
// wgsl/matmul.wgsl in place of wgsl/lib/matmul_b_f32.wgsl: the kernels read B only through
// b_value and b_quad4, so every kernel reads a texture unchanged, and the same values give the
// same bits. The texture itself, `b_texels`, is declared by the file
// prepended before this one, with its format: wgsl/lib/matmul_b_texels_f32.wgsl or
// wgsl/lib/matmul_b_texels_f16.wgsl (a storage texture's type names its format, so each format
// is a build of its own).
//
// Why a texture: on lavapipe (Mesa 22.3) every load from a storage buffer is a loop over the 8
// SIMD lanes with a branch and a bounds check per lane and per component, while a texel fetch is
// addressed, bounds-checked and gathered for all 8 lanes at once. Measured on lavapipe (Vulkan),
// sg16x8 alone, ViT-B batch 8 (scratch timing of one launch, best of 3, interleaved): qkv
// 1976×2304×768 334/339 → 274/282 ms, qkv's dX 1976×768×2304 298/227 → 249/217 ms, fc2's dX
// 1976×768×3072 426/434 → 323/294 ms, from a sampled texture (texture_2d<f32>).
//
// Why a read-only storage texture rather than a sampled one: lavapipe's image load costs fewer
// instructions than its texel fetch, which goes through the sampler's code (levels, formats).
// Measured on lavapipe (Vulkan), 2026-12-07, sg16x8 alone at the same shapes (a scratch timing,
// GPU timestamps, best of 3, two interleaved rounds), sampled → storage, f32 texels: qkv
// 170.8/173.9 → 141.6/143.4 ms, qkv dX 168.7/168.9 → 140.0/133.0, fc2 260.4/245.0 →
// 231.6/231.7, fc2 dX 218.2/217.2 → 175.1/179.3; f16 texels: qkv 172.8/171.6 → 143.5/142.5,
// qkv dX 163.1/166.1 → 127.9/133.9, fc2 227.4/229.0 → 192.7/193.8, fc2 dX 232.3/226.5 →
// 178.5/181.5. What remains is still mostly B: with B's loads replaced by arithmetic, the
// sampled kernel's qkv took 64 ms. WebGPU guarantees read-only storage for both formats. Not
// measured on a GPU.

// B's elements 4q .. 4q + 3: texel q.
fn b_quad4(q: u32) -> vec4<f32> {
    return textureLoad(b_texels, texel_of_quad(q));
}

// B's element i.
fn b_value(i: u32) -> f32 {
    return b_quad4(i / 4u)[i % 4u];
}

// A from texels too. B's texels are a frozen weight's, made once at load; A is an activation, so
// its texels are made for the one launch (`Gpu::activation_texels`: two device copies of A, the
// whole rows straight from its buffer), where A's rows are read as quads (A_VEC4) and fit one
// texture; A_TEXELS says so. The same values as a4, so the same bits.
//
// Why: on lavapipe sg16x8 from B's texels still spent about 23% of its time on A's 2 quad loads a
// step (storage-buffer loads, the dearer kind there: docs/benchmarks.md, "The step within 4× of
// PyTorch"). Measured on lavapipe (Vulkan), 2026-12-07, `cargo run --release --example texels_ab
// -- 8 3`, the eight ViT-B products, texels against buffer in the same run (the buffer's kernels
// unchanged, so the ratio cancels the host's drift): B's texels alone 0.678 and 0.721, with A's
// texels too 0.593, 0.588 and 0.586, kernel time only. Not measured on a GPU.
@group(0) @binding(8) var a_texels: texture_storage_2d<rgba32float, read>;
override A_TEXELS: bool = false;

// A's quad q: texel q of A's texels, or a4[q].
fn a_quad4(q: u32) -> vec4<f32> {
    if (A_TEXELS) {
        return textureLoad(a_texels, texel_of_quad(q));
    }
    return a4[q];
}
