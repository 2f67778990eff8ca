//! Cross-entropy: GPU vs f64 reference (large offsets and magnitudes), the gradient of the loss
//! vs finite differences, labels outside the classes, and shape errors.

use proptest::prelude::*;
use vpt_wgsl::kernels::cross_entropy::*;
use vpt_wgsl::reference::cross_entropy as cpu;
use vpt_wgsl::{Gpu, Labels, Tensor};

use crate::common::*;

// Tolerances, relative to the output scale (floor 1). Forward: probs as in softmax (~1e-6); each
// loss is log(Σ) − (logit[label] − max) with Σ a sum of ≤ C terms in (0, 1] (~1e-6 relative), log
// within a few ulp, and an exact or ulp-level difference; the batch mean adds ~1e-7. Backward is
// one subtraction and two multiplies per element on probs already rounded to f32: ~1e-7.
// Measured here: ≤ 1.1e-7 for both. 1e-5 leaves room for less accurate exp/log on other drivers.
const FWD_TOL: f64 = 1e-5;
const BWD_TOL: f64 = 1e-5;

/// `batch` labels spread over `classes`, deterministic for a seed.
fn random_labels(seed: u64, batch: usize, classes: usize) -> Vec<u32> {
    random_vec(seed, batch, 1.0).iter().map(|v| (((v + 1.0) / 2.0 * classes as f64) as usize).min(classes - 1) as u32).collect()
}

fn upload_labels(gpu: &Gpu, labels: &[u32], classes: usize) -> Labels {
    Labels::new(gpu, labels, classes).unwrap()
}

proptest! {
    #![proptest_config(cases(12))]

    /// logits: [B, C] in ±scale around an offset; offset 50 moves every logit far from 0, where
    /// the loss is a small difference of large numbers.
    #[test]
    fn cross_entropy_matches_reference(batch in dim(40), classes in dim(300), seed in any::<u64>(),
                                       scale in prop_oneof![Just(1.0), Just(10.0)],
                                       offset in prop_oneof![Just(0.0), Just(50.0)]) {
        for gpu in row_gpus() {
            let logits: Vec<f64> = random_vec(seed, batch * classes, scale).iter().map(|v| v + offset).collect();
            let logits = as_f64(&as_f32(&logits)); // exactly the values the GPU sees
            let logits_t = Tensor::from_slice(gpu, &[batch, classes], &as_f32(&logits)).unwrap();
            let labels = random_labels(seed ^ 1, batch, classes);
            let labels_t = upload_labels(gpu, &labels, classes);

            let out = cross_entropy_forward(&logits_t, &labels_t).unwrap();
            prop_assert_eq!((out.loss.shape(), out.losses.shape(), out.probs.shape()), (&[1][..], &[batch][..], &[batch, classes][..]));
            let want = cpu::cross_entropy_forward(&logits, &labels, classes);
            assert_close("cross_entropy_forward loss", gpu, &out.loss.to_vec().unwrap(), &[want.loss], FWD_TOL);
            assert_close("cross_entropy_forward losses", gpu, &out.losses.to_vec().unwrap(), &want.losses, FWD_TOL);
            assert_close("cross_entropy_forward probs", gpu, &out.probs.to_vec().unwrap(), &want.probs, FWD_TOL);

            // The backward gets the reference probs (rounded to f32), so it is judged on its own error.
            let probs = as_f32(&want.probs);
            let probs_t = Tensor::from_slice(gpu, &[batch, classes], &probs).unwrap();
            let dloss = Tensor::from_slice(gpu, &[1], &[0.75]).unwrap();
            let dlogits = cross_entropy_backward(&probs_t, &labels_t, &dloss).unwrap();
            prop_assert_eq!(dlogits.shape(), &[batch, classes][..]);
            let want = cpu::cross_entropy_backward(&as_f64(&probs), &labels, classes, 0.75);
            assert_close("cross_entropy_backward", gpu, &dlogits.to_vec().unwrap(), &want, BWD_TOL);
        }
    }

    /// ⟨dlogits, v⟩ must equal the directional derivative of dloss · loss(logits) along v.
    #[test]
    fn cross_entropy_backward_matches_finite_differences(batch in dim(8), classes in dim(50), seed in any::<u64>()) {
        for gpu in row_gpus() {
            let (logits, logits_t) = random_tensor(gpu, &[batch, classes], seed, 3.0);
            let labels = random_labels(seed ^ 1, batch, classes);
            let labels_t = upload_labels(gpu, &labels, classes);
            let dloss = 1.3;
            let out = cross_entropy_forward(&logits_t, &labels_t).unwrap();
            let dloss_t = Tensor::from_slice(gpu, &[1], &[dloss as f32]).unwrap();
            let g = cross_entropy_backward(&out.probs, &labels_t, &dloss_t).unwrap().to_vec().unwrap();
            let v = random_vec(seed ^ 2, batch * classes, 1.0);
            let fd = directional_fd(|x| vec![cpu::cross_entropy_forward(x, &labels, classes).loss], &logits, &v, &[dloss]);
            assert_grad_matches_fd("cross_entropy_backward", gpu, &g, fd, &v, GRAD_TOL);
        }
    }
}

