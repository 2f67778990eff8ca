// The permutes around multi-head attention (timm's Attention), forward and backward.
//
//   split_heads:  qkv [B, T, 3·D]  viewed as [B, T, 3, H, hd]  → q, k, v: [B, H, T, hd] each
//                 (timm: qkv.reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4))
//   merge_heads:  x [B, H, T, hd]  → y [B, T, H·hd]
//                 (timm: x.transpose(1, 2).reshape(B, T, D))
//
// split_heads reads qkv's T tokens from parts, one launch per part: a part holds tokens
// part_start … part_start + Tp − 1, as [B, Tp, 3·D], or as [1, Tp, 3·D] shared by the batch (the
// prompts' rows under VPT-deep, which go through qkv once for the whole batch). q keeps only the
// query rows asked for, tokens q_start … q_start + Tq − 1, [B, H, Tq, hd] (the rows read after
// the block). So the parts' concatenation and the slice of q are never made: the model's split
// was a concatenation (two copies), this permute and a slice of q (a third copy), and their
// three copies back in the backward. The backward writes each part's gradient, zero in q's
// columns of a token that asked nothing; a shared part's is summed over the batch after
// (`kernels::heads`).
//
// Each backward is the inverse permutation. Every thread moves one element, so nothing is summed
// and the results are exact. An element is a `Unit`, which a library file prepended to this one
// defines: a quad of 4 f32s where hd is a multiple of 4 (wgsl/lib/move_quads.wgsl), else one f32
// (wgsl/lib/move_scalars.wgsl). Every size along the last axis (hd, D) is counted in Units: the
// launcher passes hd / 4 as `head_dim` to the quad build.

struct Params {
    batch: u32,          // B
    tokens: u32,         // T, the rows of k and v (and of x, y in merge_heads)
    heads: u32,          // H
    head_dim: u32,       // hd, in Units; D = H · hd
    part_tokens: u32,    // split: Tp, the tokens of this launch's part of qkv
    part_start: u32,     // split: the part's first token among the T
    part_broadcast: u32, // split: 1 where the part is [1, Tp, 3·D], shared by the batch
    q_start: u32,        // split: the first token q keeps
    q_count: u32,        // split: Tq, the rows of q (T where every row asks)
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

// Row t of head h of image b in a [B, H, rows, hd] tensor: where its element e lives.
fn head_row_index(b: u32, h: u32, t: u32, rows: u32, e: u32) -> u32 {
    return ((b * params.heads + h) * rows + t) * params.head_dim + e;
}

// Where element i of a [B, T, H·hd] row-major tensor lives in [B, H, T, hd].
fn head_major_of_token_major(i: u32, width: u32) -> u32 {
    let hd = params.head_dim;
    let c = i % width;
    let bt = i / width;
    return head_row_index(bt / params.tokens, c / hd, bt % params.tokens, params.tokens, c % hd);
}

// Element i of the part's [B, Tp, D] view (D = H·hd): its image b, its token t among the T, its
// head h and column e, and where its q column is in the part (k's: + D, v's: + 2·D).
struct PartElement { b: u32, t: u32, h: u32, e: u32, at: u32 }

fn part_element(i: u32, d: u32) -> PartElement {
    let c = i % d;
    let row = i / d;  // b·Tp + the token within the part
    let b = row / params.part_tokens;
    let within = row % params.part_tokens;
    let part_b = select(b, 0u, params.part_broadcast == 1u);
    let at = (part_b * params.part_tokens + within) * 3u * d + c;
    return PartElement(b, params.part_start + within, c / params.head_dim, c % params.head_dim, at);
}

// Token t's row of q, and whether q keeps it (t − q_start wraps past Tq below q_start).
fn query_row(t: u32) -> u32 {
    return t - params.q_start;
}

// One thread per element of a [B, Tp, D] row of the part: it moves that element of k, of v and,
// where its token is a query row, of q (qkv's columns c + D, c + 2·D and c). One thread per
// element of qkv, each picking q, k or v by its column, ran 31–33 ms forward and 38–41 backward
// at ViT-B/16 batch 8 on lavapipe, 4× merge_heads for 3× the data: lavapipe runs 8 threads in
// SIMD lanes and a branch that splits them runs every arm, each store a loop over the lanes
// (`cargo run --release --example step_profile -- vit-b 8`); this layout, in the profile run
// next to it, 15.7 and 17.5 ms. Moving a quad per thread (move_quads.wgsl) then took split_heads
// from 11.4 to 7.1 ms forward and 11.8 to 6.9 backward, merge_heads from 7.5 to 2.9 and 7.0 to
// 2.9 (the same profile, two runs apart). The branch on q's rows splits lanes only at their ends.
@compute @workgroup_size(WG)
fn split_heads_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.part_tokens * d) { return; }
    let p = part_element(i, d);
    let kv = head_row_index(p.b, p.h, p.t, params.tokens, p.e);
    k[kv] = qkv[p.at + d];
    v[kv] = qkv[p.at + 2u * d];
    let row = query_row(p.t);
    if (row < params.q_count) {
        q[head_row_index(p.b, p.h, row, params.q_count, p.e)] = qkv[p.at];
    }
}

// dq [B, H, Tq, hd], dk, dv [B, H, T, hd] → the part's gradient [B, Tp, 3·D] (bound as dqkv; B
// rows even for a shared part, which the launcher then sums over the batch).
@compute @workgroup_size(WG)
fn split_heads_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.part_tokens * d) { return; }
    let p = part_element(i, d);
    let at = (i / d) * 3u * d + i % d;  // the element's q column in [B, Tp, 3·D]
    let kv = head_row_index(p.b, p.h, p.t, params.tokens, p.e);
    let row = query_row(p.t);
    let asked = row < params.q_count;
    let clamped = head_row_index(p.b, p.h, min(row, params.q_count - 1u), params.q_count, p.e);  // read in bounds either way
    dqkv[at] = select(Unit(), dq[clamped], asked);
    dqkv[at + d] = dk[kv];
    dqkv[at + 2u * d] = dv[kv];
}

// One thread per element of y [B, T, D].
@compute @workgroup_size(WG)
fn merge_heads_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * d) { return; }
    y[i] = x[head_major_of_token_major(i, d)];
}

// dy [B, T, D] (bound as `x`) → dx [B, H, T, hd] (bound as `y`): the same gather, inverted.
@compute @workgroup_size(WG)
fn merge_heads_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let d = params.heads * params.head_dim;
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.tokens * d) { return; }
    y[head_major_of_token_major(i, d)] = x[i];
}
