//! LayerNorm over the last axis in f64 (biased variance, eps inside the square root).
//! D is `weight.len()`; x and dy are [rows, D].

pub struct LayerNorm {
    pub y: Vec<f64>,
    pub mean: Vec<f64>,
    pub rstd: Vec<f64>,
}

pub struct LayerNormGrads {
    pub dx: Vec<f64>,
    pub dweight: Vec<f64>,
    pub dbias: Vec<f64>,
}

/// Mean and 1/sqrt(var + eps) of one row.
fn row_stats(row: &[f64], eps: f64) -> (f64, f64) {
    let d = row.len() as f64;
    let mean = row.iter().sum::<f64>() / d;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d;
    (mean, 1.0 / (var + eps).sqrt())
}

pub fn layernorm_forward(x: &[f64], weight: &[f64], bias: &[f64], eps: f64) -> LayerNorm {
    let d = weight.len();
    let mut out = LayerNorm { y: Vec::with_capacity(x.len()), mean: vec![], rstd: vec![] };
    for row in x.chunks(d) {
        let (mean, rstd) = row_stats(row, eps);
        out.y.extend((0..d).map(|j| (row[j] - mean) * rstd * weight[j] + bias[j]));
        out.mean.push(mean);
        out.rstd.push(rstd);
    }
    out
}

/// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·weight; dweight = Σ_rows dy·x̂; dbias = Σ_rows dy.
pub fn layernorm_backward(x: &[f64], weight: &[f64], dy: &[f64], eps: f64) -> LayerNormGrads {
    let d = weight.len();
    let mut grads = LayerNormGrads { dx: Vec::with_capacity(x.len()), dweight: vec![0.0; d], dbias: vec![0.0; d] };
    for (row, dy) in x.chunks(d).zip(dy.chunks(d)) {
        let (mean, rstd) = row_stats(row, eps);
        let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * rstd).collect();
        let g: Vec<f64> = (0..d).map(|j| dy[j] * weight[j]).collect();
        let mean_g = g.iter().sum::<f64>() / d as f64;
        let mean_gxhat = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d as f64;
        grads.dx.extend((0..d).map(|j| rstd * (g[j] - mean_g - xhat[j] * mean_gxhat)));
        for j in 0..d {
            grads.dweight[j] += dy[j] * xhat[j];
            grads.dbias[j] += dy[j];
        }
    }
    grads
}

/// s = x + r and LayerNorm(s): the fused residual add. Returns (s, LayerNorm of s).
pub fn add_layernorm_forward(x: &[f64], r: &[f64], weight: &[f64], bias: &[f64], eps: f64) -> (Vec<f64>, LayerNorm) {
    let sum: Vec<f64> = x.iter().zip(r).map(|(a, b)| a + b).collect();
    let out = layernorm_forward(&sum, weight, bias, eps);
    (sum, out)
}

/// Gradients of [`add_layernorm_forward`] given dsum (the gradient s gets from its other uses) and
/// dy: dx = dsum + LayerNorm's dx, the gradient of s and of both x and r.
pub fn add_layernorm_backward(sum: &[f64], weight: &[f64], dy: &[f64], dsum: &[f64], eps: f64) -> LayerNormGrads {
    let mut grads = layernorm_backward(sum, weight, dy, eps);
    grads.dx.iter_mut().zip(dsum).for_each(|(dx, ds)| *dx += ds);
    grads
}
