// The matmul family's register-tiled kernels (`reg4x4`, `reg4x4_vec4`, `reg16x8`, `reg32x8`) and
// the quad reads (a_quad, b_quad, a_block_t, b_block_t) and stores (store_quad, store_block_t)
// that wgsl/lib/matmul_gpu.wgsl and wgsl/lib/matmul_subgroup.wgsl use too. Not a library of
// plain functions like most files here: prepended to wgsl/matmul.wgsl in every build of it, whose
// Params, bindings and epilogue (store_one) it uses; WGSL lets a module use what it declares
// further down. One family with wgsl/matmul.wgsl, in files of their own so that each stays
// readable in one sitting.

// =============================================================================================
// Register-tiled kernels, specialised per layout: what a CPU-run "GPU" (lavapipe) rewards.
// =============================================================================================
//
// lavapipe (Mesa's software Vulkan, llvmpipe underneath) runs a workgroup as a CPU loop over
// groups of 8 invocations, one per lane of an 8-wide AVX2 vector. What that rewards, found by
// reading llvmpipe's code generator (lp_bld_nir_soa.c in Mesa 21.3 and a later release; this
// machine runs 22.3) and measuring each change:
//
// - A load from a storage buffer *or from workgroup memory*, inside a loop, is a scalar loop over
//   the 8 lanes (take the lane's index, bounds-check it, load, insert), even when every lane reads
//   the same address. So the number of load *instructions* per FMA sets the speed, and staging
//   tiles through workgroup memory buys nothing: it doubles the loads (global → shared → register).
// - A vec4 load is one trip round that lane loop for four values instead of four trips.
// - A barrier stops each 8-lane group of the workgroup and switches to the next (coroutines).
// - A private array indexed in a loop lives in memory, each access again a per-lane gather; named
//   variables live in registers. (An earlier, fc1-only version of the 16×8 kernel below ran at
//   7.6 GFLOP/s with its accumulators in an array updated in loops, 23.7 with named ones.) The
//   accumulators are named `var<private>`s.
// - A branch on a uniform value (`params.trans_a`) inside the K loop cost 14–20% against the
//   same kernel with the layout fixed at compile time. The transposes are therefore WGSL
//   `override` constants, set when the pipeline is created (one pipeline per layout), and the
//   compiler deletes the untaken side.
//
// So these kernels use no workgroup memory and no barriers: each invocation computes a block of C
// straight from global memory, 4 values of K at a time, as products of 4×4 blocks held in
// mat4x4s. Each 4×4 block of op(A) or op(B) is read as four quads (4 consecutive stored values):
// along K where the operand is stored with K innermost, along M or N otherwise. A quad is one vec4
// load when the stored rows are a multiple of 4 long (the `*_VEC4` constants), else four scalar
// loads; the ViT's widths (64, 768, 2304, 3072) all are, its token count (197 + 50) is not.
//
// Edges: quads outside the matrix are clamped into it (valid loads; the results they feed are
// never stored), and the last, partial step of the K loop zeroes the values past K, so every
// M, N, K works.
//
// What each step bought on lavapipe (2 cores, quiet), fc1 [247, 768]·[3072, 768]ᵀ in GFLOP/s
// (docs/benchmarks.md has every shape and the command): tiled 3.3 → reg4x4 (no workgroup memory,
// no barriers, layout fixed at compile time) 6.3 → reg4x4_vec4 (vec4 loads) 11.4 → reg16x8
// (24 loads per 512 FMAs instead of 8 per 64) 23.8 → reg32x8 (40 loads per 1024 FMAs: half the
// loads of op(B) per FMA) 26.9–27.6, and 19.7–20.5 → 24.4–24.9 on fc1's dX, whose B is stored
// [K, N] (reg16x8 and reg32x8 measured in the same minutes).

override TRANS_A: bool = false;   // A is stored [K, M]
override TRANS_B: bool = false;   // B is stored [N, K]
override A_VEC4: bool = false;    // A's stored rows are a multiple of 4 long: read quads as vec4
override B_VEC4: bool = false;    // same for B

