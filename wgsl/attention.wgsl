// Fused attention, flash style: O = softmax(s·Q·Kᵀ)·V without ever storing the T×T matrix,
// forward and backward (FlashAttention-2's schedule).
//
// Per (batch, head), with Q, K, V, O, dO: [T, hd] and s = 1/√hd:
//
//   forward:   S = s·Q·Kᵀ,  P = softmax(S) row by row,  O = P·V
//              L_i = m_i + log l_i, the row's log-sum-exp (m_i = max_j S_ij, l_i = Σ_j exp(S_ij − m_i))
//   backward:  P_ij = exp(S_ij − L_i)                       recomputed from Q, K and the saved L
//              D_i  = Σ_e dO_ie·O_ie  (= Σ_j P_ij·dP_ij)     attention_backward_rowdot
//              dP   = dO·Vᵀ,  dS_ij = P_ij·(dP_ij − D_i)
//              dV   = Pᵀ·dO,  dK = s·dSᵀ·Q                   attention_backward_dkdv, per key row,
//                                                            which also stores s·dS [T, T]
//              dQ   = (s·dS)·K                              a matmul (`kernels/attention.rs`),
//                                   or attention_backward_dq, per query row, where s·dS is not stored
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
// Layouts: q, k, v, o, dout, dk, dv: [B·H, T, hd] (what split_heads makes); lse: [B·H, T];
// stats: [B·H, T, 2], each row's (L, D), one binding so that dkdv binds 8 storage buffers, the
// WebGPU default; ds: [B·H, T, T] (one f32 where not stored). Any T (a head's last tile is
// partial: its rows past T repeat row T − 1 and are masked), hd from 1 to MAX_HD.
//
// How the work is split, and why. Each invocation owns 4 rows of its side (query rows in the
// forward, key rows in dkdv) and holds a value of each in one vec4 — "a vec4 over rows".
// The other side streams past 8 or 16 rows at a time, and the scores of the 4 × 16 (or 4 × 8)
// pairs accumulate in mat4x4 registers: every value read from memory serves 4 multiply-adds,
// and nothing is indexed at run time but the per-row accumulators over hd. No workgroup memory
// and no barriers. Measured on lavapipe (2 CPU cores, the only adapter measured so far), ViT-B/16
// shapes at batch 1 (`vpt bench --preset vit-b --batch 1 --filter attention`), forward:
//   tiles of 16×16 score pairs shared in workgroup memory, a dot product of two
//     workgroup-memory reads per multiply-add (FlashAttention's textbook layout)   164 ms
//   one query row per invocation, K and V staged in workgroup memory               93 ms
//   the same, K and V read straight from memory, scores in an array                50 ms
//   4 rows per invocation, scores in mat4x4 registers (this file)                  14 ms
//   the unfused path: matmul (reg32x8) → softmax → matmul (reg16x8)                20 ms
// lavapipe runs 8 invocations in the lanes of one SIMD register; a read whose address differs by
// lane is a gather, and an array indexed at run time lives in memory, so what paid was reading
// each value once for several multiply-adds and keeping the scores in named registers — as the
// register-tiled matmuls do. On a real GPU the per-invocation accumulators ([MAX_HD] vec4s) live
// in scratch memory; a GPU-shaped variant (workgroup tiles, subgroup reductions) should be
// chosen by measurement on one.

