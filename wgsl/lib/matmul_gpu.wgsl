// The matmul family's kernel for real GPUs, `gpu64x64`. Prepended to wgsl/matmul.wgsl in every
// build of it (see there); it uses that file's Params, bindings and epilogue and the quad reads
// and the layout constants of wgsl/lib/matmul_register.wgsl (a_quad, b_quad, k_quad, k_row,
// store_quad; TRANS_A, TRANS_B, A_VEC4, B_VEC4).

// =============================================================================================
// gpu64x64: the kernel built for real GPUs, where lavapipe's lessons
// (wgsl/lib/matmul_register.wgsl) do not hold.
// =============================================================================================
//
// On a GPU a workgroup runs on one compute unit, its invocations in lock-step subgroups, and
// workgroup memory is on-chip: one load from global memory, staged there, serves every invocation
// that needs the value, and a barrier costs a few cycles. So this kernel is wgsl/matmul.wgsl's
// tiled one grown up, as the fast WGSL matmuls on Apple and NVIDIA GPUs are built:
//
// - a 64×64 tile of C per workgroup of 128 invocations (8 × 16), each owning a 4×8 register
//   block (rows 4·ty..4·ty+3; columns 4·tx..4·tx+3 and 32 + 4·tx..32 + 4·tx+3): per step of K,
//   one vec4 of op(A) and two of op(B) from workgroup memory feed 32 FMAs (tiled: 8 scalar loads
//   for 16);
// - K walked in steps of 16; each step's 64×16 slice of op(A) and 16×64 slice of op(B) are
//   copied as quads (vec4 loads where the stored rows are a multiple of 4 long, the A_VEC4 and
//   B_VEC4 constants), two of each per invocation;
// - double-buffered: while the workgroup multiplies the slices of step s from one half of the
//   staging buffers, each invocation already holds step s + 1's quads in registers (loaded before
//   the multiply, so their latency hides behind it) and stores them into the other half after.
//   One barrier per step instead of two;
// - the layout (TRANS_A, TRANS_B) fixed at compile time, as in the register-tiled kernels.
// Staging: 2 halves × (16 × 64 + 16 × 64) f32 = 16 KiB, WebGPU's guaranteed minimum.
//
// Edges: quads of op(A) past M (op(B) past N) are clamped into the matrix as in a_quad/b_quad
// (valid loads; the results they feed are never stored); values at k ≥ K are zeroed, so they add
// nothing. Every M, N, K works.
//
// Not measured on a GPU yet (no GPU here): `vpt bench` times it beside the others, and `vpt tune`
// picks it where it wins. On lavapipe it is one of the slow ones, as every kernel that stages
// through workgroup memory is there (wgsl/lib/matmul_register.wgsl says why).

const G_TILE: u32 = 64u;      // C tile: 64 × 64
const G_K: u32 = 16u;         // K per step
const G_QUADS: u32 = 256u;    // quads per staged slice: 64 × 16 / 4
const G_THREADS: u32 = 128u;  // 8 × 16 invocations

// g_a[half·256 + k·16 + i] = op(A)[m0 + 4i .. m0 + 4i + 3, k0 + k] (a quad along M);
// g_b[half·256 + k·16 + j] = op(B)[k0 + k, n0 + 4j .. n0 + 4j + 3] (a quad along N).
var<workgroup> g_a: array<vec4<f32>, 512>;
var<workgroup> g_b: array<vec4<f32>, 512>;

// Quad e (0..255) of step k0's slice of op(A): four values along whichever axis A is stored
// contiguously, zeroed where k ≥ K.
fn g_load_a(base: u32, m0: u32, k0: u32, e: u32) -> vec4<f32> {
    if (TRANS_A) {
        // Stored [K, M]: row k0 + e/16, quad e%16 along M.
        let k = k0 + e / 16u;
        return k_row(a_quad(base, k, m0 + 4u * (e % 16u), params.K, params.M), k);
    }
    // Stored [M, K]: row m0 + e/4, quad e%4 along K.
    let k = k0 + 4u * (e % 4u);
    return k_quad(a_quad(base, m0 + e / 4u, k, params.M, params.K), k);
}

fn g_store_a(half: u32, e: u32, v: vec4<f32>) {
    if (TRANS_A) {
        g_a[half * G_QUADS + e] = v;   // already a quad along M at one k
        return;
    }
    // A quad along K for row r = e/4: one component of four quads along M.
    let r = e / 4u;
    let at = half * G_QUADS + (4u * (e % 4u)) * 16u + r / 4u;
    g_a[at][r % 4u] = v.x;
    g_a[at + 16u][r % 4u] = v.y;
    g_a[at + 32u][r % 4u] = v.z;
    g_a[at + 48u][r % 4u] = v.w;
}

