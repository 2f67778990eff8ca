// Softmax cross-entropy, fused (torch.nn.functional.cross_entropy with integer class labels).
//
//   forward:   m_b       = max_c logits[b, c]
//              lse_b     = m_b + log Σ_c exp(logits[b, c] − m_b)            (log-sum-exp)
//              losses[b] = lse_b − logits[b, label_b]
//              probs[b, c] = exp(logits[b, c] − m_b) / Σ_c' exp(logits[b, c'] − m_b)   (saved)
//   backward:  dlogits[b, c] = (probs[b, c] − [c == label_b]) · dloss / B
//
// logits, probs, dlogits: [B, C]; labels, losses: [B]; dloss: [1]. The batch mean of `losses` is
// taken afterwards by reduce.wgsl's `mean_forward`; the 1/B of that mean appears in the backward.
// Forward: one workgroup per sample. Backward: one thread per element.

struct Params {
    batch: u32,     // B
    classes: u32,   // C
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;          // [B, C]
@group(0) @binding(2) var<storage, read> labels: array<u32>;          // [B], class indices
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;     // forward: [B, C]
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;    // forward: [B]
@group(0) @binding(5) var<storage, read> probs_saved: array<f32>;     // backward: the forward's probs
@group(0) @binding(6) var<storage, read> dloss: array<f32>;           // backward: [1]
@group(0) @binding(7) var<storage, read_write> dlogits: array<f32>;   // backward: [B, C]

// Threads per row of logits (forward). 64, as softmax's: a head has tens to a thousand classes,
// and with 256 threads most sat idle; on lavapipe the subgroup build, whose last step reads one
// partial per subgroup (32 of them at 256 threads), took 0.38 ms against the tree's 0.18 ms at
// [8, 100]; at 64 threads, 0.16 and 0.15 ms, the same within the spread (`vpt bench --preset
// vit-b --batch 8 --filter cross_entropy`, lavapipe). row_index, LOWEST_F32
// and the reductions are in wgsl/lib/row_reduce.wgsl (workgroup memory) or
// wgsl/lib/row_reduce_subgroup.wgsl (subgroup operations), whichever the launcher prepends.
const ROW_WG: u32 = 64u;

// Labels are checked against a class count when uploaded, but that count need not be this C.
// A label ≥ C would read another sample's logits, so it yields NaN instead: loud, never a
// plausible wrong number.
// The bits come from a private variable, not a literal: Tint (Chrome's compiler) evaluates
// bitcast<f32>(0x7fc00000u) at compile time and rejects a NaN constant; naga accepts both.
var<private> QUIET_NAN_BITS: u32 = 0x7fc00000u;
fn quiet_nan() -> f32 {
    return bitcast<f32>(QUIET_NAN_BITS);
}

@compute @workgroup_size(ROW_WG)
fn cross_entropy_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let b = row_index(wid, nwg);
    // Uniform across the workgroup, so every thread that stays reaches the barriers below.
    if (b >= params.batch) { return; }
    let start = b * params.classes;

    // Row max, then Σ exp(logit − max): every exponent ≤ 0, so no overflow, and the sum is ≥ 1.
    var local_max = LOWEST_F32;
    for (var c = lid; c < params.classes; c += ROW_WG) {
        local_max = max(local_max, logits[start + c]);
    }
    let row_max = workgroup_max(lid, local_max);
    var local_sum = 0.0;
    for (var c = lid; c < params.classes; c += ROW_WG) {
        local_sum += exp(logits[start + c] - row_max);
    }
    let denom = workgroup_sum(lid, local_sum);

    for (var c = lid; c < params.classes; c += ROW_WG) {
        probs[start + c] = exp(logits[start + c] - row_max) / denom;
    }
    if (lid == 0u) {
        let label = labels[b];
        // lse − logit[label] written as log(denom) − (logit[label] − max): both differences are
        // taken before adding, so a large common offset (logits ≈ 50) costs no precision.
        var loss = quiet_nan();
        if (label < params.classes) {
            loss = log(denom) - (logits[start + label] - row_max);
        }
        losses[b] = loss;
    }
}

@compute @workgroup_size(WG)
fn cross_entropy_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.classes) { return; }
    let b = i / params.classes;
    let c = i % params.classes;
    let label = labels[b];
    let onehot = select(0.0, 1.0, c == label);
    let grad = (probs_saved[i] - onehot) * dloss[0] / f32(params.batch);
    dlogits[i] = select(quiet_nan(), grad, label < params.classes);
}
