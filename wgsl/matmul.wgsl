// Matrix multiply, batched, with optional transposes, a fused bias and a fused GELU epilogue.
//
//   C[b] = op(A[b]) · op(B[b]) + bias        op(X) = X or Xᵀ
//
//   A: [batch, M, K], or [batch, K, M] when trans_a
//   B: [batch, K, N], or [batch, N, K] when trans_b
//   bias: [N], added to every row (only read when has_bias)
//   C: [batch, M, N]
//   aux: [batch, M, N], only touched by the epilogues below
//
// The epilogue (the EPILOGUE override constant) is what happens to each result on its way to memory, so that the
// MLP's GELU costs no pass over the [B·T, 4D] activations of its own (gelu_exact and
// gelu_exact_grad come from wgsl/lib/gelu_math.wgsl, prepended to this file):
//
//   0  none        C = dot + bias
//   1  GELU        aux = dot + bias (the pre-activation, kept for backward);  C = gelu(aux)
//                  fc1's forward: one write of each instead of write, read, write.
//   2  GELU grad   C = dot · gelu'(aux)   (aux: that saved pre-activation)
//                  fc2's dX = dY·W₂ becomes fc1's d(pre-activation) in the same pass: no dX
//                  written and read back, no separate GELU-backward launch.
//
// An operand shared by every batch (a weight) has batch stride 0, so each batch reads the same
// matrix. There is no backward entry point: the gradients are matmuls too (dA = dC·op(B)ᵀ,
// dB = op(A)ᵀ·dC, up to transposes), so the launcher composes them from these kernels.
//
// Eight kernels compute the same thing. This file holds what they share (Params, the bindings,
// the epilogue, the scalar reads) and the first two, the readable ones; WGSL has no #include, so
// the others live in files of wgsl/lib/ that the launcher prepends to this one:
//
//   here                            `naive`, `tiled`
//   wgsl/lib/matmul_register.wgsl   four register-tiled kernels, each adding one change (llm.c
//                                   style): `reg4x4`, `reg4x4_vec4`, `reg16x8`, `reg32x8`, with the
//                                   quad reads and block stores the kernels below use too; every build
//   wgsl/lib/matmul_gpu.wgsl        `gpu64x64`, built for real GPUs; every build
//   wgsl/lib/matmul_subgroup.wgsl   `sg16x8`, op(A) shared through subgroup shuffles; only the
//                                   builds for adapters with SUBGROUP
//
// The launcher's `MatmulKernel` names them and picks one per device and shape. All use the z grid
// dimension for the batch: workgroup (x, y, z) covers columns of tile x, rows of tile y, of batch z.
//
// B is declared in the file prepended first: wgsl/lib/matmul_b_f32.wgsl, or
// wgsl/lib/matmul_b_f16.wgsl for a frozen weight stored as f16 (read widened to f32), so every
// kernel serves both.

struct Params {
    M: u32,
    N: u32,
    K: u32,
    batch: u32,
    trans_a: u32,          // 1: A is stored [K, M]
    trans_b: u32,          // 1: B is stored [N, K]
    a_batch_stride: u32,   // elements between consecutive A matrices (0: shared by all batches)
    b_batch_stride: u32,   // same for B
    has_bias: u32,         // 1: add bias[n] to every row; 0: binding 3 is a dummy
}

// What happens to each result before it is stored: fixed when the pipeline is created (one
// pipeline per epilogue), because as a uniform read at every store it made reg16x8 4% slower on
// lavapipe (fc1: 50 → 52 ms).
override EPILOGUE: u32 = 0u;
const EPILOGUE_NONE: u32 = 0u;
const EPILOGUE_GELU: u32 = 1u;
const EPILOGUE_GELU_GRAD: u32 = 2u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// B (binding 2, and its vec4 view at 6) is declared in wgsl/lib/matmul_b_f32.wgsl or
// wgsl/lib/matmul_b_f16.wgsl, whichever the launcher prepends; read it with b_value / b_quad4.
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// Read-write because the GELU epilogue writes it and the GELU-grad epilogue reads it; without an
// epilogue a 16-byte stand-in sits here.
@group(0) @binding(7) var<storage, read_write> aux: array<f32>;