// Same for op(B): quads along N when B is stored [K, N], along K when stored [N, K].
fn g_load_b(base: u32, n0: u32, k0: u32, e: u32) -> vec4<f32> {
    if (TRANS_B) {
        let k = k0 + 4u * (e % 4u);
        return k_quad(b_quad(base, n0 + e / 4u, k, params.N, params.K), k);
    }
    let k = k0 + e / 16u;
    return k_row(b_quad(base, k, n0 + 4u * (e % 16u), params.K, params.N), k);
}

fn g_store_b(half: u32, e: u32, v: vec4<f32>) {
    if (!TRANS_B) {
        g_b[half * G_QUADS + e] = v;
        return;
    }
    let c = e / 4u;
    let at = half * G_QUADS + (4u * (e % 4u)) * 16u + c / 4u;
    g_b[at][c % 4u] = v.x;
    g_b[at + 16u][c % 4u] = v.y;
    g_b[at + 32u][c % 4u] = v.z;
    g_b[at + 48u][c % 4u] = v.w;
}

@compute @workgroup_size(8, 16, 1)
fn matmul_gpu64x64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let tx = local.x;   // columns 4·tx.. and 32 + 4·tx..
    let ty = local.y;   // rows 4·ty..
    let batch = wid.z;
    let m0 = wid.y * G_TILE;
    let n0 = wid.x * G_TILE;
    let a_base = batch * params.a_batch_stride;
    let b_base = batch * params.b_batch_stride;
    let e0 = lid;                // this invocation's two quads of each slice
    let e1 = lid + G_THREADS;

    // Row i of the 4×8 block: acc_i0 (columns 4·tx..), acc_i1 (columns 32 + 4·tx..).
    var acc00 = vec4<f32>(0.0); var acc01 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0); var acc11 = vec4<f32>(0.0);
    var acc20 = vec4<f32>(0.0); var acc21 = vec4<f32>(0.0);
    var acc30 = vec4<f32>(0.0); var acc31 = vec4<f32>(0.0);

    // Step 0's slices into half 0.
    g_store_a(0u, e0, g_load_a(a_base, m0, 0u, e0));
    g_store_a(0u, e1, g_load_a(a_base, m0, 0u, e1));
    g_store_b(0u, e0, g_load_b(b_base, n0, 0u, e0));
    g_store_b(0u, e1, g_load_b(b_base, n0, 0u, e1));
    workgroupBarrier();

    // The trip count depends only on params, so every invocation reaches each barrier.
    let steps = (params.K + G_K - 1u) / G_K;
    for (var s = 0u; s < steps; s++) {
        let half = s % 2u;
        let more = s + 1u < steps;
        // Step s + 1's quads, fetched now and stored after the multiply.
        var na0 = vec4<f32>(0.0); var na1 = vec4<f32>(0.0);
        var nb0 = vec4<f32>(0.0); var nb1 = vec4<f32>(0.0);
        if (more) {
            let k_next = (s + 1u) * G_K;
            na0 = g_load_a(a_base, m0, k_next, e0);
            na1 = g_load_a(a_base, m0, k_next, e1);
            nb0 = g_load_b(b_base, n0, k_next, e0);
            nb1 = g_load_b(b_base, n0, k_next, e1);
        }
        let at = half * G_QUADS;
        for (var k = 0u; k < G_K; k++) {
            let av = g_a[at + k * 16u + ty];
            let b0 = g_b[at + k * 16u + tx];
            let b1 = g_b[at + k * 16u + tx + 8u];
            acc00 += av.x * b0; acc01 += av.x * b1;
            acc10 += av.y * b0; acc11 += av.y * b1;
            acc20 += av.z * b0; acc21 += av.z * b1;
            acc30 += av.w * b0; acc31 += av.w * b1;
        }
        if (more) {
            // The other half was last read in step s − 1, before the barrier that ended it.
            let other = 1u - half;
            g_store_a(other, e0, na0);
            g_store_a(other, e1, na1);
            g_store_b(other, e0, nb0);
            g_store_b(other, e1, nb1);
        }
        workgroupBarrier();
    }

    let c_base = batch * params.M * params.N;
    let m = m0 + 4u * ty;
    let n = n0 + 4u * tx;
    store_quad(c_base, m, n, acc00);       store_quad(c_base, m, n + 32u, acc01);
    store_quad(c_base, m + 1u, n, acc10);  store_quad(c_base, m + 1u, n + 32u, acc11);
    store_quad(c_base, m + 2u, n, acc20);  store_quad(c_base, m + 2u, n + 32u, acc21);
    store_quad(c_base, m + 3u, n, acc30);  store_quad(c_base, m + 3u, n + 32u, acc31);
}