/// Logits of ±80 (a loss of 160), near 10000 (exp(10000) is inf in f32, so only the
/// max-subtracted log-sum-exp survives, and lse − logit[label] taken as two differences of
/// large numbers would lose ~1e-4 to rounding at 10000), and a single class (loss exactly 0).
#[test]
fn cross_entropy_extreme_logits_stay_finite() {
    let logits = [80.0, -80.0, 0.0, -80.0, 80.0, 80.0, 10000.0, 9998.0, 9999.0];
    let labels = [1, 2, 1];
    let want = cpu::cross_entropy_forward(&logits, &labels, 3);
    for gpu in row_gpus() {
        let logits_t = Tensor::from_slice(gpu, &[3, 3], &as_f32(&logits)).unwrap();
        let out = cross_entropy_forward(&logits_t, &upload_labels(gpu, &labels, 3)).unwrap();
        assert_close("cross_entropy_forward extreme losses", gpu, &out.losses.to_vec().unwrap(), &want.losses, FWD_TOL);
        assert_close("cross_entropy_forward extreme probs", gpu, &out.probs.to_vec().unwrap(), &want.probs, FWD_TOL);

        let one_class = Tensor::from_slice(gpu, &[2, 1], &[-80.0, 80.0]).unwrap();
        let out = cross_entropy_forward(&one_class, &upload_labels(gpu, &[0, 0], 1)).unwrap();
        assert_eq!(out.loss.to_scalar().unwrap(), 0.0, "{}", gpu.describe());
    }
}

/// Labels checked against another class count are refused: a label ≥ C would read past its row.
#[test]
fn cross_entropy_rejects_labels_made_for_other_class_count() {
    let gpu = &row_gpus()[0];
    let logits = Tensor::from_slice(gpu, &[2, 4], &[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]).unwrap();
    let labels = upload_labels(gpu, &[3, 7], 10);
    let msg = cross_entropy_forward(&logits, &labels).map(drop).unwrap_err().to_string();
    assert!(msg.contains("cross_entropy_forward") && msg.contains("[2, 4]") && msg.contains("10 classes"), "{msg}");
    let dloss = Tensor::from_slice(gpu, &[1], &[1.0]).unwrap();
    let msg = cross_entropy_backward(&logits, &labels, &dloss).unwrap_err().to_string();
    assert!(msg.contains("cross_entropy_backward") && msg.contains("10 classes"), "{msg}");
}

/// Every mismatch is an error that names the op and both shapes.
#[test]
fn cross_entropy_rejects_mismatched_shapes() {
    let gpu = &row_gpus()[0];
    let logits = Tensor::zeros(gpu, &[3, 5]).unwrap();
    let three = upload_labels(gpu, &[0, 1, 2], 5);
    let two = upload_labels(gpu, &[0, 1], 5);
    let dloss = Tensor::zeros(gpu, &[1]).unwrap();

    let msg = cross_entropy_forward(&logits, &two).map(drop).unwrap_err().to_string();
    assert!(msg.contains("cross_entropy_forward") && msg.contains("[3, 5]") && msg.contains("[2]"), "{msg}");
    let msg = cross_entropy_backward(&logits, &two, &dloss).unwrap_err().to_string();
    assert!(msg.contains("cross_entropy_backward") && msg.contains("[3, 5]") && msg.contains("[2]"), "{msg}");

    let rank3 = Tensor::zeros(gpu, &[1, 3, 5]).unwrap();
    let msg = cross_entropy_forward(&rank3, &three).map(drop).unwrap_err().to_string();
    assert!(msg.contains("cross_entropy_forward") && msg.contains("[1, 3, 5]") && msg.contains("[B, C]"), "{msg}");

    let bad_dloss = Tensor::zeros(gpu, &[3]).unwrap();
    let msg = cross_entropy_backward(&logits, &three, &bad_dloss).unwrap_err().to_string();
    assert!(msg.contains("cross_entropy_backward") && msg.contains("dloss") && msg.contains("[3]"), "{msg}");
}
