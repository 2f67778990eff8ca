// The fused attention's [T, hd] matrices bound as vec4s, for heads whose width hd is a multiple
// of 4: quad j of row `row` (of [B·H·T, hd]) is one vec4 load. Prepended to wgsl/attention.wgsl
// (`kernels::attention` picks this file or attention_scalars.wgsl by hd). The heads q, k, v and dO
// are read through q_quad, k_quad, v_quad and dout_quad, which the build defines: from these
// buffers (wgsl/lib/attention_heads_buffers.wgsl) or from texels of them
// (wgsl/lib/attention_heads_texels.wgsl).

@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f32>>;   // forward output
@group(0) @binding(6) var<storage, read> o_saved: array<vec4<f32>>;   // backward: the forward's O
@group(0) @binding(8) var<storage, read> dout: array<vec4<f32>>;      // backward: dO
@group(0) @binding(12) var<storage, read_write> dk: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> dv: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> dq: array<vec4<f32>>;

// Quads per row: hd / 4.
fn head_quads() -> u32 {
    return params.head_dim / 4u;
}

fn q_at(row: u32, j: u32) -> vec4<f32> { return q_quad(row * head_quads() + j); }
fn k_at(row: u32, j: u32) -> vec4<f32> { return k_quad(row * head_quads() + j); }
fn v_at(row: u32, j: u32) -> vec4<f32> { return v_quad(row * head_quads() + j); }
fn o_saved_at(row: u32, j: u32) -> vec4<f32> { return o_saved[row * head_quads() + j]; }
fn dout_at(row: u32, j: u32) -> vec4<f32> { return dout_quad(row * head_quads() + j); }

fn o_put(row: u32, j: u32, value: vec4<f32>) { o[row * head_quads() + j] = value; }
fn dk_put(row: u32, j: u32, value: vec4<f32>) { dk[row * head_quads() + j] = value; }
fn dv_put(row: u32, j: u32, value: vec4<f32>) { dv[row * head_quads() + j] = value; }
fn dq_put(row: u32, j: u32, value: vec4<f32>) { dq[row * head_quads() + j] = value; }
