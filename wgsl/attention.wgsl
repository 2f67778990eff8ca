// Fused attention, flash style: O = softmax(s·Q·Kᵀ)·V without ever storing the T×T matrix,
// forward and backward (FlashAttention-2's schedule).
//
// Per (batch, head), with K, V: [T, hd], Q, O, dO: [Tq, hd] and s = 1/√hd (Tq = T where every
// row asks; fewer where only some rows' outputs are read, as under VPT-deep, whose next block
// overwrites the prompt rows and whose last block's head reads CLS alone):
//
//   forward:   S = s·Q·Kᵀ,  P = softmax(S) row by row,  O = P·V
//              L_i = m_i + log l_i, the row's log-sum-exp (m_i = max_j S_ij, l_i = Σ_j exp(S_ij − m_i))
//   backward:  P_ij = exp(S_ij − L_i)                       recomputed from Q, K and the saved L
//              D_i  = Σ_e dO_ie·O_ie  (= Σ_j P_ij·dP_ij)     attention_backward_rowdot
//              dP   = dO·Vᵀ,  dS_ij = P_ij·(dP_ij − D_i)
//              dV   = Pᵀ·dO,  dK = s·dSᵀ·Q                   attention_backward_dkdv, per key row,
//                                                            which also stores s·dS [Tq, T]
//              dQ   = (s·dS)·K                              a matmul (`kernels/attention.rs`),
//                                   or attention_backward_dq, per query row, where s·dS is not stored;
//                                   on a CPU adapter with SUBGROUP the matmul makes dQᵀ and
//                                   attention_backward_dq_untranspose (wgsl/lib/attention_subgroup.wgsl)
//                                   turns it the right way
//
// The forward streams K and V past each query row and keeps, per row, a running max m, a
// running sum l and an unnormalised output (the online softmax): when a new tile raises the max
// from m to m', everything so far is multiplied by exp(m − m') — that is all it takes to stay
// exact. What the backward gets from the forward is O and L: T values per row instead of T².
// WGSL has no floating-point atomics, so each output row is owned by exactly one invocation,
// which loops over the other side's rows: dkdv owns key rows and cannot also sum dQ over them.
// FlashAttention-2's own dQ kernel per query row computed S and dP a second time (14·T²·hd
// multiply-adds per head in all, 3.5× the forward's 4); instead dkdv stores s·dS, [T, T] per
// head for the one block whose backward runs, and dQ is a matmul: 10·T²·hd. Measured on lavapipe
// at ViT-B/16 batch 8 (`cargo run --release --example step_profile`): the dq kernel took 267 ms
// per block, 44% of the backward's 604 ms; the matmul takes 61 ms. The dq kernel stays for what
// the matmul cannot take (s·dS over one storage binding, or B·H past one grid axis), where the
// backward stores nothing of T².
//
// Layouts: k, v, dk, dv: [B·H, T, hd] (what split_heads makes); q, o, dout, dq: [B·H, Tq, hd];
// lse: [B·H, Tq]; stats: [B·H, Tq, 2], each query row's (L, D), one binding so that dkdv binds 8
// storage buffers, the WebGPU default; ds: [B·H, Tq, T] (one f32 where not stored). Any T and
// Tq (a head's last tile is partial: its rows past the end repeat the last row and are masked),
// hd from 1 to 4·MAX_QUADS = 128. A query row asked for nothing costs nothing: its dO is 0, so
// it adds nothing to dK and dV, and it need not be in Q at all.
//
// The kernels read and write the [T, hd] matrices a quad at a time: quad j of a row is its
// columns 4j … 4j + 3, through q_at, k_at, v_at, dout_at, o_saved_at and o_put, dk_put, dv_put,
// dq_put, which a library file prepended to this one defines (WGSL has no #include):
//   wgsl/lib/attention_quads.wgsl    binds the matrices as vec4s, one load per quad; for heads
//                                    whose width is a multiple of 4 (every ViT: hd = 64 or 80)
//   wgsl/lib/attention_scalars.wgsl  binds them as f32s, a quad is four loads, the columns past
//                                    hd read as 0 and are never written; any hd
// The same kernels over the same quads, so the same sums in the same order either way.
//
// How the work is split, and why. Each invocation owns 4 rows of its side (query rows in the
// forward, key rows in dkdv) and holds a value of each in one vec4 — "a vec4 over rows".
// The other side streams past 8 or 16 rows at a time, and the scores of the 4 × 16 (or 4 × 8)
// pairs accumulate in mat4x4 registers. Along hd they advance a quad at a time: the 4 rows'
// quads j, transposed (which only renames registers), times a key block's 4 quads is one mat4x4
// product, 64 multiply-adds for 8 loads. No workgroup memory and no barriers. Measured on
// lavapipe (2 CPU cores, the only adapter measured so far), ViT-B/16 shapes at batch 1
// (`vpt bench --preset vit-b --batch 1 --filter attention`), forward:
//   tiles of 16×16 score pairs shared in workgroup memory, a dot product of two
//     workgroup-memory reads per multiply-add (FlashAttention's textbook layout)   164 ms
//   one query row per invocation, K and V staged in workgroup memory               93 ms
//   the same, K and V read straight from memory, scores in an array                50 ms
//   4 rows per invocation, scores in mat4x4 registers, one float per load          14 ms
//   the unfused path: matmul (reg32x8) → softmax → matmul (reg16x8)                20 ms
// and on 2026-12-06, three interleaved rounds (medians of 5; the fastest of each in brackets):
//   one float per load                                      24.7, 23.6, 23.1 ms  (22.5–22.7)
//   a quad per load, the rows' own quads read once (this file)   13.9, 23.7, 15.0 ms  (13.7–14.4)
// lavapipe runs 8 invocations in the lanes of one SIMD register, and llvmpipe compiles a load
// from a storage buffer into a loop over those 8 lanes, whether they read one address or eight
// (`emit_load_mem` in Mesa 21.3's gallivm/lp_bld_nir_soa.c; the timings here, on Mesa 22.3, fit
// it): a vec4 load costs little more than one float. So what paid was reading each value once
// for several multiply-adds and keeping the scores in named registers — as the register-tiled
// matmuls do. At ViT-B/16 batch 8 (`vpt bench --preset vit-b --batch 8 --filter
// "attention fwd fused,attention bwd fused" --reps 5`, three interleaved rounds, the medians'
// median), one float per load → a quad per load: forward 199.6 → 128.0 ms, backward (dQ by
// matmul) 442.2 → 365.8, backward with the dq kernel 677.6 → 473.9 (with the arrays below);
// as this file is, without them, two earlier interleaved rounds: forward 189.3 → 119.5 and
// 203.4 → 127.0 ms, backward 523.9 → 371.6 and 456.2 → 353.4.
// Where the adapter has subgroups, the forward, dkdv and dq kernels run from the build with
// wgsl/lib/attention_subgroup.wgsl in front (`attention_forward_sg`, …): the rows streaming past
// are the same for every invocation of a workgroup, so each lane loads one quad of them and the
// others take it by subgroupShuffle; the sums are these kernels', in the same order (the same
// bits, `tests/kernels/attention.rs`). On lavapipe, ViT-B/16 batch 8 (`vpt bench --preset vit-b
// --batch 8 --filter "attention fwd fused,attention bwd fused" --reps 3`, two rounds against the
// build without them, medians): forward 194.0, 204.2 → 86.5, 64.4 ms (a third run 80.9, 59.5);
// backward with dQ by matmul 368.6, 367.4 → 238.1, 233.8 ms; in a step's profile (`cargo run
// --release --example step_profile -- vit-b 8`) the forward 110.4 → 55.9 ms and dkdv
// 295.7 → 173.4 ms per block.
// Tried and not kept: reading the invocation's own 4 rows' quads once, into an array of
// mat4x4s before the loops, rather than at every step. It paid 3% in the forward and 8% in dkdv
// (326–341 against 353–368 ms at best) and cost 3–6% in dq, but lavapipe then took 6× as long
// to compile the kernels (133 against 22 s for `vpt bench --filter "attention fwd
// fused,attention bwd fused" --reps 1` with MESA_SHADER_CACHE_DISABLE=true, the same as before
// the quads without them), more than the cold CI run can spare. On a real GPU the
// per-invocation arrays (2 × [MAX_QUADS] mat4x4s, 4 KiB) live in scratch memory; a GPU-shaped
// variant (workgroup tiles, subgroup reductions) should be chosen by measurement on one. The
// subgroup build's shuffles were measured on lavapipe only.
// Tried and not kept, 2026-12-07: the subgroup forward's output rows held in 16 named mat4x4s
// (hd = 64, the steps unrolled by hand) rather than the array `o_rows` indexed by the step, so
// that no index is dynamic. Slower on lavapipe: 86.4 and 115.5 ms against 54.4 and 53.9 for the
// array (`vpt bench --preset vit-b --batch 8 --filter "attention fwd fused" --reps 3`, two
// interleaved rounds); 256 live floats a lane spill worse than the array's loads and stores.

