//! Optimizer updates: several GPU steps vs the f64 reference of torch.optim's formulas.

use proptest::prelude::*;
use vpt_wgsl::kernels::optim::*;
use vpt_wgsl::reference::optim as cpu;
use vpt_wgsl::Tensor;

use crate::common::*;

// Each step is a handful of f32 operations per element (~1e-7 relative each); over 6 steps with
// lr ≤ 0.5 the parameters drift from the f64 path by at most a few 1e-7 of their scale. AdamW's
// m/√v amplifies relative error where v is tiny, still far under 1e-5.
const TOL: f64 = 1e-5;
const STEPS: u32 = 6;

proptest! {
    #![proptest_config(cases(12))]

    #[test]
    fn sgd_matches_reference(n in dim(3000), seed in any::<u64>(), lr in 0.001f32..0.5, momentum in prop_oneof![Just(0.0f32), Just(0.9)], wd in prop_oneof![Just(0.0f32), Just(1e-4), Just(0.01)], nesterov in any::<bool>()) {
        for gpu in gpus() {
            let (mut p, pt) = random_tensor(gpu, &[n], seed, 1.0);
            let buf_t = Tensor::zeros(gpu, &[n]).unwrap();
            let mut buf = vec![0.0; n];
            for step in 0..STEPS {
                let (g, gt) = random_tensor(gpu, &[n], seed ^ (step as u64 + 1), 1.0);
                sgd_step(&pt, &gt, &buf_t, Sgd { lr, momentum, weight_decay: wd, nesterov }).unwrap();
                cpu::sgd_step(&mut p, &g, &mut buf, lr as f64, momentum as f64, wd as f64, nesterov);
            }
            assert_close("sgd_step param", gpu, &pt.to_vec().unwrap(), &p, TOL);
            assert_close("sgd_step momentum", gpu, &buf_t.to_vec().unwrap(), &buf, TOL);
        }
    }

    #[test]
    fn adamw_matches_reference(n in dim(3000), seed in any::<u64>(), lr in 0.0001f32..0.1, wd in prop_oneof![Just(0.0f32), Just(0.01), Just(0.05)]) {
        let cfg = AdamW { lr, weight_decay: wd, ..AdamW::default() };
        for gpu in gpus() {
            let (mut p, pt) = random_tensor(gpu, &[n], seed, 1.0);
            let (mt, vt) = (Tensor::zeros(gpu, &[n]).unwrap(), Tensor::zeros(gpu, &[n]).unwrap());
            let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
            for step in 1..=STEPS {
                let (g, gt) = random_tensor(gpu, &[n], seed ^ step as u64, 1.0);
                adamw_step(&pt, &gt, &mt, &vt, step, cfg).unwrap();
                cpu::adamw_step(&mut p, &g, &mut m, &mut v, step, lr as f64, 0.9, 0.999, 1e-8, wd as f64);
            }
            assert_close("adamw_step param", gpu, &pt.to_vec().unwrap(), &p, TOL);
            assert_close("adamw_step m", gpu, &mt.to_vec().unwrap(), &m, TOL);
            assert_close("adamw_step v", gpu, &vt.to_vec().unwrap(), &v, TOL);
        }
    }
}

#[test]
fn optimizer_refuses_aliased_or_mismatched_state() {
    let gpu = &gpus()[0];
    let p = Tensor::zeros(gpu, &[4]).unwrap();
    let g = Tensor::zeros(gpu, &[4]).unwrap();
    let cfg = Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.0, nesterov: false };
    let msg = sgd_step(&p, &g, &p, cfg).unwrap_err().to_string();
    assert!(msg.contains("sgd_step") && msg.contains("share storage"), "{msg}");
    let msg = sgd_step(&p, &Tensor::zeros(gpu, &[5]).unwrap(), &g, cfg).unwrap_err().to_string();
    assert!(msg.contains("sgd_step") && msg.contains("[4]") && msg.contains("[5]"), "{msg}");
}