// A seen as vec4s (bound only when A_VEC4 is true; otherwise a 16-byte stand-in sits there and
// is never read). B's view, b4 at binding 6, is declared with b.
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;

// Stored A (row-major, `rows` × `cols`, starting at `base`): 4 consecutive values of stored row r
// from column c, with r and each column clamped into the matrix. With A_VEC4, c is a multiple of 4.
fn a_quad(base: u32, r: u32, c: u32, rows: u32, cols: u32) -> vec4<f32> {
    let row = base + min(r, rows - 1u) * cols;
    if (A_VEC4) {
        return a_quad4((row + min(c, cols - 4u)) / 4u);  // the build's: from a4, or A's texels
    }
    let last = cols - 1u;
    return vec4<f32>(a[row + min(c, last)], a[row + min(c + 1u, last)], a[row + min(c + 2u, last)], a[row + min(c + 3u, last)]);
}

// Same for B.
fn b_quad(base: u32, r: u32, c: u32, rows: u32, cols: u32) -> vec4<f32> {
    let row = base + min(r, rows - 1u) * cols;
    if (B_VEC4) {
        return b_quad4((row + min(c, cols - 4u)) / 4u);
    }
    let last = cols - 1u;
    return vec4<f32>(b_value(row + min(c, last)), b_value(row + min(c + 1u, last)), b_value(row + min(c + 2u, last)), b_value(row + min(c + 3u, last)));
}

// For the last step of the K loop: zero the values of a quad that runs along K at k ≥ K ...
fn k_quad(v: vec4<f32>, k: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), v, vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.K));
}
// ... or a whole quad that lies at one k ≥ K.
fn k_row(v: vec4<f32>, k: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), v, k < params.K);
}

// The block of op(A) at rows m..m+3, k..k+3, transposed: column q holds op(A)[m + q, k..k+3].
// `tail`: this is the last step and some of k..k+3 may be ≥ K.
fn a_block_t(base: u32, m: u32, k: u32, tail: bool) -> mat4x4<f32> {
    let M = params.M;
    let K = params.K;
    if (TRANS_A) {
        // Stored [K, M]: quads run along m, quad q is op(A)[m.., k + q], so they form the block
        // itself (not transposed). transpose() costs nothing: it only renames registers.
        var q0 = a_quad(base, k, m, K, M);
        var q1 = a_quad(base, k + 1u, m, K, M);
        var q2 = a_quad(base, k + 2u, m, K, M);
        var q3 = a_quad(base, k + 3u, m, K, M);
        if (tail) {
            q0 = k_row(q0, k);
            q1 = k_row(q1, k + 1u);
            q2 = k_row(q2, k + 2u);
            q3 = k_row(q3, k + 3u);
        }
        return transpose(mat4x4<f32>(q0, q1, q2, q3));
    }
    // Stored [M, K]: quad q is row m + q along k.
    var q0 = a_quad(base, m, k, M, K);
    var q1 = a_quad(base, m + 1u, k, M, K);
    var q2 = a_quad(base, m + 2u, k, M, K);
    var q3 = a_quad(base, m + 3u, k, M, K);
    if (tail) {
        q0 = k_quad(q0, k);
        q1 = k_quad(q1, k);
        q2 = k_quad(q2, k);
        q3 = k_quad(q3, k);
    }
    return mat4x4<f32>(q0, q1, q2, q3);
}

