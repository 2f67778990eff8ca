//! Element-wise ops in f64.

pub fn add_forward(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// x: [rows, n], bias: [n].
pub fn bias_add_forward(x: &[f64], bias: &[f64]) -> Vec<f64> {
    x.iter().enumerate().map(|(i, v)| v + bias[i % bias.len()]).collect()
}

pub fn scale_forward(x: &[f64], s: f64) -> Vec<f64> {
    x.iter().map(|v| s * v).collect()
}

pub fn mul_forward(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x * y).collect()
}

/// x: [rows, n], s: [n]: y[r, j] = x[r, j] · s[j].
pub fn mul_last_forward(x: &[f64], s: &[f64]) -> Vec<f64> {
    x.iter().enumerate().map(|(i, v)| v * s[i % s.len()]).collect()
}

pub fn inverse_sqrt_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| 1.0 / v.sqrt()).collect()
}
