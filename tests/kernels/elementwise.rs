//! Element-wise ops: GPU vs f64 reference, backward vs finite differences.

use proptest::prelude::*;
use vpt_wgsl::kernels::elementwise::*;
use vpt_wgsl::reference::{elementwise as cpu, reduce as cpu_reduce};
use vpt_wgsl::Tensor;

use crate::common::*;

// One f32 add or multiply per element: the result is the correctly rounded f32 of the exact value,
// within 2^-24 relative; 1e-6 leaves room for the f32 rounding of the inputs' f64 copies.
const TOL: f64 = 1e-6;

proptest! {
    #![proptest_config(cases(16))]

    #[test]
    fn elementwise_match_reference(rows in dim(200), cols in dim(300), seed in any::<u64>(), s in -3.0f32..3.0) {
        for gpu in gpus() {
            let (a, at) = random_tensor(gpu, &[rows, cols], seed, 2.0);
            let (b, bt) = random_tensor(gpu, &[rows, cols], seed ^ 1, 2.0);
            let (bias, biast) = random_tensor(gpu, &[cols], seed ^ 2, 2.0);
            assert_close("add_forward", gpu, &add_forward(&at, &bt).unwrap().to_vec().unwrap(), &cpu::add_forward(&a, &b), TOL);
            assert_close("bias_add_forward", gpu, &bias_add_forward(&at, &biast).unwrap().to_vec().unwrap(), &cpu::bias_add_forward(&a, &bias), TOL);
            assert_close("mul_forward", gpu, &mul_forward(&at, &bt).unwrap().to_vec().unwrap(), &cpu::mul_forward(&a, &b), TOL);
            assert_close("scale_forward", gpu, &scale_forward(&at, s).unwrap().to_vec().unwrap(), &cpu::scale_forward(&a, s as f64), TOL);
            let positive: Vec<f64> = a.iter().map(|v| v.abs() + 0.01).collect();
            let positive_t = Tensor::from_slice(gpu, &[rows, cols], &as_f32(&positive)).unwrap();
            assert_close("inverse_sqrt_forward", gpu, &inverse_sqrt_forward(&positive_t).unwrap().to_vec().unwrap(), &cpu::inverse_sqrt_forward(&positive), 4.0 * TOL);
            assert_close("mul_last_forward", gpu, &mul_last_forward(&at, &biast).unwrap().to_vec().unwrap(), &cpu::mul_last_forward(&a, &bias), TOL);
            let acc = Tensor::from_slice(gpu, &[rows, cols], &as_f32(&a)).unwrap();
            accumulate(&acc, &bt).unwrap();
            accumulate(&acc, &bt).unwrap();
            let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + 2.0 * y).collect();
            assert_close("accumulate", gpu, &acc.to_vec().unwrap(), &want, 2.0 * TOL);
            let (dx, dbias) = bias_add_backward(&bt).unwrap();
            assert_close("bias_add_backward dx", gpu, &dx.to_vec().unwrap(), &b, 0.0);
            // dbias sums `rows` values: ~rows·2^-24 relative, see reduce's SUM_TOL.
            assert_close("bias_add_backward dbias", gpu, &dbias.to_vec().unwrap(), &cpu_reduce::sum_rows_forward(&b, rows, cols), 2e-5);
        }
    }

    #[test]
    fn elementwise_backward_match_finite_differences(rows in dim(30), cols in dim(40), seed in any::<u64>(), s in -3.0f32..3.0) {
        for gpu in gpus() {
            let x = random_vec(seed, rows * cols, 1.0);
            let bias = random_vec(seed ^ 1, cols, 1.0);
            let (w, wt) = random_tensor(gpu, &[rows, cols], seed ^ 2, 1.0);
            let (dx, dbias) = bias_add_backward(&wt).unwrap();
            let v = random_vec(seed ^ 3, rows * cols, 1.0);
            let fd = directional_fd(|x| cpu::bias_add_forward(x, &bias), &x, &v, &w);
            assert_grad_matches_fd("bias_add_backward dx", gpu, &dx.to_vec().unwrap(), fd, &v, GRAD_TOL);
            let vb = random_vec(seed ^ 4, cols, 1.0);
            let fd = directional_fd(|bias| cpu::bias_add_forward(&x, bias), &bias, &vb, &w);
            assert_grad_matches_fd("bias_add_backward dbias", gpu, &dbias.to_vec().unwrap(), fd, &vb, GRAD_TOL);
            let dx = scale_backward(&wt, s).unwrap();
            let fd = directional_fd(|x| cpu::scale_forward(x, s as f64), &x, &v, &w);
            assert_grad_matches_fd("scale_backward", gpu, &dx.to_vec().unwrap(), fd, &v, GRAD_TOL);
            let (bt_other, other) = (Tensor::from_slice(gpu, &[rows, cols], &as_f32(&bias.repeat(rows))).unwrap(), bias.repeat(rows));
            let (da, db) = mul_backward(&Tensor::from_slice(gpu, &[rows, cols], &as_f32(&x)).unwrap(), &bt_other, &wt, true, true).unwrap();
            let fd = directional_fd(|x| cpu::mul_forward(x, &other), &x, &v, &w);
            assert_grad_matches_fd("mul_backward da", gpu, &da.unwrap().to_vec().unwrap(), fd, &v, GRAD_TOL);
            let fd = directional_fd(|o| cpu::mul_forward(&x, o), &other, &v, &w);
            assert_grad_matches_fd("mul_backward db", gpu, &db.unwrap().to_vec().unwrap(), fd, &v, GRAD_TOL);
            // mul_last: x [rows, cols] · s [cols]; ds sums `rows` products.
            let factors = random_vec(seed ^ 5, cols, 1.0);
            let (xt, st) = (Tensor::from_slice(gpu, &[rows, cols], &as_f32(&x)).unwrap(), Tensor::from_slice(gpu, &[cols], &as_f32(&factors)).unwrap());
            let (dx, ds) = mul_last_backward(&xt, &st, &wt, true, true).unwrap();
            let fd = directional_fd(|x| cpu::mul_last_forward(x, &factors), &x, &v, &w);
            assert_grad_matches_fd("mul_last_backward dx", gpu, &dx.unwrap().to_vec().unwrap(), fd, &v, GRAD_TOL);
            let fd = directional_fd(|f| cpu::mul_last_forward(&x, f), &factors, &vb, &w);
            assert_grad_matches_fd("mul_last_backward ds", gpu, &ds.unwrap().to_vec().unwrap(), fd, &vb, GRAD_TOL);
            let (da, db) = add_backward(&wt);
            let fd = directional_fd(|x| cpu::add_forward(x, &bias.repeat(rows)), &x, &v, &w);
            assert_grad_matches_fd("add_backward da", gpu, &da.to_vec().unwrap(), fd, &v, GRAD_TOL);
            assert_grad_matches_fd("add_backward db", gpu, &db.to_vec().unwrap(), fd, &v, GRAD_TOL);
        }
    }
}

#[test]
fn elementwise_shape_errors_name_op_and_shapes() {
    let gpu = &gpus()[0];
    let a = Tensor::zeros(gpu, &[2, 3]).unwrap();
    let msg = add_forward(&a, &Tensor::zeros(gpu, &[3, 2]).unwrap()).unwrap_err().to_string();
    assert!(msg.contains("add_forward") && msg.contains("[2, 3]") && msg.contains("[3, 2]"), "{msg}");
    let msg = bias_add_forward(&a, &Tensor::zeros(gpu, &[2]).unwrap()).unwrap_err().to_string();
    assert!(msg.contains("bias_add_forward") && msg.contains("[2, 3]") && msg.contains("[2]"), "{msg}");
    let msg = mul_last_forward(&a, &Tensor::zeros(gpu, &[2]).unwrap()).unwrap_err().to_string();
    assert!(msg.contains("mul_last_forward") && msg.contains("[2, 3]") && msg.contains("[2]"), "{msg}");
    let msg = accumulate(&a, &a).unwrap_err().to_string();
    assert!(msg.contains("share storage"), "{msg}");
}
