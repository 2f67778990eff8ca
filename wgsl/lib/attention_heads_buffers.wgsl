// The fused attention's heads read from their buffers (declared in wgsl/lib/attention_quads.wgsl):
// quad i of [B·H·n, hd] seen as vec4s. Prepended to wgsl/attention.wgsl in every build with vec4
// heads but `attention_texels_subgroup`, which reads the same values from texels
// (wgsl/lib/attention_heads_texels.wgsl).

fn q_quad(i: u32) -> vec4<f32> { return q[i]; }
fn k_quad(i: u32) -> vec4<f32> { return k[i]; }
fn v_quad(i: u32) -> vec4<f32> { return v[i]; }
fn dout_quad(i: u32) -> vec4<f32> { return dout[i]; }