struct Params {
    batch_heads: u32,  // B·H
    tokens: u32,       // T, the rows of K and V (the keys)
    queries: u32,      // Tq, the rows of Q, O and dO (T where every row asks; fewer where only some are read)
    head_dim: u32,     // hd
    scale: f32,        // s = 1/√hd
    store_ds: u32,     // dkdv: 1 to store s·dS for dQ's matmul, 0 where the dq kernel runs
}

// The [T, hd] matrices (q, k, v, o, o_saved, dout, dk, dv, dq) are declared by the library file
// in front of this one; these are the per-row values, always f32.
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;     // forward output L
@group(0) @binding(7) var<storage, read> lse_saved: array<f32>;     // backward: the forward's L
@group(0) @binding(9) var<storage, read_write> stats: array<f32>;   // rowdot output (L, D)
@group(0) @binding(10) var<storage, read> stats_saved: array<f32>;  // (L, D), read by dkdv and dq
@group(0) @binding(11) var<storage, read_write> ds: array<f32>;     // dkdv output s·dS

// Invocations per workgroup of the forward, dkdv and dq kernels, 4 rows each, set by the launcher
// (`kernels::row_workgroup_threads`): 8 on a CPU adapter, 64 elsewhere. Each invocation's sums
// do not depend on it. What it changes is how many invocations run idle past a head's last row,
// which lavapipe runs all the same: at Tq = 197 (ViT-B/16's rows read under 50 deep prompts, 50
// invocations' worth) 14 of one workgroup of 64, against 6 of seven of 8; at Tq = 1 (CLS, the
// last block's only query) 63 against 7. Measured on lavapipe (Vulkan), `cargo run --release
// --example step_profile -- vit-b 8`, two interleaved rounds, 64 → 8: the step's 12 forwards
// 663.3 → 551.8 and 674.3 → 573.6 ms, dkdv 1281.9 → 1231.1 and 1283.5 → 1284.5 ms (T = 247:
// 2 of 64 idle). 64 on a GPU is the value lavapipe chose before; no GPU has measured it.
override ROWS_WG: u32 = 64u;
const TILE: u32 = 16u;                // keys per step of the forward
const MAX_QUADS: u32 = 32u;           // widest head, in quads (128 columns): the per-row accumulators hold this many mat4x4s
const LOWEST: f32 = -3.4028234663852886e38;   // max() identity: −f32::MAX exactly (WGSL has no −∞ literal; Tint rejects -3.40282347e38, just past f32::MAX, which naga rounds)

