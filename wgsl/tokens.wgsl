// Moving whole tokens along the token axis: the one kernel behind concatenation (CLS + prompts +
// patches), slicing (taking the CLS token, dropping prompts) and their backwards.
//
//   copy_tokens:  dst[b, dst_start + t, :] (=|+=) src[b', src_start + t, :]   for t < count
//                 src: [Bs, Ts, D] with Bs = B, or Bs = 1 broadcast over the batch (b' = 0):
//                 prompts are shared by every image of a batch.
//                 dst: [B, Td, D]
//
// The forward of concat is one copy per part; the backward of a slice is a copy into zeros; the
// backward of a broadcast part is a slice followed by a sum over the batch (reduce.wgsl).
//
// An element is a `Unit`, which a library file prepended to this one defines: a quad of 4 f32s
// where D is a multiple of 4 (wgsl/lib/move_quads.wgsl), else one f32 (move_scalars.wgsl); the
// launcher passes D in Units as `width`. At ViT-B/16 batch 8 on lavapipe a copy took 2.8 ms with
// one f32 per thread and 1.2 ms with a quad (`cargo run --release --example step_profile --
// vit-b 8`, 146 copies a step, two runs apart).

struct Params {
    batch: u32,        // B
    src_tokens: u32,   // Ts
    dst_tokens: u32,   // Td
    width: u32,        // D, in Units
    src_start: u32,
    dst_start: u32,
    count: u32,        // tokens copied
    src_broadcast: u32,  // 1: src has batch 1, read it for every b
    accumulate: u32,     // 1: add into dst instead of overwriting
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<Unit>;
@group(0) @binding(2) var<storage, read_write> dst: array<Unit>;

const WG: u32 = 256u;

// One thread per copied element (Unit): i ranges over [B, count, D].
@compute @workgroup_size(256)
fn copy_tokens(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    let d = params.width;
    if (i >= params.batch * params.count * d) { return; }
    let e = i % d;                     // channel
    let t = (i / d) % params.count;    // token within the copied run
    let b = i / (d * params.count);    // image
    let src_b = select(b, 0u, params.src_broadcast == 1u);
    let src_i = (src_b * params.src_tokens + params.src_start + t) * d + e;
    let dst_i = (b * params.dst_tokens + params.dst_start + t) * d + e;
    if (params.accumulate == 1u) {
        dst[dst_i] = dst[dst_i] + src[src_i];
    } else {
        dst[dst_i] = src[src_i];
    }
}
