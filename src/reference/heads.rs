//! Attention head permutes in f64.

/// qkv [B, T, 3·H·hd] → (q, k, v) each [B, H, T, hd].
pub fn split_heads_forward(qkv: &[f64], batch: usize, tokens: usize, heads: usize, head_dim: usize) -> [Vec<f64>; 3] {
    let width = heads * head_dim;
    let mut out = [vec![0.0; qkv.len() / 3], vec![0.0; qkv.len() / 3], vec![0.0; qkv.len() / 3]];
    for b in 0..batch {
        for t in 0..tokens {
            for (s, part) in out.iter_mut().enumerate() {
                for h in 0..heads {
                    for e in 0..head_dim {
                        part[((b * heads + h) * tokens + t) * head_dim + e] = qkv[(b * tokens + t) * 3 * width + s * width + h * head_dim + e];
                    }
                }
            }
        }
    }
    out
}

/// x [B, H, T, hd] → y [B, T, H·hd].
pub fn merge_heads_forward(x: &[f64], batch: usize, heads: usize, tokens: usize, head_dim: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for b in 0..batch {
        for h in 0..heads {
            for t in 0..tokens {
                for e in 0..head_dim {
                    y[(b * tokens + t) * heads * head_dim + h * head_dim + e] = x[((b * heads + h) * tokens + t) * head_dim + e];
                }
            }
        }
    }
    y
}