// Which rows this workgroup owns (`per_workgroup` of one head). Workgroups are laid out in x then
// y (one grid axis holds at most 65535); the few past the end return at once.
struct Rows {
    bh: u32,     // b·H + h
    first: u32,  // the workgroup's first row
    valid: bool,
}

fn rows_of(wid: vec3<u32>, nwg: vec3<u32>, per_workgroup: u32, head_rows: u32) -> Rows {
    let index = wid.y * nwg.x + wid.x;
    let per_head = (head_rows + per_workgroup - 1u) / per_workgroup;
    let bh = index / per_head;
    return Rows(bh, (index % per_head) * per_workgroup, bh < params.batch_heads);
}

// Rows r0 … r0 + 15 of head bh, whose matrix has n rows (T for K and V, Tq for Q and dO), as
// rows of [B·H·n, hd] (what the _at and _put functions take), the last real row repeated past n
// (so every read is in bounds; those scores are masked).
fn tile_rows(bh: u32, r0: u32, n: u32) -> array<u32, 16> {
    var at: array<u32, 16>;
    for (var j = 0u; j < 16u; j++) { at[j] = bh * n + min(r0 + j, n - 1u); }
    return at;
}

// Column c of a score block (keys k0 + c), with LOWEST for a key past T so that exp(· − m) = 0.
fn masked(s: vec4<f32>, key: u32, t: u32) -> vec4<f32> {
    return select(vec4<f32>(LOWEST), s, key < t);
}

