// B's texels for a weight stored as f32: rgba32float, read as vec4<f32>. Prepended before
// wgsl/lib/matmul_b_texels.wgsl, which reads it (b_quad4, b_value) and says why a texture.
@group(0) @binding(2) var b_texels: texture_storage_2d<rgba32float, read>;
