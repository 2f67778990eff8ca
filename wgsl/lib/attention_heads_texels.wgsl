// The fused attention's heads (q, k, v and the backward's dO) read from texels made for the
// launch (`Gpu::activation_texels`, laid out as wgsl/lib/texel_rows.wgsl says): quad i of
// [B·H·n, hd] is texel i. Prepended to wgsl/attention.wgsl, in place of
// wgsl/lib/attention_heads_buffers.wgsl, in the build `attention_texels_subgroup`, whose kernels
// then read no head's buffer. The same values, so the same bits.
//
// Why: on lavapipe (Mesa 22.3) every load from a storage buffer is a loop over the 8 SIMD lanes
// with a branch and a bounds check per lane, while a texel load is addressed and gathered for all
// 8 lanes at once (wgsl/lib/matmul_b_texels.wgsl, where the matmul's B and A gained from it). The
// `_sg` kernels still load each invocation's own 4 rows every step: a probe that replaced the
// heads' loads by arithmetic (wrong results) ran the ViT-B/16 batch-8 forward in about half the
// time and the backward in about 0.6 of it. Measured on lavapipe (Vulkan), 2026-12-07; what
// texels gave is in `kernels::attention` (`heads_from_texels`). Not measured on a GPU.
//
// Four textures: WebGPU's least `maxStorageTexturesPerShaderStage`; the forward reads three.

@group(0) @binding(16) var q_texels: texture_storage_2d<rgba32float, read>;
@group(0) @binding(17) var k_texels: texture_storage_2d<rgba32float, read>;
@group(0) @binding(18) var v_texels: texture_storage_2d<rgba32float, read>;
@group(0) @binding(19) var dout_texels: texture_storage_2d<rgba32float, read>;

fn q_quad(i: u32) -> vec4<f32> { return textureLoad(q_texels, texel_of_quad(i)); }
fn k_quad(i: u32) -> vec4<f32> { return textureLoad(k_texels, texel_of_quad(i)); }
fn v_quad(i: u32) -> vec4<f32> { return textureLoad(v_texels, texel_of_quad(i)); }
fn dout_quad(i: u32) -> vec4<f32> { return textureLoad(dout_texels, texel_of_quad(i)); }
