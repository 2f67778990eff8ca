// Activations kept for the backward, stored as f16 (`--precision f16`): half their memory while
// they wait for the backward, with every kernel still computing in f32 on the way in and out.
//
//   to_halves:    halves = f16(clamp(x, -65504, 65504)), two values per u32     x: [n] f32 → [⌈n/2⌉] u32
//   from_halves:  y = f32(halves)                                              [⌈n/2⌉] u32 → y: [n] f32
//
// The halves are packed in pairs with WGSL's core pack2x16float / unpack2x16float, not stored in
// `array<f16>`: those builtins need no SHADER_F16 (GL runs them; wgpu lists them as the downlevel
// SHADER_F16_IN_F32, which only lavapipe's Vulkan without SHADER_F16 lacks), and each invocation
// writes one whole u32, never a lone 16-bit store. Element 2i is
// the pair's low half, element 2i+1 its high half: the same bytes as an f16 array, so the host
// reads such a tensor like any f16 one (`Tensor::to_vec`).
//
// Rounding: WGSL lets the conversion round to either neighbour of x (not necessarily the
// nearest), so a kept value is within one f16 step of x: 2⁻¹⁰ of it relative, above 2⁻¹⁴
// (below, f16 is subnormal and the step is 2⁻²⁴ absolute, or 2⁻¹⁴ where an implementation
// flushes subnormals). Past ±65504 the conversion is undefined in WGSL, so x is clamped to
// f16's largest finite value first: a kept activation that large means the run has already
// diverged, and the loss, computed in f32, shows it.

struct Params {
    n: u32,       // f32 values (the packed side holds ⌈n/2⌉ u32)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> wide_in: array<f32>;          // to_halves' input
@group(0) @binding(2) var<storage, read_write> halves_out: array<u32>; // to_halves' output
@group(0) @binding(3) var<storage, read> halves_in: array<u32>;        // from_halves' input
@group(0) @binding(4) var<storage, read_write> wide_out: array<f32>;   // from_halves' output

const F16_MAX: f32 = 65504.0;

// One invocation per pair of values: pair i holds elements 2i and 2i + 1 (the second is absent
// when n is odd and i is the last pair).
@compute @workgroup_size(WG)
fn to_halves(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    let first = 2u * i;
    if (first >= params.n) { return; }
    var pair = vec2<f32>(wide_in[first], 0.0);
    if (first + 1u < params.n) {
        pair.y = wide_in[first + 1u];
    }
    halves_out[i] = pack2x16float(clamp(pair, vec2<f32>(-F16_MAX), vec2<f32>(F16_MAX)));
}

@compute @workgroup_size(WG)
fn from_halves(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    let first = 2u * i;
    if (first >= params.n) { return; }
    let pair = unpack2x16float(halves_in[i]);
    wide_out[first] = pair.x;
    if (first + 1u < params.n) {
        wide_out[first + 1u] = pair.y;
    }
}
