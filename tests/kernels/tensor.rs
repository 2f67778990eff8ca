//! Tensor basics: host dtypes, shapes, and the adapter's binding-size limit.

use half::{bf16, f16};
use vpt_wgsl::{Error, Tensor};

use crate::common::gpus;

/// f16 and bf16 host data is widened to f32 exactly (both are subsets of f32).
#[test]
fn f16_and_bf16_upload_widen_exactly() {
    let values = [0.0f32, 1.0, -2.5, 0.333_251_95, 65504.0, 1e-3];
    for gpu in gpus() {
        let h: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
        let got = Tensor::from_f16(gpu, &[2, 3], &h).unwrap().to_vec().unwrap();
        assert_eq!(got, h.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
        let b: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
        let got = Tensor::from_bf16(gpu, &[6], &b).unwrap().to_vec().unwrap();
        assert_eq!(got, b.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
    }
}

/// A tensor larger than one storage binding is refused up front with the size and the limit.
#[test]
fn tensors_beyond_the_binding_limit_are_refused() {
    let gpu = &gpus()[0];
    let limit = gpu.limits().max_storage_buffer_binding_size.min(gpu.limits().max_buffer_size);
    let too_many = (limit / 4 + 1) as usize;
    match Tensor::zeros(gpu, &[too_many]) {
        Err(e @ Error::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&limit.to_string()) && msg.contains("max_storage_buffer_binding_size"), "{msg}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn shape_mistakes_are_errors() {
    let gpu = &gpus()[0];
    let msg = Tensor::from_slice(gpu, &[2, 3], &[1.0; 5]).unwrap_err().to_string();
    assert!(msg.contains("[2, 3]") && msg.contains("6 elements") && msg.contains("5 values"), "{msg}");
    let msg = Tensor::zeros(gpu, &[4, 0]).unwrap_err().to_string();
    assert!(msg.contains("[4, 0]") && msg.contains("no elements"), "{msg}");
    let t = Tensor::zeros(gpu, &[4, 6]).unwrap();
    let msg = t.reshape(&[5, 5]).unwrap_err().to_string();
    assert!(msg.contains("reshape") && msg.contains("[4, 6]") && msg.contains("[5, 5]"), "{msg}");
    assert_eq!(t.reshape(&[2, 12]).unwrap().shape(), &[2, 12]);
}