struct Params {
    batch_heads: u32,  // B·H
    tokens: u32,       // T
    head_dim: u32,     // hd
    scale: f32,        // s = 1/√hd
    store_ds: u32,     // dkdv: 1 to store s·dS for dQ's matmul, 0 where the dq kernel runs
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;       // forward output
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;     // forward output L
@group(0) @binding(6) var<storage, read> o_saved: array<f32>;       // backward: the forward's O
@group(0) @binding(7) var<storage, read> lse_saved: array<f32>;     // backward: the forward's L
@group(0) @binding(8) var<storage, read> dout: array<f32>;          // backward: dO
@group(0) @binding(9) var<storage, read_write> stats: array<f32>;   // rowdot output (L, D)
@group(0) @binding(10) var<storage, read> stats_saved: array<f32>;  // (L, D), read by dkdv
@group(0) @binding(11) var<storage, read_write> ds: array<f32>;     // dkdv output s·dS
@group(0) @binding(12) var<storage, read_write> dk: array<f32>;
@group(0) @binding(13) var<storage, read_write> dv: array<f32>;
@group(0) @binding(14) var<storage, read_write> dq: array<f32>;

const ROWS_WG: u32 = 64u;             // invocations per workgroup, 4 rows each
const TILE: u32 = 16u;                // keys per step of the forward
const MAX_HD: u32 = 128u;             // widest head: the per-row accumulators hold this many vec4s
const LOWEST: f32 = -3.4028234663852886e38;   // max() identity: −f32::MAX exactly (WGSL has no −∞ literal; Tint rejects -3.40282347e38, just past f32::MAX, which naga rounds)

// Which rows this workgroup owns (`per_workgroup` of one head). Workgroups are laid out in x then
// y (one grid axis holds at most 65535); the few past the end return at once.
struct Rows {
    head: u32,   // offset of this (batch, head)'s [T, hd] matrices
    bh: u32,     // b·H + h
    first: u32,  // the workgroup's first row
    valid: bool,
}

fn rows_of(wid: vec3<u32>, nwg: vec3<u32>, per_workgroup: u32) -> Rows {
    let index = wid.y * nwg.x + wid.x;
    let per_head = (params.tokens + per_workgroup - 1u) / per_workgroup;
    let bh = index / per_head;
    return Rows(bh * params.tokens * params.head_dim, bh, (index % per_head) * per_workgroup, bh < params.batch_heads);
}

// Where each of a tile's TILE = 16 rows starts: rows k0 … k0 + 15 of a head's [T, hd] matrix,
// the last real row repeated past T (so every read is in bounds; those scores are masked).
fn tile_rows(head: u32, k0: u32, t: u32, hd: u32) -> array<u32, 16> {
    var at: array<u32, 16>;
    for (var j = 0u; j < 16u; j++) { at[j] = head + min(k0 + j, t - 1u) * hd; }
    return at;
}

// Column c of a score block (keys k0 + c), with LOWEST for a key past T so that exp(· − m) = 0.
fn masked(s: vec4<f32>, key: u32, t: u32) -> vec4<f32> {
    return select(vec4<f32>(LOWEST), s, key < t);
}

// ---------------------------------------------------------------------------------------------
// Forward: one invocation per 4 query rows; K and V stream past, TILE = 16 keys at a time. The
// 4 rows × 16 keys of scores live in four mat4x4 (column c of sa is key k0 + c, of sb key
// k0 + 4 + c, …), each column a vec4 over the 4 rows.
// ---------------------------------------------------------------------------------------------
@compute @workgroup_size(ROWS_WG)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let hd = params.head_dim;
    let t = params.tokens;
    let rows = rows_of(wid, nwg, ROWS_WG * 4u);
    if (!rows.valid) { return; }
    let row0 = rows.first + 4u * lid;
    if (row0 >= t) { return; }  // no barriers below: idle invocations may leave
    let at = tile_rows(rows.head, row0, t, hd);  // the 4 rows (entries 0..3)
    var o_rows: array<vec4<f32>, MAX_HD>;  // O·l of the 4 rows, column e; normalised at the end
    for (var e = 0u; e < hd; e++) { o_rows[e] = vec4<f32>(); }
    var m = vec4<f32>(LOWEST);  // running max of each row's scores
    var l = vec4<f32>();        // running Σ exp(score − m)

