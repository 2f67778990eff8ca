//! Attention in f64, straight from the definition, with the T×T probabilities written out:
//! o = softmax(s·q·kᵀ)·v per (batch, head). What the fused kernel (which never forms P) is
//! tested against. q, k, v, o: [BH, T, hd] flattened; lse: [BH, T].

/// The probabilities P [T, T] of one head and its row log-sum-exps [T].
fn probabilities(q: &[f64], k: &[f64], tokens: usize, head_dim: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let mut p = vec![0.0; tokens * tokens];
    let mut lse = vec![0.0; tokens];
    for i in 0..tokens {
        let row = &mut p[i * tokens..(i + 1) * tokens];
        for (j, s) in row.iter_mut().enumerate() {
            *s = scale * (0..head_dim).map(|e| q[i * head_dim + e] * k[j * head_dim + e]).sum::<f64>();
        }
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|s| (s - max).exp()).sum();
        row.iter_mut().for_each(|s| *s = (*s - max).exp() / sum);
        lse[i] = max + sum.ln();
    }
    (p, lse)
}

/// (o [BH, T, hd], lse [BH, T]).
pub fn attention_forward(q: &[f64], k: &[f64], v: &[f64], tokens: usize, head_dim: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let per_head = tokens * head_dim;
    let (mut o, mut lse) = (Vec::with_capacity(q.len()), Vec::with_capacity(q.len() / head_dim));
    for ((q, k), v) in q.chunks(per_head).zip(k.chunks(per_head)).zip(v.chunks(per_head)) {
        let (p, l) = probabilities(q, k, tokens, head_dim, scale);
        for i in 0..tokens {
            o.extend((0..head_dim).map(|e| (0..tokens).map(|j| p[i * tokens + j] * v[j * head_dim + e]).sum::<f64>()));
        }
        lse.extend(l);
    }
    (o, lse)
}

/// (dq, dk, dv), each [BH, T, hd], from dO [BH, T, hd]: through P explicitly, dV = Pᵀ·dO,
/// dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = s·dS·K, dK = s·dSᵀ·Q.
pub fn attention_backward(q: &[f64], k: &[f64], v: &[f64], dout: &[f64], tokens: usize, head_dim: usize, scale: f64) -> [Vec<f64>; 3] {
    let per_head = tokens * head_dim;
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; q.len()], vec![0.0; q.len()]);
    for h in 0..q.len() / per_head {
        let at = h * per_head..(h + 1) * per_head;
        let (q, k, v, d_o) = (&q[at.clone()], &k[at.clone()], &v[at.clone()], &dout[at.clone()]);
        let (p, _) = probabilities(q, k, tokens, head_dim, scale);
        let (dq, dk, dv) = (&mut dq[at.clone()], &mut dk[at.clone()], &mut dv[at]);
        for i in 0..tokens {
            let dp: Vec<f64> = (0..tokens).map(|j| (0..head_dim).map(|e| d_o[i * head_dim + e] * v[j * head_dim + e]).sum()).collect();
            let dot: f64 = (0..tokens).map(|j| p[i * tokens + j] * dp[j]).sum();
            for j in 0..tokens {
                let pij = p[i * tokens + j];
                let ds = pij * (dp[j] - dot);
                for e in 0..head_dim {
                    dv[j * head_dim + e] += pij * d_o[i * head_dim + e];
                    dq[i * head_dim + e] += scale * ds * k[j * head_dim + e];
                    dk[j * head_dim + e] += scale * ds * q[i * head_dim + e];
                }
            }
        }
    }
    [dq, dk, dv]
}
