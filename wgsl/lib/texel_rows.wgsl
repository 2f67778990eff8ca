// How a buffer's values lie in a texture of texels (`Texels`, src/gpu/texels.rs): in their
// stored order, four to a texel, TEXELS_PER_ROW texels to a row, so quad q of the values (the
// buffer seen as vec4s) is texel (q mod TEXELS_PER_ROW, q div TEXELS_PER_ROW). Prepended to the
// builds that read texels: the matmul's (wgsl/lib/matmul_b_texels.wgsl) and the fused
// attention's (wgsl/lib/attention_heads_texels.wgsl).

// Texels per texture row: a power of two, so the texel of quad q is a shift and a mask away.
// 2048 is the least `max_texture_dimension_2d` any WebGPU adapter offers (wgpu's downlevel
// limits), so a texture this wide fits everywhere. Must equal `TEXELS_PER_ROW` in src/gpu/texels.rs.
const TEXELS_PER_ROW: u32 = 2048u;

// The texel that holds quad q.
fn texel_of_quad(q: u32) -> vec2<u32> {
    return vec2<u32>(q % TEXELS_PER_ROW, q / TEXELS_PER_ROW);
}