// The block of op(B) at k..k+3, columns n..n+3, transposed: column q holds op(B)[k + q, n..n+3].
fn b_block_t(base: u32, k: u32, n: u32, tail: bool) -> mat4x4<f32> {
    let N = params.N;
    let K = params.K;
    if (TRANS_B) {
        // Stored [N, K]: quad q is stored row n + q along k, i.e. op(B)[k.., n + q]: the block
        // itself; transpose it.
        var q0 = b_quad(base, n, k, N, K);
        var q1 = b_quad(base, n + 1u, k, N, K);
        var q2 = b_quad(base, n + 2u, k, N, K);
        var q3 = b_quad(base, n + 3u, k, N, K);
        if (tail) {
            q0 = k_quad(q0, k);
            q1 = k_quad(q1, k);
            q2 = k_quad(q2, k);
            q3 = k_quad(q3, k);
        }
        return transpose(mat4x4<f32>(q0, q1, q2, q3));
    }
    // Stored [K, N]: quad q is row k + q along n.
    var q0 = b_quad(base, k, n, K, N);
    var q1 = b_quad(base, k + 1u, n, K, N);
    var q2 = b_quad(base, k + 2u, n, K, N);
    var q3 = b_quad(base, k + 3u, n, K, N);
    if (tail) {
        q0 = k_row(q0, k);
        q1 = k_row(q1, k + 1u);
        q2 = k_row(q2, k + 2u);
        q3 = k_row(q3, k + 3u);
    }
    return mat4x4<f32>(q0, q1, q2, q3);
}

// Write C[m, n..n+3] (plus bias), skipping what lies outside C.
fn store_quad(c_base: u32, m: u32, n: u32, v: vec4<f32>) {
    store_one(c_base, m, n, v.x);
    store_one(c_base, m, n + 1u, v.y);
    store_one(c_base, m, n + 2u, v.z);
    store_one(c_base, m, n + 3u, v.w);
}

// Write a Cᵀ block: column q is C[m + q, n..n+3].
fn store_block_t(c_base: u32, m: u32, n: u32, t: mat4x4<f32>) {
    store_quad(c_base, m, n, t[0]);
    store_quad(c_base, m + 1u, n, t[1]);
    store_quad(c_base, m + 2u, n, t[2]);
    store_quad(c_base, m + 3u, n, t[3]);
}

// ---------------------------------------------------------------------------------------------
// reg4x4: one 4×4 block of C per invocation, 8×8 invocations per workgroup (a 32×32 tile of C).
// Per step of 4 along K: 8 quad loads, one 4×4×4 block product (64 FMAs).
// ---------------------------------------------------------------------------------------------

// Cᵀ of this invocation's block (column q = row m + q of C).
var<private> acc_4x4: mat4x4<f32>;

fn step_4x4(a_base: u32, b_base: u32, m: u32, n: u32, k: u32, tail: bool) {
    // Cᵀ += op(B)ᵀ·op(A)ᵀ, one block each.
    acc_4x4 += b_block_t(b_base, k, n, tail) * a_block_t(a_base, m, k, tail);
}

@compute @workgroup_size(8, 8, 1)
fn matmul_reg4x4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.y * 4u;
    let n = gid.x * 4u;
    let batch = gid.z;
    let a_base = batch * params.a_batch_stride;
    let b_base = batch * params.b_batch_stride;
    acc_4x4 = mat4x4<f32>();
    var k = 0u;
    for (; k + 4u <= params.K; k += 4u) {
        step_4x4(a_base, b_base, m, n, k, false);
    }
    if (k < params.K) {
        step_4x4(a_base, b_base, m, n, k, true);
    }
    store_block_t(batch * params.M * params.N, m, n, acc_4x4);
}

// ---------------------------------------------------------------------------------------------
// reg16x8: a 16×8 block of C per invocation (4 × 2 blocks of 4×4), 8×8 invocations per
// workgroup (a 128×64 tile of C). Per step of 4 along K: 24 quad loads for 8 block products
// (512 FMAs): each loaded block of op(A) serves 2 products and each block of op(B) 4.
//
// Block shapes tried on lavapipe (an earlier version of this kernel, fc1's layout only), rows ×
// columns per invocation, GFLOP/s: 4×4 12.2, 4×8 14.2, 8×4 15.2, 8×8 21.0, 12×8 19.2, 8×12 22.5,
// 16×8 23.7, 8×16 12.7 (past ~32 accumulators per lane they spill out of the CPU's registers;
// but see reg32x8 below, whose 64 run faster still).
// Also tried on this kernel, at fc1: workgroups of 16×4, 32×2 or 64×1 invocations ran within 3%
// of 8×8, and 4×16 30% slower (the 8 lanes of a SIMD group then span two rows of blocks and stop
// reading the same quads of A); two K steps per loop iteration, 11% slower; vec4 stores of C,
// 6% faster at K = 64 (attention) and no faster at K = 768: not worth a second, writable view of C.
// ---------------------------------------------------------------------------------------------