    for (var k0 = 0u; k0 < t; k0 += TILE) {
        let kv = tile_rows(rows.head, k0, t, hd);
        var sa = mat4x4<f32>();
        var sb = mat4x4<f32>();
        var sc = mat4x4<f32>();
        var sd = mat4x4<f32>();
        for (var e = 0u; e < hd; e++) {
            let qe = vec4<f32>(q[at[0] + e], q[at[1] + e], q[at[2] + e], q[at[3] + e]);
            sa += mat4x4<f32>(qe * k[kv[0] + e], qe * k[kv[1] + e], qe * k[kv[2] + e], qe * k[kv[3] + e]);
            sb += mat4x4<f32>(qe * k[kv[4] + e], qe * k[kv[5] + e], qe * k[kv[6] + e], qe * k[kv[7] + e]);
            sc += mat4x4<f32>(qe * k[kv[8] + e], qe * k[kv[9] + e], qe * k[kv[10] + e], qe * k[kv[11] + e]);
            sd += mat4x4<f32>(qe * k[kv[12] + e], qe * k[kv[13] + e], qe * k[kv[14] + e], qe * k[kv[15] + e]);
        }
        sa = params.scale * sa;
        sb = params.scale * sb;
        sc = params.scale * sc;
        sd = params.scale * sd;
        for (var c = 0u; c < 4u; c++) {
            sa[c] = masked(sa[c], k0 + c, t);
            sb[c] = masked(sb[c], k0 + 4u + c, t);
            sc[c] = masked(sc[c], k0 + 8u + c, t);
            sd[c] = masked(sd[c], k0 + 12u + c, t);
        }
        // Online softmax, per row: m' = max(m, max_j S_j), P_j = exp(S_j − m'),
        // l' = l·exp(m − m') + Σ_j P_j. The first tile has m = LOWEST, so exp(m − m') = 0.
        var m_new = m;
        for (var c = 0u; c < 4u; c++) { m_new = max(m_new, max(max(sa[c], sb[c]), max(sc[c], sd[c]))); }
        var sum = vec4<f32>();
        for (var c = 0u; c < 4u; c++) {
            sa[c] = exp(sa[c] - m_new);
            sb[c] = exp(sb[c] - m_new);
            sc[c] = exp(sc[c] - m_new);
            sd[c] = exp(sd[c] - m_new);
            sum += sa[c] + sb[c] + sc[c] + sd[c];
        }
        let rescale = exp(m - m_new);
        m = m_new;
        l = l * rescale + sum;
        // O·l ← O·l·exp(m − m') + P·V, column e at a time.
        for (var e = 0u; e < hd; e++) {
            o_rows[e] = o_rows[e] * rescale
                + sa * vec4<f32>(v[kv[0] + e], v[kv[1] + e], v[kv[2] + e], v[kv[3] + e])
                + sb * vec4<f32>(v[kv[4] + e], v[kv[5] + e], v[kv[6] + e], v[kv[7] + e])
                + sc * vec4<f32>(v[kv[8] + e], v[kv[9] + e], v[kv[10] + e], v[kv[11] + e])
                + sd * vec4<f32>(v[kv[12] + e], v[kv[13] + e], v[kv[14] + e], v[kv[15] + e]);
        }
    }

    // O = O·l / l (l ≥ 1: the max term is 1), L = m + log l; rows past T write nothing.
    let lse_row = m + log(l);
    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < t) {
            for (var e = 0u; e < hd; e++) { o[at[r] + e] = o_rows[e][r] / l[r]; }
            lse[rows.bh * t + row0 + r] = lse_row[r];
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
    if (row >= params.batch_heads * params.tokens) { return; }
    let at = row * params.head_dim;
    var sum = 0.0;
    for (var e = 0u; e < params.head_dim; e++) { sum += dout[at + e] * o_saved[at + e]; }
    stats[2u * row] = lse_saved[row];
    stats[2u * row + 1u] = sum;
}