// Quads j of 4 rows as the columns of a mat4x4: column r is row at[first + r]'s quad.
fn q_block(at: array<u32, 16>, first: u32, j: u32) -> mat4x4<f32> {
    return mat4x4<f32>(q_at(at[first], j), q_at(at[first + 1u], j), q_at(at[first + 2u], j), q_at(at[first + 3u], j));
}
fn k_block(at: array<u32, 16>, first: u32, j: u32) -> mat4x4<f32> {
    return mat4x4<f32>(k_at(at[first], j), k_at(at[first + 1u], j), k_at(at[first + 2u], j), k_at(at[first + 3u], j));
}
fn v_block(at: array<u32, 16>, first: u32, j: u32) -> mat4x4<f32> {
    return mat4x4<f32>(v_at(at[first], j), v_at(at[first + 1u], j), v_at(at[first + 2u], j), v_at(at[first + 3u], j));
}
fn dout_block(at: array<u32, 16>, first: u32, j: u32) -> mat4x4<f32> {
    return mat4x4<f32>(dout_at(at[first], j), dout_at(at[first + 1u], j), dout_at(at[first + 2u], j), dout_at(at[first + 3u], j));
}

// Each column of m times the same vec4 over rows (a per-row scale; m * v would be a product).
fn scale_rows(m: mat4x4<f32>, by: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(m[0] * by, m[1] * by, m[2] * by, m[3] * by);
}

// 4 rows' scores against a tile of 16 keys: column c of `a` is key k0 + c, of `b` key k0 + 4 + c,
// and so on; each column a vec4 over the 4 rows.
struct Scores { a: mat4x4<f32>, b: mat4x4<f32>, c: mat4x4<f32>, d: mat4x4<f32> }

// One tile's step of the online softmax: P in place of the scores, the rows' new running max m
// and sum l, and exp(m_old − m), what the output so far is multiplied by.
struct SoftmaxStep { p: Scores, m: vec4<f32>, l: vec4<f32>, rescale: vec4<f32> }

// From the raw products Q·Kᵀ of a tile (keys k0 …), per row: S = s·(Q·Kᵀ), masked past T;
// m' = max(m, max_j S_j), P_j = exp(S_j − m'), l' = l·exp(m − m') + Σ_j P_j. The first tile has
// m = LOWEST, so exp(m − m') = 0.
fn softmax_step(raw: Scores, m: vec4<f32>, l: vec4<f32>, k0: u32) -> SoftmaxStep {
    let t = params.tokens;
    var s = Scores(params.scale * raw.a, params.scale * raw.b, params.scale * raw.c, params.scale * raw.d);
    for (var c = 0u; c < 4u; c++) {
        s.a[c] = masked(s.a[c], k0 + c, t);
        s.b[c] = masked(s.b[c], k0 + 4u + c, t);
        s.c[c] = masked(s.c[c], k0 + 8u + c, t);
        s.d[c] = masked(s.d[c], k0 + 12u + c, t);
    }
    var m_new = m;
    for (var c = 0u; c < 4u; c++) { m_new = max(m_new, max(max(s.a[c], s.b[c]), max(s.c[c], s.d[c]))); }
    var sum = vec4<f32>();
    for (var c = 0u; c < 4u; c++) {
        s.a[c] = exp(s.a[c] - m_new);
        s.b[c] = exp(s.b[c] - m_new);
        s.c[c] = exp(s.c[c] - m_new);
        s.d[c] = exp(s.d[c] - m_new);
        sum += s.a[c] + s.b[c] + s.c[c] + s.d[c];
    }
    let rescale = exp(m - m_new);
    return SoftmaxStep(s, m_new, l * rescale + sum, rescale);
}