// acc_ij: Cᵀ of the 4×4 block at rows m + 4i, columns n + 4j.
var<private> acc00: mat4x4<f32>;
var<private> acc01: mat4x4<f32>;
var<private> acc10: mat4x4<f32>;
var<private> acc11: mat4x4<f32>;
var<private> acc20: mat4x4<f32>;
var<private> acc21: mat4x4<f32>;
var<private> acc30: mat4x4<f32>;
var<private> acc31: mat4x4<f32>;

// The 16×8 block's products for one step: op(A)'s 4 blocks a0..a3 (rows m, m + 4, m + 8, m + 12)
// times op(B)'s 2 (columns n, n + 4). Shared with sg16x8 (wgsl/lib/matmul_subgroup.wgsl).
fn product_16x8(a0: mat4x4<f32>, a1: mat4x4<f32>, a2: mat4x4<f32>, a3: mat4x4<f32>, b0: mat4x4<f32>, b1: mat4x4<f32>) {
    acc00 += b0 * a0;
    acc01 += b1 * a0;
    acc10 += b0 * a1;
    acc11 += b1 * a1;
    acc20 += b0 * a2;
    acc21 += b1 * a2;
    acc30 += b0 * a3;
    acc31 += b1 * a3;
}

fn zero_16x8() {
    let zero = mat4x4<f32>();
    acc00 = zero; acc01 = zero; acc10 = zero; acc11 = zero;
    acc20 = zero; acc21 = zero; acc30 = zero; acc31 = zero;
}

// Write the 16×8 block of C at rows m.., columns n...
fn store_16x8(c_base: u32, m: u32, n: u32) {
    store_block_t(c_base, m, n, acc00);
    store_block_t(c_base, m, n + 4u, acc01);
    store_block_t(c_base, m + 4u, n, acc10);
    store_block_t(c_base, m + 4u, n + 4u, acc11);
    store_block_t(c_base, m + 8u, n, acc20);
    store_block_t(c_base, m + 8u, n + 4u, acc21);
    store_block_t(c_base, m + 12u, n, acc30);
    store_block_t(c_base, m + 12u, n + 4u, acc31);
}

fn step_16x8(a_base: u32, b_base: u32, m: u32, n: u32, k: u32, tail: bool) {
    let a0 = a_block_t(a_base, m, k, tail);
    let a1 = a_block_t(a_base, m + 4u, k, tail);
    let a2 = a_block_t(a_base, m + 8u, k, tail);
    let a3 = a_block_t(a_base, m + 12u, k, tail);
    product_16x8(a0, a1, a2, a3, b_block_t(b_base, k, n, tail), b_block_t(b_base, k, n + 4u, tail));
}

@compute @workgroup_size(8, 8, 1)
fn matmul_reg16x8(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.y * 16u;
    let n = gid.x * 8u;
    let batch = gid.z;
    let a_base = batch * params.a_batch_stride;
    let b_base = batch * params.b_batch_stride;
    zero_16x8();
    var k = 0u;
    for (; k + 4u <= params.K; k += 4u) {
        step_16x8(a_base, b_base, m, n, k, false);
    }
    if (k < params.K) {
        step_16x8(a_base, b_base, m, n, k, true);
    }
    store_16x8(batch * params.M * params.N, m, n);
}