// op(A)[m, k] of the matrix starting at a_base, whichever way A is stored. Caller checks bounds.
fn a_at(a_base: u32, m: u32, k: u32) -> f32 {
    if (params.trans_a != 0u) {
        return a[a_base + k * params.M + m];
    }
    return a[a_base + m * params.K + k];
}

// op(B)[k, n] of the matrix starting at b_base. Caller checks bounds.
fn b_at(b_base: u32, k: u32, n: u32) -> f32 {
    if (params.trans_b != 0u) {
        return b_value(b_base + n * params.K + k);
    }
    return b_value(b_base + k * params.N + n);
}

// The value written to C[batch, m, n]: the dot product plus the bias, if any.
fn with_bias(dot: f32, n: u32) -> f32 {
    if (params.has_bias != 0u) {
        return dot + bias[n];
    }
    return dot;
}

// ---------------------------------------------------------------------------------------------
// Naive: one thread per output element, a 16×16 workgroup covering a 16×16 block of C.
// Every thread reads a whole row of op(A) and column of op(B) from global memory, so each input
// element is fetched M or N times. Kept as the readable reference and the benchmark baseline.
// ---------------------------------------------------------------------------------------------

const NAIVE_WG: u32 = 16u;

@compute @workgroup_size(NAIVE_WG, NAIVE_WG, 1)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let m = gid.y;
    let batch = gid.z;
    if (m >= params.M || n >= params.N) { return; }
    let a_base = batch * params.a_batch_stride;
    let b_base = batch * params.b_batch_stride;
    var acc = 0.0;
    for (var k = 0u; k < params.K; k++) {
        acc += a_at(a_base, m, k) * b_at(b_base, k, n);
    }
    store_one(batch * params.M * params.N, m, n, acc);
}

// ---------------------------------------------------------------------------------------------
// Tiled: a 16×16 workgroup computes a 64×64 tile of C, 4×4 outputs per thread.
//
// The K axis is walked in steps of TILE_K = 16. At each step the workgroup copies a 64×16 slice
// of op(A) and a 16×64 slice of op(B) into workgroup memory (each thread copies 4 elements of
// each), waits at a barrier, then every thread does 16 rank-1 updates of its 4×4 block from the
// shared copies. Each global element is thus fetched once per workgroup instead of once per
// thread: 64× less global traffic than the naive kernel along each axis.
//
// Thread (tx, ty) owns rows ty + 16·i and columns tx + 16·j (i, j = 0..3) of the tile, strided
// rather than a contiguous 4×4 block, so that neighbouring threads read neighbouring words of
// workgroup memory (no bank conflicts) and write neighbouring words of C (coalesced stores).
//
// Every M, N, K works, not just multiples of the tile: loads outside the matrices write zeros into
// the tile (a zero contributes nothing to the dot product) and stores outside C are skipped.
// No thread returns early, because all of them must reach every barrier.
// ---------------------------------------------------------------------------------------------

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u;                   // 16 × 16
const THREAD_ROWS: u32 = 16u;                // TILE_M / 4: row stride between a thread's 4 rows
const THREAD_COLS: u32 = 16u;                // TILE_N / 4: column stride between its 4 columns

// a_tile[k][m] = op(A)[m0 + m, k0 + k];  b_tile[k][n] = op(B)[k0 + k, n0 + n].
// Both are k-major so the inner loop reads a row of each. 2 × 16 × 64 × 4 B = 8 KiB in all.
var<workgroup> a_tile: array<array<f32, TILE_M>, TILE_K>;
var<workgroup> b_tile: array<array<f32, TILE_N>, TILE_K>;

// Copy op(A)[m0.., k0..] into a_tile, zero outside A. 64×16 = 1024 elements, 4 per thread.
// Consecutive threads take consecutive addresses of A as it is stored (k fastest for [M, K],
// m fastest for [K, M]) so a real GPU merges their loads into few memory transactions.
fn load_a_tile(a_base: u32, m0: u32, k0: u32, lid: u32) {
    for (var i = 0u; i < TILE_M * TILE_K / THREADS; i++) {
        let e = i * THREADS + lid;
        var m = e / TILE_K;
        var k = e % TILE_K;
        if (params.trans_a != 0u) {
            m = e % TILE_M;
            k = e / TILE_M;
        }
        var v = 0.0;
        if (m0 + m < params.M && k0 + k < params.K) {
            v = a_at(a_base, m0 + m, k0 + k);
        }
        a_tile[k][m] = v;
    }
}

