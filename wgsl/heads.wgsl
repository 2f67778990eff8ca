// The permutes around multi-head attention (timm's Attention), forward and backward.
//
//   split_heads:  qkv [B, T, 3·D]  viewed as [B, T, 3, H, hd]  → q, k, v: [B, H, T, hd] each
//                 (timm: qkv.reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4))
//   merge_heads:  x [B, H, T, hd]  → y [B, T, H·hd]
//                 (timm: x.transpose(1, 2).reshape(B, T, D))
//
// Each backward is the inverse permutation. Every thread moves one element, so nothing is summed
// and the results are exact. An element is a `Unit`, which a library file prepended to this one
// defines: a quad of 4 f32s where hd is a multiple of 4 (wgsl/lib/move_quads.wgsl), else one f32
// (wgsl/lib/move_scalars.wgsl). Every size along the last axis (hd, D) is counted in Units: the
// launcher passes hd / 4 as `head_dim` to the quad build.

struct Params {
    batch: u32,   // B
    tokens: u32,  // T
    heads: u32,   // H
    head_dim: u32, // hd, in Units; D = H · hd
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> qkv: array<Unit>;
@group(0) @binding(2) var<storage, read_write> q: array<Unit>;
@group(0) @binding(3) var<storage, read_write> k: array<Unit>;
@group(0) @binding(4) var<storage, read_write> v: array<Unit>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<Unit>;
@group(0) @binding(6) var<storage, read> dq: array<Unit>;
@group(0) @binding(7) var<storage, read> dk: array<Unit>;
@group(0) @binding(8) var<storage, read> dv: array<Unit>;
@group(0) @binding(9) var<storage, read> x: array<Unit>;
@group(0) @binding(10) var<storage, read_write> y: array<Unit>;

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

// One thread per element of a [B, T, D] row: it moves that element of q, of k and of v (qkv's
// columns c, D + c and 2·D + c). One thread per element of qkv, each picking q, k or v by its
// column, ran 31–33 ms forward and 38–41 backward at ViT-B/16 batch 8 on lavapipe, 4× merge_heads
// for 3× the data: lavapipe runs 8 threads in SIMD lanes and a branch that splits them runs
// every arm, each store a loop over the lanes (`cargo run --release --example step_profile --
// vit-b 8`); this layout, in the profile run next to it, 15.7 and 17.5 ms. Moving a quad per
// thread (move_quads.wgsl) then took split_heads from 11.4 to 7.1 ms forward and 11.8 to 6.9
// backward, merge_heads from 7.5 to 2.9 and 7.0 to 2.9 (the same profile, two runs apart).
@compute @workgroup_size(WG)
fn split_heads_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * d) { return; }
    let src = (i / d) * 3u * d + i % d;  // column i % D of row i / D of qkv
    let dst = head_major_index(coord_of_token_major(i, d));
    q[dst] = qkv[src];
    k[dst] = qkv[src + d];
    v[dst] = qkv[src + 2u * d];
}

@compute @workgroup_size(WG)
fn split_heads_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * d) { return; }
    let dst = (i / d) * 3u * d + i % d;
    let src = head_major_index(coord_of_token_major(i, d));
    dqkv[dst] = dq[src];
    dqkv[dst + d] = dk[src];
    dqkv[dst + 2u * d] = dv[src];
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