// ---------------------------------------------------------------------------------------------
// reg32x8: reg16x8 with a 32×8 block of C per invocation (8 × 2 blocks of 4×4), 8×8 invocations
// per workgroup (a 256×64 tile of C). Per step of 4 along K: 40 quad loads for 16 block products
// (1024 FMAs): the 8 quads of op(B) now serve 8 products each instead of 4, so op(B) costs half
// the loads per FMA; op(A) costs the same (32 quads per 1024 FMAs, as 16 per 512).
//
// Why: reg16x8 ran the [K, N] layout (the backward dX = dY·W products) ~10% slower than
// [N, K] (fc1 dX 20.4–21.0 GFLOP/s against fc1's 23.4). Not the arithmetic: the same kernel with
// B's row index wrapped to k mod 16 (wrong results, but B always in L1) ran fc1 dX, fc2 dX and
// qkv dX at 25.0–26.1, faster than fc1. It is fetching B: stored [K, N], each K step of a SIMD
// group reads 256 contiguous bytes from each of 4 rows of B that lie N floats apart, where
// stored [N, K] its 64 rows of B are 64 sequential streams along K. Which part of that costs
// (the hardware prefetchers, which follow sequential streams, or a new page per row: 2304 pages
// in one pass over fc1 dX's [3072, 768] W) this VM has no counters to tell. Loading B less often
// per FMA is what pays; twice the rows per invocation does that without adding loads of A.
//
// Measured on lavapipe (2 cores, load average 0.8–1.4, reg16x8 and reg32x8 runs interleaved, 3
// rounds each, GFLOP/s at the median of 5; `vpt bench --preset vit-b --batch 1 --filter
// reg16x8,reg32x8 --reps 5`), reg16x8 → reg32x8:
//   [K, N]: fc1 dX 19.7–20.5 → 24.4–24.9, fc2 dX 21.0–21.4 → 23.5–24.4, qkv dX 20.7–21.5 →
//           24.6–25.0, proj dX 23.3–23.7 → 25.9–26.2, fc2 dX·gelu' 20.7–21.0 → 22.8–23.2
//   [N, K]: fc1 23.2–23.3 → 26.9–27.6, fc2 23.6–23.9 → 27.3–27.8, qkv 22.6–23.3 → 26.9–27.3,
//           proj 23.1–23.4 → 27.4–27.8, fc1+gelu 22.3–22.6 → 25.0–25.7,
//           q·kᵀ (K = 64) 16.5–16.7 → 18.3–18.5, attn·v dP 16.4–16.7 → 18.0–18.8
//   at batch 4 (M = 988, another session): fc1 23.2–23.4 → 27.2, fc1 dX 20.8 → 24.4.
// Slower where op(A)'s stored rows are not a multiple of 4 (the attention products whose A is
// [247, 247] probabilities: q·kᵀ dQ and dK, attn·v and its dV): A's quads
// are then four scalar loads each, A's loads dominate, and this kernel does not reduce them:
// q·kᵀ dQ 15.7–15.9 → 14.7–15.0, dK 16.1–16.4 → 15.3–15.4, attn·v 15.9–16.2 → 14.9–15.2, dV
// 16.2–16.4 → 15.3–15.5. So `MatmulKernel::best_for` takes it only where op(A) is read with vec4
// loads.
//
// (The lore above, "past ~32 accumulators per lane they spill", came from an earlier, fc1-only
// kernel's 8×16 shape; this kernel's 64 vec4 accumulators run faster than reg16x8's 32. On AVX2
// every accumulator lives on the stack either way: 32 vec4s of 8 lanes are 128 ymm registers.)
//
// Also tried for the [K, N] layout, at reg16x8's 16×8, none faster (fc1 dX / fc2 dX GFLOP/s,
// against 20.7 / 21.3 in the same minutes): SIMD lanes along m instead of n, so that the 8 lanes
// share B's quads and read A's rows as 8 sequential streams, 20.6–21.2 / 19.2–19.5; B's quads
// for n and n + 4 of each row loaded together, 18.9–19.1 / 20.1–20.2 (the load order is kept all
// the way down, and block by block is better); an 8×16 block (512 contiguous bytes of each B row
// per SIMD group) 20.4–20.6 / 20.7–20.9; a workgroupBarrier every 32, 64 or 128 values of K so
// that the 8 SIMD groups of a workgroup take turns on one L1-sized slice of B, 15–20% slower
// (lavapipe's coroutine switch at each barrier costs more than the misses it saves), and with the
// barrier in the [N, K] layout too, fc1 a third slower (both measured under another 2-core job,
// as ratios to reg16x8 in the same minutes).
// ---------------------------------------------------------------------------------------------

