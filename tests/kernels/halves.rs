//! Kept activations packed as f16 and widened back (`kernels::halves`): every value lands on one
//! of its two f16 neighbours (WGSL may round to either), every f16 comes back exactly.

use half::f16;
use proptest::prelude::*;
use vpt_wgsl::kernels::halves::{from_halves, to_halves};
use vpt_wgsl::reference::halves::f16_neighbours;
use vpt_wgsl::tensor::DType;
use vpt_wgsl::Tensor;

use crate::common::*;

/// f16's smallest normal value: below it an implementation may flush the packed value to zero.
const MIN_NORMAL: f32 = 6.103_515_6e-5;

/// Values from 2⁻²⁶ (below f16's smallest subnormal) to 2¹⁸ (past its largest value, 65504), of
/// both signs, with exact zeros and f16 values themselves mixed in.
fn spread(seed: u64, n: usize) -> Vec<f32> {
    random_vec(seed, n, 1.0)
        .iter()
        .enumerate()
        .map(|(i, &u)| match i % 7 {
            0 => 0.0,
            1 => f16::from_f32((u * 1000.0) as f32).to_f32(),
            _ => (u.signum() * 2f64.powf(-26.0 + 44.0 * u.abs())) as f32,
        })
        .collect()
}

proptest! {
    #![proptest_config(cases(12))]

    #[test]
    fn packed_values_are_f16_neighbours_and_come_back_exactly(n in dim(3000), seed in any::<u64>()) {
        for gpu in gpus() {
            let x = spread(seed, n);
            let packed = to_halves(&Tensor::from_slice(gpu, &[n], &x).unwrap()).unwrap();
            assert_eq!(packed.dtype(), DType::F16);
            let halves = packed.to_vec().unwrap();
            for (i, (&v, &h)) in x.iter().zip(&halves).enumerate() {
                let (low, high) = f16_neighbours(v);
                let flushed = v.abs() < MIN_NORMAL && h == 0.0;
                assert!(h == low || h == high || flushed, "{}: x[{i}] = {v:e} packed as {h:e}, not {low:e} or {high:e}", gpu.describe());
            }
            let back = from_halves(&packed).unwrap();
            assert_eq!(back.dtype(), DType::F32);
            assert_eq!(back.to_vec().unwrap(), halves, "{}: widening changed a value", gpu.describe());
        }
    }
}

#[test]
fn packing_what_is_packed_or_widening_f32_is_an_error_naming_the_op() {
    let gpu = &gpus()[0];
    let x = Tensor::from_slice(gpu, &[3], &[1.0, 2.0, 3.0]).unwrap();
    let packed = to_halves(&x).unwrap();
    let err = to_halves(&packed).unwrap_err().to_string();
    assert!(err.contains("to_halves") && err.contains("already stored as f16"), "{err}");
    let err = from_halves(&x).unwrap_err().to_string();
    assert!(err.contains("from_halves") && err.contains("f32"), "{err}");
}
