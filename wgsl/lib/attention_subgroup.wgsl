// The fused attention's forward and backward kernels with the streamed side shared through
// subgroup shuffles: `attention_forward_sg`, `attention_backward_dkdv_sg`, `attention_backward_dq_sg`
// (and `attention_backward_dq_untranspose`, at the end, which serves the dQ matmul that only
// CPU adapters with SUBGROUP take; it shuffles nothing). Prepended, with
// wgsl/lib/attention_quads.wgsl, to wgsl/attention.wgsl (whose helpers they use: tile_rows,
// the _block readers, softmax_step, key_side, query_side) only in the build for adapters with wgpu's
// SUBGROUP feature (`attention_subgroup`), so the other builds never contain a subgroup builtin.
// The sums are those of attention_forward and attention_backward_dkdv, in the same order.
//
// Why. Every invocation of a workgroup streams the same rows of the other side (the forward's
// 16 keys of K and V, dkdv's 16 queries of Q and dO, dq's 16 keys of K and V): each lane of a
// subgroup loads the same address. Lavapipe compiles a load from a storage buffer into a loop
// over the SIMD register's 8 lanes (see wgsl/attention.wgsl), so a load all lanes share costs as
// much as 8 different ones. Here lane l loads only quad j0 + l of those rows, and step s takes
// lane s's quads by subgroupShuffle, with an index the same in every lane (one register permute
// on lavapipe): per quad of columns, 16 shuffles and 2 loads (per 8 lanes) in place of 16 loads.
// The same trick as matmul_sg16x8's op(A) (wgsl/lib/matmul_subgroup.wgsl).
//
// The rows each invocation owns are its own: those loads stay, once per step. So dkdv and dq
// take 16 rows of the other side per step, two of the plain kernels' steps of 8, summed one after
// the other as those are: half the loads of their own rows per row streamed. The forward keeps
// the plain kernel's 16 keys: two tiles of 16 per step, the same way, was no faster (ViT-B/16
// batch 8, medians of eight interleaved rounds: 71.0 against 58.2 ms; the unchanged kernel itself
// ran 20% apart in such rounds). Measured on lavapipe only; what the loads cost is in the
// profile that `benches/lavapipe_profile.sh` prints.
//
// Bounds: no invocation returns before the last shuffle (a shuffle reads a lane that must be
// there): those past their side's rows (Tq queries, T keys) compute on the last row, as
// tile_rows clamps, and store nothing. Not even a whole subgroup past them returns (by
// `subgroupAll`): WGSL's uniformity analysis (Chrome's Tint enforces it, `tests/browser.rs`)
// rejects a shuffle after a return that is uniform only within a subgroup. So at Tq = 197
// (ViT-B/16's rows read under 50 deep prompts) 14 invocations of a head's workgroup of 64 run
// idle on a GPU (6 of seven workgroups of 8 on a CPU adapter: ROWS_WG), and at Tq = 1 (CLS,
// the last block's only query) 63 (7). A lane whose quad j0 + l is past hd
// loads the last quad instead; no step takes it. Where a step's second 8 rows start at or past
// their count (dkdv's Tq queries, dq's T keys), dkdv and dq add nothing for them (`second`, the
// same in every lane), as the plain kernels run no such step: their sums stay the plain
// kernels' bits.

// Lane s's 4×4 block: each column shuffled from lane s.
fn lane_block(held: mat4x4<f32>, s: u32) -> mat4x4<f32> {
    return mat4x4<f32>(subgroupShuffle(held[0], s), subgroupShuffle(held[1], s), subgroupShuffle(held[2], s), subgroupShuffle(held[3], s));
}