// ---------------------------------------------------------------------------------------------
// Forward: one invocation per 4 query rows; K and V stream past, TILE = 16 keys at a time. The
// 4 rows × 16 keys of scores live in four mat4x4 (column c of sa is key k0 + c, of sb key
// k0 + 4 + c, …), each column a vec4 over the 4 rows. With qt = the rows' quads j transposed
// (column c: column 4j + c of the 4 rows) and K's block of 4 quads j, qt · K_block adds column
// block j's part of all 16 scores of those 4 keys.
// ---------------------------------------------------------------------------------------------
@compute @workgroup_size(ROWS_WG)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let t = params.tokens;
    let tq = params.queries;
    let quads = head_quads();
    let rows = rows_of(wid, nwg, ROWS_WG * 4u, tq);
    if (!rows.valid) { return; }
    let row0 = rows.first + 4u * lid;
    if (row0 >= tq) { return; }  // no barriers below: idle invocations may leave
    let at = tile_rows(rows.bh, row0, tq);  // the 4 query rows (entries 0..3)
    // O·l of the 4 rows, quad j as a mat4x4 whose column c is column 4j + c; normalised at the end.
    var o_rows: array<mat4x4<f32>, MAX_QUADS>;
    for (var j = 0u; j < quads; j++) { o_rows[j] = mat4x4<f32>(); }
    var m = vec4<f32>(LOWEST);  // running max of each row's scores
    var l = vec4<f32>();        // running Σ exp(score − m)

    for (var k0 = 0u; k0 < t; k0 += TILE) {
        let kv = tile_rows(rows.bh, k0, t);
        var sa = mat4x4<f32>();
        var sb = mat4x4<f32>();
        var sc = mat4x4<f32>();
        var sd = mat4x4<f32>();
        for (var j = 0u; j < quads; j++) {
            let qt = transpose(q_block(at, 0u, j));
            sa += qt * k_block(kv, 0u, j);
            sb += qt * k_block(kv, 4u, j);
            sc += qt * k_block(kv, 8u, j);
            sd += qt * k_block(kv, 12u, j);
        }
        let step = softmax_step(Scores(sa, sb, sc, sd), m, l, k0);
        m = step.m;
        l = step.l;
        // O·l ← O·l·exp(m − m') + P·V, a quad of columns at a time: P's 4 × 4 block of keys times
        // V's block of their quads j, transposed (row c: column 4j + c of the 4 keys).
        for (var j = 0u; j < quads; j++) {
            o_rows[j] = scale_rows(o_rows[j], step.rescale)
                + step.p.a * transpose(v_block(kv, 0u, j)) + step.p.b * transpose(v_block(kv, 4u, j))
                + step.p.c * transpose(v_block(kv, 8u, j)) + step.p.d * transpose(v_block(kv, 12u, j));
        }
    }

    // O = O·l / l (l ≥ 1: the max term is 1), L = m + log l; rows past Tq write nothing.
    let lse_row = m + log(l);
    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < tq) {
            for (var j = 0u; j < quads; j++) { o_put(at[r], j, transpose(o_rows[j])[r] / l[r]); }
            lse[at[r]] = lse_row[r];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward, step 1: D_i = Σ_e dO_ie·O_ie, stored beside L_i, one thread per row of [B·H·T]
// (flat launch).
// ---------------------------------------------------------------------------------------------
@compute @workgroup_size(WG)
fn attention_backward_rowdot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let row = flat_index(wid, nwg, lid);
    if (row >= params.batch_heads * params.queries) { return; }
    var sum = vec4<f32>();
    for (var j = 0u; j < head_quads(); j++) { sum += dout_at(row, j) * o_saved_at(row, j); }
    stats[2u * row] = lse_saved[row];
    stats[2u * row + 1u] = (sum.x + sum.y) + (sum.z + sum.w);
}

// s·dS of query row i for the 4 keys from row0 into ds [B·H, Tq, T]: row i, columns row0 … row0 + 3,
// those below T.
fn store_ds(bh: u32, i: u32, row0: u32, scaled: vec4<f32>) {
    let t = params.tokens;
    if (params.store_ds == 0u || i >= params.queries) { return; }
    let at = (bh * params.queries + i) * t + row0;
    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < t) { ds[at + r] = scaled[r]; }
    }
}

// P and dS of 4 keys against 8 queries (column c of `pa`, `dsa`: query q0 + c; of `pb`, `dsb`:
// query q0 + 4 + c), 0 for a query past Tq.
struct KeySide { pa: mat4x4<f32>, pb: mat4x4<f32>, dsa: mat4x4<f32>, dsb: mat4x4<f32> }

