//! Reductions in f64.

/// x: [rows, cols] → [cols].
pub fn sum_rows_forward(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols).map(|j| (0..rows).map(|r| x[r * cols + j]).sum()).collect()
}

/// dy: [cols] → dx: [rows, cols].
pub fn sum_rows_backward(dy: &[f64], rows: usize) -> Vec<f64> {
    (0..rows).flat_map(|_| dy.iter().copied()).collect()
}

pub fn mean_forward(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

pub fn mean_backward(dy: f64, n: usize) -> Vec<f64> {
    vec![dy / n as f64; n]
}