// The forward (attention_forward's sums): one invocation per 4 query rows, K and V 16 keys at a
// time, their quads shared across the subgroup.
@compute @workgroup_size(ROWS_WG)
fn attention_forward_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32,
                        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
    let t = params.tokens;
    let tq = params.queries;
    let quads = head_quads();
    let rows = rows_of(wid, nwg, ROWS_WG * 4u, tq);
    if (!rows.valid) { return; }  // the whole workgroup
    let row0 = rows.first + 4u * lid;
    let at = tile_rows(rows.bh, row0, tq);  // the 4 query rows (entries 0..3), clamped to Tq − 1
    var o_rows: array<mat4x4<f32>, MAX_QUADS>;  // O·l, as in attention_forward
    for (var j = 0u; j < quads; j++) { o_rows[j] = mat4x4<f32>(); }
    var m = vec4<f32>(LOWEST);
    var l = vec4<f32>();

    for (var k0 = 0u; k0 < t; k0 += TILE) {
        let kv = tile_rows(rows.bh, k0, t);
        var sa = mat4x4<f32>();
        var sb = mat4x4<f32>();
        var sc = mat4x4<f32>();
        var sd = mat4x4<f32>();
        for (var j0 = 0u; j0 < quads; j0 += lanes) {
            let held = min(j0 + lane, quads - 1u);  // this lane's quad of the 16 keys
            let ka = k_block(kv, 0u, held);
            let kb = k_block(kv, 4u, held);
            let kc = k_block(kv, 8u, held);
            let kd = k_block(kv, 12u, held);
            let steps = min(lanes, quads - j0);
            for (var s = 0u; s < steps; s++) {
                let qt = transpose(q_block(at, 0u, j0 + s));
                sa += qt * lane_block(ka, s);
                sb += qt * lane_block(kb, s);
                sc += qt * lane_block(kc, s);
                sd += qt * lane_block(kd, s);
            }
        }
        let step = softmax_step(Scores(sa, sb, sc, sd), m, l, k0);
        m = step.m;
        l = step.l;
        for (var j0 = 0u; j0 < quads; j0 += lanes) {
            let held = min(j0 + lane, quads - 1u);
            let va = v_block(kv, 0u, held);
            let vb = v_block(kv, 4u, held);
            let vc = v_block(kv, 8u, held);
            let vd = v_block(kv, 12u, held);
            let steps = min(lanes, quads - j0);
            for (var s = 0u; s < steps; s++) {
                let j = j0 + s;
                o_rows[j] = scale_rows(o_rows[j], step.rescale)
                    + step.p.a * transpose(lane_block(va, s)) + step.p.b * transpose(lane_block(vb, s))
                    + step.p.c * transpose(lane_block(vc, s)) + step.p.d * transpose(lane_block(vd, s));
            }
        }
    }

    let lse_row = m + log(l);
    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < tq) {
            for (var j = 0u; j < quads; j++) { o_put(at[r], j, transpose(o_rows[j])[r] / l[r]); }
            lse[at[r]] = lse_row[r];
        }
    }
}