// From the raw products Q·Kᵀ (sa, sb) and dO·Vᵀ (pa, pb): P = exp(s·S − L_i) and
// dS = P·(dP − D_i), with s·dS stored for dQ's matmul (`store_ds`).
fn key_side(sa: mat4x4<f32>, sb: mat4x4<f32>, pa: mat4x4<f32>, pb: mat4x4<f32>, bh: u32, qs: array<u32, 16>, q0: u32, row0: u32) -> KeySide {
    let tq = params.queries;
    var g: KeySide;
    for (var c = 0u; c < 4u; c++) {
        let ia = 2u * qs[c];
        let ib = 2u * qs[4u + c];
        let keep_a = select(0.0, 1.0, q0 + c < tq);
        let keep_b = select(0.0, 1.0, q0 + 4u + c < tq);
        g.pa[c] = keep_a * exp(params.scale * sa[c] - stats_saved[ia]);
        g.pb[c] = keep_b * exp(params.scale * sb[c] - stats_saved[ib]);
        g.dsa[c] = g.pa[c] * (pa[c] - stats_saved[ia + 1u]);
        g.dsb[c] = g.pb[c] * (pb[c] - stats_saved[ib + 1u]);
    }
    for (var c = 0u; c < 4u; c++) {
        store_ds(bh, q0 + c, row0, params.scale * g.dsa[c]);
        store_ds(bh, q0 + 4u + c, row0, params.scale * g.dsb[c]);
    }
    return g;
}

// ---------------------------------------------------------------------------------------------
// Backward, step 2: dK and dV, one invocation per 4 key rows (a vec4 "over keys" holds one value
// of each); Q and dO stream past, 8 query rows at a time (16, with eight score matrices, took
// 734 ms against 414 at ViT-B/16 batch 8 on lavapipe: the registers spill; the subgroup build's
// attention_backward_dkdv_sg takes 16 as two of these steps, which paid there). Each query row i
// gives, for the 4 keys:
// S_i = ⟨Q_i, K⟩, dP_i = ⟨dO_i, V⟩ (columns of sa, sb and pa, pb), P_i = exp(s·S_i − L_i),
// dS_i = P_i·(dP_i − D_i); then dV += Σ_i P_i·dO_i and dK += s·Σ_i dS_i·Q_i, a quad of columns
// at a time, and s·dS_i is stored for dQ's matmul (where `store_ds`): the 4 keys' entries of
// row i of ds.
// ---------------------------------------------------------------------------------------------
@compute @workgroup_size(ROWS_WG)
fn attention_backward_dkdv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let t = params.tokens;
    let tq = params.queries;
    let quads = head_quads();
    let rows = rows_of(wid, nwg, ROWS_WG * 4u, t);
    if (!rows.valid) { return; }
    let row0 = rows.first + 4u * lid;
    if (row0 >= t) { return; }
    let at = tile_rows(rows.bh, row0, t);  // the 4 key rows (entries 0..3)
    var dk_rows: array<mat4x4<f32>, MAX_QUADS>;  // quad j: column c is column 4j + c of the 4 keys
    var dv_rows: array<mat4x4<f32>, MAX_QUADS>;
    for (var j = 0u; j < quads; j++) { dk_rows[j] = mat4x4<f32>(); dv_rows[j] = mat4x4<f32>(); }

    for (var q0 = 0u; q0 < tq; q0 += 8u) {
        let qs = tile_rows(rows.bh, q0, tq);  // entries 0..7: the query rows
        var sa = mat4x4<f32>();  // column c: S of query q0 + c for the 4 keys
        var sb = mat4x4<f32>();  // column c: query q0 + 4 + c
        var pa = mat4x4<f32>();  // the same for dP
        var pb = mat4x4<f32>();
        for (var j = 0u; j < quads; j++) {
            let kt = transpose(k_block(at, 0u, j));
            let vt = transpose(v_block(at, 0u, j));
            sa += kt * q_block(qs, 0u, j);
            sb += kt * q_block(qs, 4u, j);
            pa += vt * dout_block(qs, 0u, j);
            pb += vt * dout_block(qs, 4u, j);
        }
        let g = key_side(sa, sb, pa, pb, rows.bh, qs, q0, row0);
        // Quad j of dV and dK for the 4 keys: P (or dS) [4 keys × 8 queries] times the queries'
        // quads j of dO (or Q), transposed.
        for (var j = 0u; j < quads; j++) {
            dv_rows[j] += g.pa * transpose(dout_block(qs, 0u, j)) + g.pb * transpose(dout_block(qs, 4u, j));
            dk_rows[j] += params.scale * (g.dsa * transpose(q_block(qs, 0u, j)) + g.dsb * transpose(q_block(qs, 4u, j)));
        }
    }

    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < t) {
            for (var j = 0u; j < quads; j++) {
                dk_put(at[r], j, transpose(dk_rows[j])[r]);
                dv_put(at[r], j, transpose(dv_rows[j])[r]);
            }
        }
    }
}

