// B's texels for a weight stored as f16: rgba16float, read widened to vec4<f32> (the kernels need no f16
// arithmetic). Prepended before wgsl/lib/matmul_b_texels.wgsl, which reads it (b_quad4, b_value)
// and says why a texture.
@group(0) @binding(2) var b_texels: texture_storage_2d<rgba16float, read>;