// Copy op(B)[k0.., n0..] into b_tile, zero outside B; n fastest for [K, N], k fastest for [N, K].
fn load_b_tile(b_base: u32, k0: u32, n0: u32, lid: u32) {
    for (var i = 0u; i < TILE_K * TILE_N / THREADS; i++) {
        let e = i * THREADS + lid;
        var k = e / TILE_N;
        var n = e % TILE_N;
        if (params.trans_b != 0u) {
            k = e % TILE_K;
            n = e / TILE_K;
        }
        var v = 0.0;
        if (k0 + k < params.K && n0 + n < params.N) {
            v = b_at(b_base, k0 + k, n0 + n);
        }
        b_tile[k][n] = v;
    }
}

// Write C[batch, m, n] (c_base: the batch's first element) through the epilogue, unless it lies
// outside C. Every kernel stores through here.
fn store_one(c_base: u32, m: u32, n: u32, dot: f32) {
    if (m >= params.M || n >= params.N) { return; }
    let i = c_base + m * params.N + n;
    let v = with_bias(dot, n);
    if (EPILOGUE == EPILOGUE_GELU) {
        aux[i] = v;
        c[i] = gelu_exact(v);
    } else if (EPILOGUE == EPILOGUE_GELU_GRAD) {
        c[i] = v * gelu_exact_grad(aux[i]);
    } else {
        c[i] = v;
    }
}

// Write one of a thread's rows: acc holds its 4 columns n, n + 16, n + 32, n + 48.
fn store_row(c_base: u32, m: u32, n: u32, acc: vec4<f32>) {
    store_one(c_base, m, n, acc.x);
    store_one(c_base, m, n + THREAD_COLS, acc.y);
    store_one(c_base, m, n + 2u * THREAD_COLS, acc.z);
    store_one(c_base, m, n + 3u * THREAD_COLS, acc.w);
}

@compute @workgroup_size(THREAD_COLS, THREAD_ROWS, 1)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let tx = local.x;
    let ty = local.y;
    let batch = wid.z;
    let m0 = wid.y * TILE_M;   // first row of C in this tile
    let n0 = wid.x * TILE_N;   // first column
    let a_base = batch * params.a_batch_stride;
    let b_base = batch * params.b_batch_stride;

    // The 4×4 register tile: acc_i holds row ty + 16·i, its components the 4 columns.
    // Four named vec4s rather than an array<vec4<f32>, 4> indexed in a loop: on lavapipe, which
    // runs a workgroup as 8-wide CPU SIMD, a dynamically indexed private array is spilled to
    // memory, and every update becomes a load and a store; named vectors stay in registers.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    // The trip count depends only on params, so every thread takes the same path to each barrier.
    for (var k0 = 0u; k0 < params.K; k0 += TILE_K) {
        load_a_tile(a_base, m0, k0, lid);
        load_b_tile(b_base, k0, n0, lid);
        workgroupBarrier();   // tiles complete before anyone reads them

        for (var k = 0u; k < TILE_K; k++) {
            // Column k of this thread's 4 rows of op(A), row k of its 4 columns of op(B).
            let av = vec4<f32>(a_tile[k][ty], a_tile[k][ty + THREAD_ROWS],
                               a_tile[k][ty + 2u * THREAD_ROWS], a_tile[k][ty + 3u * THREAD_ROWS]);
            let bv = vec4<f32>(b_tile[k][tx], b_tile[k][tx + THREAD_COLS],
                               b_tile[k][tx + 2u * THREAD_COLS], b_tile[k][tx + 3u * THREAD_COLS]);
            // Rank-1 update of the 4×4 block: acc_i += av[i] · bv.
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();   // everyone done reading before the next step overwrites the tiles
    }

    let c_base = batch * params.M * params.N;
    store_row(c_base, m0 + ty, n0 + tx, acc0);
    store_row(c_base, m0 + ty + THREAD_ROWS, n0 + tx, acc1);
    store_row(c_base, m0 + ty + 2u * THREAD_ROWS, n0 + tx, acc2);
    store_row(c_base, m0 + ty + 3u * THREAD_ROWS, n0 + tx, acc3);
}