// dK and dV (attention_backward_dkdv's sums): one invocation per 4 key rows, Q and dO 16 queries
// at a time (two of the plain kernel's steps of 8, summed in its order), their quads shared
// across the subgroup (loaded twice: once for the scores, once for the sums after P and dS).
@compute @workgroup_size(ROWS_WG)
fn attention_backward_dkdv_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32,
                              @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
    let t = params.tokens;
    let tq = params.queries;
    let quads = head_quads();
    let rows = rows_of(wid, nwg, ROWS_WG * 4u, t);
    if (!rows.valid) { return; }  // the whole workgroup
    let row0 = rows.first + 4u * lid;
    let at = tile_rows(rows.bh, row0, t);  // the 4 key rows, clamped to T − 1
    var dk_rows: array<mat4x4<f32>, MAX_QUADS>;
    var dv_rows: array<mat4x4<f32>, MAX_QUADS>;
    for (var j = 0u; j < quads; j++) { dk_rows[j] = mat4x4<f32>(); dv_rows[j] = mat4x4<f32>(); }

    for (var q0 = 0u; q0 < tq; q0 += 16u) {
        let qs = tile_rows(rows.bh, q0, tq);
        let qs2 = tile_rows(rows.bh, q0 + 8u, tq);
        var sa = mat4x4<f32>();
        var sb = mat4x4<f32>();
        var pa = mat4x4<f32>();
        var pb = mat4x4<f32>();
        var sc = mat4x4<f32>();
        var sd = mat4x4<f32>();
        var pc = mat4x4<f32>();
        var pd = mat4x4<f32>();
        for (var j0 = 0u; j0 < quads; j0 += lanes) {
            let held = min(j0 + lane, quads - 1u);  // this lane's quad of the 16 queries
            let qa = q_block(qs, 0u, held);
            let qb = q_block(qs, 4u, held);
            let da = dout_block(qs, 0u, held);
            let db = dout_block(qs, 4u, held);
            let qc = q_block(qs2, 0u, held);
            let qd = q_block(qs2, 4u, held);
            let dc = dout_block(qs2, 0u, held);
            let dd = dout_block(qs2, 4u, held);
            let steps = min(lanes, quads - j0);
            for (var s = 0u; s < steps; s++) {
                let kt = transpose(k_block(at, 0u, j0 + s));
                let vt = transpose(v_block(at, 0u, j0 + s));
                sa += kt * lane_block(qa, s);
                sb += kt * lane_block(qb, s);
                pa += vt * lane_block(da, s);
                pb += vt * lane_block(db, s);
                sc += kt * lane_block(qc, s);
                sd += kt * lane_block(qd, s);
                pc += vt * lane_block(dc, s);
                pd += vt * lane_block(dd, s);
            }
        }
        let g = key_side(sa, sb, pa, pb, rows.bh, qs, q0, row0);
        let g2 = key_side(sc, sd, pc, pd, rows.bh, qs2, q0 + 8u, row0);
        let second = q0 + 8u < tq;  // the same in every lane
        for (var j0 = 0u; j0 < quads; j0 += lanes) {
            let held = min(j0 + lane, quads - 1u);
            let qa = q_block(qs, 0u, held);
            let qb = q_block(qs, 4u, held);
            let da = dout_block(qs, 0u, held);
            let db = dout_block(qs, 4u, held);
            let qc = q_block(qs2, 0u, held);
            let qd = q_block(qs2, 4u, held);
            let dc = dout_block(qs2, 0u, held);
            let dd = dout_block(qs2, 4u, held);
            let steps = min(lanes, quads - j0);
            for (var s = 0u; s < steps; s++) {
                let j = j0 + s;
                var dv_j = dv_rows[j] + (g.pa * transpose(lane_block(da, s)) + g.pb * transpose(lane_block(db, s)));
                var dk_j = dk_rows[j] + params.scale * (g.dsa * transpose(lane_block(qa, s)) + g.dsb * transpose(lane_block(qb, s)));
                if (second) {
                    dv_j += g2.pa * transpose(lane_block(dc, s)) + g2.pb * transpose(lane_block(dd, s));
                    dk_j += params.scale * (g2.dsa * transpose(lane_block(qc, s)) + g2.dsb * transpose(lane_block(qd, s)));
                }
                dv_rows[j] = dv_j;
                dk_rows[j] = dk_j;
            }
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

// dQ where s·dS is not stored (attention_backward_dq's sums): one invocation per 4 query rows,
// K and V 16 keys at a time (two of the plain kernel's steps of 8, summed in its order), their
// quads shared across the subgroup (K's loaded twice).
@compute @workgroup_size(ROWS_WG)
fn attention_backward_dq_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32,
                            @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
    let t = params.tokens;
    let tq = params.queries;
    let quads = head_quads();
    let rows = rows_of(wid, nwg, ROWS_WG * 4u, tq);
    if (!rows.valid) { return; }  // the whole workgroup
    let row0 = rows.first + 4u * lid;
    let at = tile_rows(rows.bh, row0, tq);  // the 4 query rows, clamped to Tq − 1
    let lse_rows = rows_stats(at, 0u);
    let delta_rows = rows_stats(at, 1u);
    var dq_rows: array<mat4x4<f32>, MAX_QUADS>;
    for (var j = 0u; j < quads; j++) { dq_rows[j] = mat4x4<f32>(); }

    for (var k0 = 0u; k0 < t; k0 += 16u) {
        let kv = tile_rows(rows.bh, k0, t);
        let kv2 = tile_rows(rows.bh, k0 + 8u, t);
        let second = k0 + 8u < t;  // the same in every lane
        var sa = mat4x4<f32>();
        var sb = mat4x4<f32>();
        var pa = mat4x4<f32>();
        var pb = mat4x4<f32>();
        var sc = mat4x4<f32>();
        var sd = mat4x4<f32>();
        var pc = mat4x4<f32>();
        var pd = mat4x4<f32>();
        for (var j0 = 0u; j0 < quads; j0 += lanes) {
            let held = min(j0 + lane, quads - 1u);  // this lane's quad of the 16 keys
            let ka = k_block(kv, 0u, held);
            let kb = k_block(kv, 4u, held);
            let va = v_block(kv, 0u, held);
            let vb = v_block(kv, 4u, held);
            let kc = k_block(kv2, 0u, held);
            let kd = k_block(kv2, 4u, held);
            let vc = v_block(kv2, 0u, held);
            let vd = v_block(kv2, 4u, held);
            let steps = min(lanes, quads - j0);
            for (var s = 0u; s < steps; s++) {
                let qt = transpose(q_block(at, 0u, j0 + s));
                let dt = transpose(dout_block(at, 0u, j0 + s));
                sa += qt * lane_block(ka, s);
                sb += qt * lane_block(kb, s);
                pa += dt * lane_block(va, s);
                pb += dt * lane_block(vb, s);
                sc += qt * lane_block(kc, s);
                sd += qt * lane_block(kd, s);
                pc += dt * lane_block(vc, s);
                pd += dt * lane_block(vd, s);
            }
        }
        let ds = query_side(sa, sb, pa, pb, lse_rows, delta_rows, k0);
        let ds2 = query_side(sc, sd, pc, pd, lse_rows, delta_rows, k0 + 8u);
        for (var j0 = 0u; j0 < quads; j0 += lanes) {
            let held = min(j0 + lane, quads - 1u);
            let ka = k_block(kv, 0u, held);
            let kb = k_block(kv, 4u, held);
            let kc = k_block(kv2, 0u, held);
            let kd = k_block(kv2, 4u, held);
            let steps = min(lanes, quads - j0);
            for (var s = 0u; s < steps; s++) {
                let j = j0 + s;
                var dq_j = dq_rows[j] + params.scale * (ds.a * transpose(lane_block(ka, s)) + ds.b * transpose(lane_block(kb, s)));
                if (second) {
                    dq_j += params.scale * (ds2.a * transpose(lane_block(kc, s)) + ds2.b * transpose(lane_block(kd, s)));
                }
                dq_rows[j] = dq_j;
            }
        }
    }

    for (var r = 0u; r < 4u; r++) {
        if (row0 + r < tq) {
            for (var j = 0u; j < quads; j++) { dq_put(at[r], j, transpose(dq_rows[j])[r]); }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dQ the right way round: dQᵀ [B·H, hd, Tq] (the matmul Kᵀ·(s·dS)ᵀ that `kernels/attention.rs`
// runs with matmul_sg16x8 on a CPU adapter with SUBGROUP) → dQ [B·H, Tq, hd], one thread per quad
// of dQ (flat launch), its 4 values read from 4 rows of dQᵀ. Only moves values: nothing is summed.
// This build reads heads as vec4s, so hd is a multiple of 4.
// ---------------------------------------------------------------------------------------------
@group(0) @binding(15) var<storage, read> dq_t: array<f32>;  // dQᵀ [B·H, hd, Tq], the matmul's output

@compute @workgroup_size(WG)
fn attention_backward_dq_untranspose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                     @builtin(local_invocation_index) lid: u32) {
    let quads = head_quads();
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch_heads * params.queries * quads) { return; }
    let row = i / quads;                  // row of [B·H·Tq, hd]
    let j = i % quads;
    let bh = row / params.queries;
    let first = (bh * params.head_dim + 4u * j) * params.queries + row % params.queries;  // dQᵀ[bh, 4j, query]
    let tq = params.queries;
    dq_put(row, j, vec4<f32>(dq_t[first], dq_t[first + tq], dq_t[first + 2u * tq], dq_t[first + 3u * tq]));
}