// acc_ij as in reg16x8, for the row blocks i = 4..7 (rows m + 16..m + 31).
var<private> acc40: mat4x4<f32>;
var<private> acc41: mat4x4<f32>;
var<private> acc50: mat4x4<f32>;
var<private> acc51: mat4x4<f32>;
var<private> acc60: mat4x4<f32>;
var<private> acc61: mat4x4<f32>;
var<private> acc70: mat4x4<f32>;
var<private> acc71: mat4x4<f32>;

fn step_32x8(a_base: u32, b_base: u32, m: u32, n: u32, k: u32, tail: bool) {
    let b0 = b_block_t(b_base, k, n, tail);
    let b1 = b_block_t(b_base, k, n + 4u, tail);
    // Two halves of 4 blocks of op(A), so that only 4 of them are live at once.
    let a0 = a_block_t(a_base, m, k, tail);
    let a1 = a_block_t(a_base, m + 4u, k, tail);
    let a2 = a_block_t(a_base, m + 8u, k, tail);
    let a3 = a_block_t(a_base, m + 12u, k, tail);
    acc00 += b0 * a0;
    acc01 += b1 * a0;
    acc10 += b0 * a1;
    acc11 += b1 * a1;
    acc20 += b0 * a2;
    acc21 += b1 * a2;
    acc30 += b0 * a3;
    acc31 += b1 * a3;
    let a4 = a_block_t(a_base, m + 16u, k, tail);
    let a5 = a_block_t(a_base, m + 20u, k, tail);
    let a6 = a_block_t(a_base, m + 24u, k, tail);
    let a7 = a_block_t(a_base, m + 28u, k, tail);
    acc40 += b0 * a4;
    acc41 += b1 * a4;
    acc50 += b0 * a5;
    acc51 += b1 * a5;
    acc60 += b0 * a6;
    acc61 += b1 * a6;
    acc70 += b0 * a7;
    acc71 += b1 * a7;
}

@compute @workgroup_size(8, 8, 1)
fn matmul_reg32x8(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.y * 32u;
    let n = gid.x * 8u;
    let batch = gid.z;
    let a_base = batch * params.a_batch_stride;
    let b_base = batch * params.b_batch_stride;
    let zero = mat4x4<f32>();
    acc00 = zero; acc01 = zero; acc10 = zero; acc11 = zero;
    acc20 = zero; acc21 = zero; acc30 = zero; acc31 = zero;
    acc40 = zero; acc41 = zero; acc50 = zero; acc51 = zero;
    acc60 = zero; acc61 = zero; acc70 = zero; acc71 = zero;
    var k = 0u;
    for (; k + 4u <= params.K; k += 4u) {
        step_32x8(a_base, b_base, m, n, k, false);
    }
    if (k < params.K) {
        step_32x8(a_base, b_base, m, n, k, true);
    }
    let c_base = batch * params.M * params.N;
    store_block_t(c_base, m, n, acc00);
    store_block_t(c_base, m, n + 4u, acc01);
    store_block_t(c_base, m + 4u, n, acc10);
    store_block_t(c_base, m + 4u, n + 4u, acc11);
    store_block_t(c_base, m + 8u, n, acc20);
    store_block_t(c_base, m + 8u, n + 4u, acc21);
    store_block_t(c_base, m + 12u, n, acc30);
    store_block_t(c_base, m + 12u, n + 4u, acc31);
    store_block_t(c_base, m + 16u, n, acc40);
    store_block_t(c_base, m + 16u, n + 4u, acc41);
    store_block_t(c_base, m + 20u, n, acc50);
    store_block_t(c_base, m + 20u, n + 4u, acc51);
    store_block_t(c_base, m + 24u, n, acc60);
    store_block_t(c_base, m + 24u, n + 4u, acc61);
    store_block_t(c_base, m + 28u, n, acc70);
    store_block_t(c_base, m + 28u, n + 4u, acc71);
}