// s·dS of query row i for the 4 keys from row0 into ds [B·H, T, T]: row i, columns row0 … row0 + 3,
// those below T.
fn store_ds(bh: u32, i: u32, row0: u32, scaled: vec4<f32>) {
    let t = params.tokens;
    if (params.store_ds == 0u || i >= t) { return; }
    let at = (bh * t + i) * t + row0;
    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < t) { ds[at + r] = scaled[r]; }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward, step 2: dK and dV, one invocation per 4 key rows (a vec4 "over keys" holds one value
// of each); Q and dO stream past, 8 query rows at a time (16, with eight score matrices, took
// 734 ms against 414 at ViT-B/16 batch 8 on lavapipe: the registers spill). Each query row i
// gives, for the 4 keys:
// S_i = ⟨Q_i, K⟩, dP_i = ⟨dO_i, V⟩ (columns of sa, sb and pa, pb), P_i = exp(s·S_i − L_i),
// dS_i = P_i·(dP_i − D_i); then dV += Σ_i P_i·dO_i and dK += s·Σ_i dS_i·Q_i, column e at a time,
// and s·dS_i is stored for dQ's matmul (where `store_ds`): the 4 keys' entries of row i of ds.
// ---------------------------------------------------------------------------------------------
@compute @workgroup_size(ROWS_WG)
fn attention_backward_dkdv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let hd = params.head_dim;
    let t = params.tokens;
    let rows = rows_of(wid, nwg, ROWS_WG * 4u);
    if (!rows.valid) { return; }
    let row0 = rows.first + 4u * lid;
    if (row0 >= t) { return; }
    let at = tile_rows(rows.head, row0, t, hd);  // the 4 key rows (entries 0..3)
    var dk_rows: array<vec4<f32>, MAX_HD>;
    var dv_rows: array<vec4<f32>, MAX_HD>;
    for (var e = 0u; e < hd; e++) { dk_rows[e] = vec4<f32>(); dv_rows[e] = vec4<f32>(); }

    for (var q0 = 0u; q0 < t; q0 += 8u) {
        let qs = tile_rows(rows.head, q0, t, hd);  // entries 0..7: the query rows
        var sa = mat4x4<f32>();  // column c: S of query q0 + c for the 4 keys
        var sb = mat4x4<f32>();  // column c: query q0 + 4 + c
        var pa = mat4x4<f32>();  // the same for dP
        var pb = mat4x4<f32>();
        for (var e = 0u; e < hd; e++) {
            let ke = vec4<f32>(k[at[0] + e], k[at[1] + e], k[at[2] + e], k[at[3] + e]);
            let ve = vec4<f32>(v[at[0] + e], v[at[1] + e], v[at[2] + e], v[at[3] + e]);
            sa += mat4x4<f32>(ke * q[qs[0] + e], ke * q[qs[1] + e], ke * q[qs[2] + e], ke * q[qs[3] + e]);
            sb += mat4x4<f32>(ke * q[qs[4] + e], ke * q[qs[5] + e], ke * q[qs[6] + e], ke * q[qs[7] + e]);
            pa += mat4x4<f32>(ve * dout[qs[0] + e], ve * dout[qs[1] + e], ve * dout[qs[2] + e], ve * dout[qs[3] + e]);
            pb += mat4x4<f32>(ve * dout[qs[4] + e], ve * dout[qs[5] + e], ve * dout[qs[6] + e], ve * dout[qs[7] + e]);
        }
        // P = exp(s·S − L_i) into sa, sb; dS = P·(dP − D_i) into pa, pb; 0 for a query past T.
        for (var c = 0u; c < 4u; c++) {
            let ia = 2u * (rows.bh * t + min(q0 + c, t - 1u));
            let ib = 2u * (rows.bh * t + min(q0 + 4u + c, t - 1u));
            let keep_a = select(0.0, 1.0, q0 + c < t);
            let keep_b = select(0.0, 1.0, q0 + 4u + c < t);
            sa[c] = keep_a * exp(params.scale * sa[c] - stats_saved[ia]);
            sb[c] = keep_b * exp(params.scale * sb[c] - stats_saved[ib]);
            pa[c] = sa[c] * (pa[c] - stats_saved[ia + 1u]);
            pb[c] = sb[c] * (pb[c] - stats_saved[ib + 1u]);
        }
        for (var c = 0u; c < 4u; c++) {
            store_ds(rows.bh, q0 + c, row0, params.scale * pa[c]);
            store_ds(rows.bh, q0 + 4u + c, row0, params.scale * pb[c]);
        }
        for (var e = 0u; e < hd; e++) {
            let qa = vec4<f32>(q[qs[0] + e], q[qs[1] + e], q[qs[2] + e], q[qs[3] + e]);
            let qb = vec4<f32>(q[qs[4] + e], q[qs[5] + e], q[qs[6] + e], q[qs[7] + e]);
            let da = vec4<f32>(dout[qs[0] + e], dout[qs[1] + e], dout[qs[2] + e], dout[qs[3] + e]);
            let db = vec4<f32>(dout[qs[4] + e], dout[qs[5] + e], dout[qs[6] + e], dout[qs[7] + e]);
            dv_rows[e] += sa * da + sb * db;
            dk_rows[e] += params.scale * (pa * qa + pb * qb);
        }
    }

    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < t) {
            for (var e = 0u; e < hd; e++) { dk[at[r] + e] = dk_rows[e][r]; dv[at[r] + e] = dv_rows[e][r]; }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward, step 3 where s·dS was not stored (it would not fit one binding, or B·H one grid axis
// of the matmul): dQ, one invocation per 4 query rows; K and V stream past, 8 keys at a time.
// Column c of sa, sb holds S for key k0 + c (k0 + 4 + c) and the 4 rows, of pa, pb dP; then
// dS = P·(dP − D) with P = exp(s·S − L), and dQ += s·Σ_j dS_j·K_j, column e at a time.
// ---------------------------------------------------------------------------------------------
@compute @workgroup_size(ROWS_WG)
fn attention_backward_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let hd = params.head_dim;
    let t = params.tokens;
    let rows = rows_of(wid, nwg, ROWS_WG * 4u);
    if (!rows.valid) { return; }
    let row0 = rows.first + 4u * lid;
    if (row0 >= t) { return; }
    let at = tile_rows(rows.head, row0, t, hd);  // the 4 query rows (entries 0..3)
    let stat_at = 2u * (rows.bh * t + vec4<u32>(min(row0, t - 1u), min(row0 + 1u, t - 1u), min(row0 + 2u, t - 1u), min(row0 + 3u, t - 1u)));
    let lse_rows = vec4<f32>(stats_saved[stat_at.x], stats_saved[stat_at.y], stats_saved[stat_at.z], stats_saved[stat_at.w]);
    let delta_rows = vec4<f32>(stats_saved[stat_at.x + 1u], stats_saved[stat_at.y + 1u], stats_saved[stat_at.z + 1u], stats_saved[stat_at.w + 1u]);
    var dq_rows: array<vec4<f32>, MAX_HD>;
    for (var e = 0u; e < hd; e++) { dq_rows[e] = vec4<f32>(); }

    for (var k0 = 0u; k0 < t; k0 += 8u) {
        let kv = tile_rows(rows.head, k0, t, hd);  // entries 0..7: the key rows
        var sa = mat4x4<f32>();
        var sb = mat4x4<f32>();
        var pa = mat4x4<f32>();
        var pb = mat4x4<f32>();
        for (var e = 0u; e < hd; e++) {
            let qe = vec4<f32>(q[at[0] + e], q[at[1] + e], q[at[2] + e], q[at[3] + e]);
            let de = vec4<f32>(dout[at[0] + e], dout[at[1] + e], dout[at[2] + e], dout[at[3] + e]);
            sa += mat4x4<f32>(qe * k[kv[0] + e], qe * k[kv[1] + e], qe * k[kv[2] + e], qe * k[kv[3] + e]);
            sb += mat4x4<f32>(qe * k[kv[4] + e], qe * k[kv[5] + e], qe * k[kv[6] + e], qe * k[kv[7] + e]);
            pa += mat4x4<f32>(de * v[kv[0] + e], de * v[kv[1] + e], de * v[kv[2] + e], de * v[kv[3] + e]);
            pb += mat4x4<f32>(de * v[kv[4] + e], de * v[kv[5] + e], de * v[kv[6] + e], de * v[kv[7] + e]);
        }
        // dS = P·(dP − D), P = exp(s·S − L), into pa, pb; 0 for a key past T.
        for (var c = 0u; c < 4u; c++) {
            let keep_a = select(0.0, 1.0, k0 + c < t);
            let keep_b = select(0.0, 1.0, k0 + 4u + c < t);
            pa[c] = keep_a * exp(params.scale * sa[c] - lse_rows) * (pa[c] - delta_rows);
            pb[c] = keep_b * exp(params.scale * sb[c] - lse_rows) * (pb[c] - delta_rows);
        }
        for (var e = 0u; e < hd; e++) {
            let ka = vec4<f32>(k[kv[0] + e], k[kv[1] + e], k[kv[2] + e], k[kv[3] + e]);
            let kb = vec4<f32>(k[kv[4] + e], k[kv[5] + e], k[kv[6] + e], k[kv[7] + e]);
            dq_rows[e] += params.scale * (pa * ka + pb * kb);
        }
    }

    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < t) {
            for (var e = 0u; e < hd; e++) { dq[at[r] + e] = dq_rows[e][r]; }
        }
    }
}