// dS of 4 query rows against 8 keys (column c of `a`: key k0 + c; of `b`: key k0 + 4 + c).
struct QuerySide { a: mat4x4<f32>, b: mat4x4<f32> }

// From the raw products Q·Kᵀ (sa, sb) and dO·Vᵀ (pa, pb) and the rows' L and D:
// dS = P·(dP − D) with P = exp(s·S − L); 0 for a key past T.
fn query_side(sa: mat4x4<f32>, sb: mat4x4<f32>, pa: mat4x4<f32>, pb: mat4x4<f32>, lse_rows: vec4<f32>, delta_rows: vec4<f32>, k0: u32) -> QuerySide {
    let t = params.tokens;
    var ds: QuerySide;
    for (var c = 0u; c < 4u; c++) {
        let keep_a = select(0.0, 1.0, k0 + c < t);
        let keep_b = select(0.0, 1.0, k0 + 4u + c < t);
        ds.a[c] = keep_a * exp(params.scale * sa[c] - lse_rows) * (pa[c] - delta_rows);
        ds.b[c] = keep_b * exp(params.scale * sb[c] - lse_rows) * (pb[c] - delta_rows);
    }
    return ds;
}

// The rows' (L, D), each a vec4 over the 4 rows `at[0..3]`.
fn rows_stats(at: array<u32, 16>, which: u32) -> vec4<f32> {
    return vec4<f32>(stats_saved[2u * at[0] + which], stats_saved[2u * at[1] + which], stats_saved[2u * at[2] + which], stats_saved[2u * at[3] + which]);
}

// ---------------------------------------------------------------------------------------------
// Backward, step 3 where s·dS was not stored (it would not fit one binding, or B·H one grid axis
// of the matmul): dQ, one invocation per 4 query rows; K and V stream past, 8 keys at a time.
// Column c of sa, sb holds S for key k0 + c (k0 + 4 + c) and the 4 rows, of pa, pb dP; then
// dS = P·(dP − D) with P = exp(s·S − L), and dQ += s·Σ_j dS_j·K_j, a quad of columns at a time.
// ---------------------------------------------------------------------------------------------
@compute @workgroup_size(ROWS_WG)
fn attention_backward_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let t = params.tokens;
    let tq = params.queries;
    let quads = head_quads();
    let rows = rows_of(wid, nwg, ROWS_WG * 4u, tq);
    if (!rows.valid) { return; }
    let row0 = rows.first + 4u * lid;
    if (row0 >= tq) { return; }
    let at = tile_rows(rows.bh, row0, tq);  // the 4 query rows (entries 0..3)
    let lse_rows = rows_stats(at, 0u);
    let delta_rows = rows_stats(at, 1u);
    var dq_rows: array<mat4x4<f32>, MAX_QUADS>;  // quad j: column c is column 4j + c of the 4 rows
    for (var j = 0u; j < quads; j++) { dq_rows[j] = mat4x4<f32>(); }

    for (var k0 = 0u; k0 < t; k0 += 8u) {
        let kv = tile_rows(rows.bh, k0, t);  // entries 0..7: the key rows
        var sa = mat4x4<f32>();
        var sb = mat4x4<f32>();
        var pa = mat4x4<f32>();
        var pb = mat4x4<f32>();
        for (var j = 0u; j < quads; j++) {
            let qt = transpose(q_block(at, 0u, j));
            let dt = transpose(dout_block(at, 0u, j));
            sa += qt * k_block(kv, 0u, j);
            sb += qt * k_block(kv, 4u, j);
            pa += dt * v_block(kv, 0u, j);
            pb += dt * v_block(kv, 4u, j);
        }
        let ds = query_side(sa, sb, pa, pb, lse_rows, delta_rows, k0);
        for (var j = 0u; j < quads; j++) {
            dq_rows[j] += params.scale * (ds.a * transpose(k_block(kv, 0u, j)) + ds.b * transpose(k_block(kv, 4u, j)));
        }
    }

    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < tq) {
            for (var j = 0u; j < quads; j++) { dq_put(at[r], j, transpose(dq_rows[j])[r]); }
        }
    }
}
