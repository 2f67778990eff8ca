// The matmul family's kernel that shares op(A) through subgroup shuffles: `sg16x8`. Not a library
// of plain functions like the other files here: it is prepended to wgsl/matmul.wgsl (WGSL lets a
// module use what it declares further down: a_block_t, b_block_t, and reg16x8's accumulators
// with product_16x8, zero_16x8 and store_16x8) only in the builds for adapters with wgpu's SUBGROUP feature (`matmul_subgroup`,
// `matmul_f16_subgroup`), so the other builds never contain a subgroup builtin.
//
// sg16x8: reg16x8's 16×8 block of C per invocation (4 × 2 blocks of 4×4), 32 invocations per
// workgroup side by side along N (a 16×256 tile of C). Every invocation of a workgroup computes
// the same 16 rows, so all the lanes of any subgroup need the same blocks of op(A), however the
// adapter groups lanes (WGSL promises nothing about that, nor the subgroup's size). So each lane
// loads only the 16×4 block of op(A) at k = k0 + 4·lane, and step j of the products takes lane j's
// block by subgroupShuffle: per step of 4 along K, 8 quad loads of op(B), 16 shuffles and, once
// per subgroup-size steps, 16 quad loads of op(A), where reg16x8 loads all 24 quads every step.
//
// Measured on lavapipe (Vulkan, 8 lanes per subgroup; `vpt bench --preset vit-b --batch 8
// --filter reg16x8,sg16x8,reg32x8 --reps 3`), GFLOP/s against reg16x8: qkv 42.9 vs 23.6, proj 42.0
// vs 24.9, fc1 40.0 vs 25.2, fc2 44.3 vs 24.6 (op(B) stored [N, K]: the linear layers' forward);
// proj dX 33.0 vs 21.3, fc1 dX 32.7 vs 21.0, fc2 dX 25.2 vs 20.3, but qkv dX 18.0 vs 20.4 and
// attention's dQ 5.8 vs 14.5 (op(B) stored [K, N]). On lavapipe a lane is one SIMD lane, and
// reg16x8's 8 lanes loading the same A quad make an 8-address gather of one address; a shuffle
// with a uniform index is one register permute. Not measured on a GPU, where the 128
// accumulators and 64 values of op(A) held per invocation may not fit the registers.
//
// Tried, 2026-12-06: sg32x8, the same with reg32x8's 32×8 block (op(B)'s loads per multiply-add
// halved). The fastest run of every ViT-B product, forward and dX, was 9–34% faster in seven
// interleaved rounds of `cargo run --release --example matmul_readback -- 8 3` (fc1 303.5 →
// 272.4 ms, fc1 dX 306.1 → 228.6, qkv dX 217.6 → 176.8), but two interleaved whole-step
// profiles could not tell the two apart, and lavapipe took 3.4× as long to compile it (52.7
// against 15.5 s for `vpt bench --filter sg16x8` with MESA_SHADER_CACHE_DISABLE=true), which the
// cold CI run cannot afford. Not kept.
//
// Bounds: a lane whose k is past K loads zeros (a_block_t's tail masks them), and every lane of a
// workgroup runs every shuffle (none returns early), since a shuffle reads a lane that must be
// there; only the stores skip what lies outside C.

// Lane j's 4×4 block: each column shuffled from lane j.
fn shuffled_block(held: mat4x4<f32>, j: u32) -> mat4x4<f32> {
    return mat4x4<f32>(subgroupShuffle(held[0], j), subgroupShuffle(held[1], j), subgroupShuffle(held[2], j), subgroupShuffle(held[3], j));
}

@compute @workgroup_size(32, 1, 1)
fn matmul_sg16x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                 @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
    let m = wid.y * 16u;
    let n = (wid.x * 32u + lid) * 8u;
    let batch = wid.z;
    let a_base = batch * params.a_batch_stride;
    let b_base = batch * params.b_batch_stride;
    zero_16x8();
    // K in chunks of 4 per lane: this lane holds op(A) at rows m..m+15, k = k0 + 4·lane.
    for (var k0 = 0u; k0 < params.K; k0 += 4u * lanes) {
        let held_k = k0 + 4u * lane;
        let held_tail = held_k + 4u > params.K;
        let held0 = a_block_t(a_base, m, held_k, held_tail);
        let held1 = a_block_t(a_base, m + 4u, held_k, held_tail);
        let held2 = a_block_t(a_base, m + 8u, held_k, held_tail);
        let held3 = a_block_t(a_base, m + 12u, held_k, held_tail);
        // The steps of this chunk that lie before K (the same count in every lane).
        let steps = min(lanes, (params.K - k0 + 3u) / 4u);
        for (var j = 0u; j < steps; j++) {
            let k = k0 + 4u * j;
            let tail = k + 4u > params.K;
            let b0 = b_block_t(b_base, k, n, tail);
            let b1 = b_block_t(b_base, k, n + 4u, tail);
            product_16x8(shuffled_block(held0, j), shuffled_block(held1, j), shuffled_block(held2, j), shuffled_block(held3, j), b0, b1);
        }
    }
    store_16x8(batch * params.M * params.N, m, n);
}
