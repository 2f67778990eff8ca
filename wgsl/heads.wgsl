// The permutes around multi-head attention (timm's Attention), forward and backward.
//
//   split_heads:  qkv [B, T, 3·D]  viewed as [B, T, 3, H, hd]  → q, k, v: [B, H, T, hd] each
//                 (timm: qkv.reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4))
//   merge_heads:  x [B, H, T, hd]  → y [B, T, H·hd]
//                 (timm: x.transpose(1, 2).reshape(B, T, D))
//
// Each backward is the inverse permutation. Every thread moves one element, so nothing is summed
// and the results are exact.

struct Params {
    batch: u32,   // B
    tokens: u32,  // T
    heads: u32,   // H
    head_dim: u32, // hd; D = H · hd
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> k: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(6) var<storage, read> dq: array<f32>;
@group(0) @binding(7) var<storage, read> dk: array<f32>;
@group(0) @binding(8) var<storage, read> dv: array<f32>;
@group(0) @binding(9) var<storage, read> x: array<f32>;
@group(0) @binding(10) var<storage, read_write> y: array<f32>;

// Where element (b, t, h, e) of a [B, T, H·hd] row-major tensor lives in [B, H, T, hd].
struct Coord { b: u32, t: u32, h: u32, e: u32 }

fn coord_of_token_major(i: u32, width: u32) -> Coord {
    let hd = params.head_dim;
    let c = i % width;
    let bt = i / width;
    return Coord(bt / params.tokens, bt % params.tokens, (c % (params.heads * hd)) / hd, c % hd);
}

fn head_major_index(c: Coord) -> u32 {
    return ((c.b * params.heads + c.h) * params.tokens + c.t) * params.head_dim + c.e;
}

// One thread per element of qkv [B, T, 3·D]; which of q, k, v is the element's position / D.
@compute @workgroup_size(WG)
fn split_heads_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * 3u * d) { return; }
    let which = (i % (3u * d)) / d;
    let dst_i = head_major_index(coord_of_token_major(i, 3u * d));
    let value = qkv[i];
    if (which == 0u) { q[dst_i] = value; } else if (which == 1u) { k[dst_i] = value; } else { v[dst_i] = value; }
}

@compute @workgroup_size(WG)
fn split_heads_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * 3u * d) { return; }
    let which = (i % (3u * d)) / d;
    let src_i = head_major_index(coord_of_token_major(i, 3u * d));
    if (which == 0u) { dqkv[i] = dq[src_i]; } else if (which == 1u) { dqkv[i] = dk[src_i]; } else { dqkv[i] = dv[src_i]; }
}

// One thread per element of y [B, T, D].
@compute @workgroup_size(WG)
fn merge_heads_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * d) { return; }
    y[i] = x[head_major_index(coord_of_token_major(i, d))];
}

// dy [B, T, D] (bound as `x`) → dx [B, H, T, hd] (bound as `y`): the same gather, inverted.
@compute @workgroup_size(WG)
fn merge_heads_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * d) { return; }
    y[head_major_index(coord_of_token_major(i, d))] = x[i];
}
