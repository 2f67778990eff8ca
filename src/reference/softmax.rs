//! Softmax over the last axis in f64.

/// x: [rows, n] → y: [rows, n].
pub fn softmax_forward(x: &[f64], n: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(n) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|&v| (v - max).exp()).sum();
        y.extend(row.iter().map(|&v| (v - max).exp() / sum));
    }
    y
}

/// y, dy: [rows, n] → dx = y ⊙ (dy − ⟨dy, y⟩) per row.
pub fn softmax_backward(y: &[f64], dy: &[f64], n: usize) -> Vec<f64> {
    let mut dx = Vec::with_capacity(y.len());
    for (y, dy) in y.chunks(n).zip(dy.chunks(n)) {
        let dot: f64 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
        dx.extend(y.iter().zip(dy).map(|(&yi, &gi)| yi * (gi - dot)));
    }
    dx
}
