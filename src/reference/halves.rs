//! f32 → f16 → f32 on the CPU, as `wgsl/halves.wgsl` does it: clamp to ±65504, then round.

use half::f16;

/// The two f16 values either side of x (equal when x is one), after the kernel's clamp. WGSL lets
/// the conversion round to either, so a kept value is right when it is one of them.
pub fn f16_neighbours(x: f32) -> (f32, f32) {
    let x = clamped(x);
    let nearest = f16::from_f32(x);
    let n = nearest.to_f32();
    if n == x || x.is_nan() {
        return (n, n);
    }
    // The other neighbour is one step from the nearest, on x's side of it.
    let bits = nearest.to_bits();
    let away_from_zero = (x.abs() > n.abs()) as i32 * 2 - 1; // +1: the other is farther from 0
    let other = if n == 0.0 { f16::from_bits((bits & 0x8000) | 1).to_f32().copysign(x) } else { f16::from_bits((bits as i32 + away_from_zero) as u16).to_f32() };
    (n.min(other), n.max(other))
}

/// x as a kept activation: rounded to the nearest f16 (the reference `vpt check` compares with).
pub fn round_trip(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| f16::from_f32(clamped(v as f32)).to_f64()).collect()
}

/// x clamped to ±65504, f16's largest finite value, as the kernel does before converting.
fn clamped(x: f32) -> f32 {
    x.clamp(-f16::MAX.to_f32(), f16::MAX.to_f32())
}
