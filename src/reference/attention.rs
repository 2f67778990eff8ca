//! Attention in f64, straight from the definition, with the Tq×T probabilities written out:
//! o = softmax(s·q·kᵀ)·v per (batch, head). What the fused kernel (which never forms P) is
//! tested against. q, o: [BH, Tq, hd] flattened; k, v: [BH, T, hd]; lse: [BH, Tq]. Tq = T is
//! self-attention; fewer query rows ask only for the outputs that are read.

/// The sizes of one call: Tq query rows, T key rows, hd columns.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub queries: usize,
    pub tokens: usize,
    pub head_dim: usize,
}

impl Heads {
    /// Self-attention: as many query rows as keys.
    pub fn square(tokens: usize, head_dim: usize) -> Heads {
        Heads { queries: tokens, tokens, head_dim }
    }
}

/// The probabilities P [Tq, T] of one head and its row log-sum-exps [Tq].
fn probabilities(q: &[f64], k: &[f64], n: Heads, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let (tq, t, hd) = (n.queries, n.tokens, n.head_dim);
    let mut p = vec![0.0; tq * t];
    let mut lse = vec![0.0; tq];
    for i in 0..tq {
        let row = &mut p[i * t..(i + 1) * t];
        for (j, s) in row.iter_mut().enumerate() {
            *s = scale * (0..hd).map(|e| q[i * hd + e] * k[j * hd + e]).sum::<f64>();
        }
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|s| (s - max).exp()).sum();
        row.iter_mut().for_each(|s| *s = (*s - max).exp() / sum);
        lse[i] = max + sum.ln();
    }
    (p, lse)
}

/// (o [BH, Tq, hd], lse [BH, Tq]).
pub fn attention_forward(q: &[f64], k: &[f64], v: &[f64], n: Heads, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let (tq, t, hd) = (n.queries, n.tokens, n.head_dim);
    let (mut o, mut lse) = (Vec::with_capacity(q.len()), Vec::with_capacity(q.len() / hd));
    for ((q, k), v) in q.chunks(tq * hd).zip(k.chunks(t * hd)).zip(v.chunks(t * hd)) {
        let (p, l) = probabilities(q, k, n, scale);
        for i in 0..tq {
            o.extend((0..hd).map(|e| (0..t).map(|j| p[i * t + j] * v[j * hd + e]).sum::<f64>()));
        }
        lse.extend(l);
    }
    (o, lse)
}

/// (dq [BH, Tq, hd], dk, dv [BH, T, hd]) from dO [BH, Tq, hd]: through P explicitly,
/// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = s·dS·K, dK = s·dSᵀ·Q.
pub fn attention_backward(q: &[f64], k: &[f64], v: &[f64], dout: &[f64], n: Heads, scale: f64) -> [Vec<f64>; 3] {
    let (tq, t, hd) = (n.queries, n.tokens, n.head_dim);
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
    for h in 0..q.len() / (tq * hd) {
        let (at_q, at_k) = (h * tq * hd..(h + 1) * tq * hd, h * t * hd..(h + 1) * t * hd);
        let (q, d_o) = (&q[at_q.clone()], &dout[at_q.clone()]);
        let (k, v) = (&k[at_k.clone()], &v[at_k.clone()]);
        let (p, _) = probabilities(q, k, n, scale);
        let (dq, dk, dv) = (&mut dq[at_q], &mut dk[at_k.clone()], &mut dv[at_k]);
        for i in 0..tq {
            let dp: Vec<f64> = (0..t).map(|j| (0..hd).map(|e| d_o[i * hd + e] * v[j * hd + e]).sum()).collect();
            let dot: f64 = (0..t).map(|j| p[i * t + j] * dp[j]).sum();
            for j in 0..t {
                let pij = p[i * t + j];
                let ds = pij * (dp[j] - dot);
                for e in 0..hd {
                    dv[j * hd + e] += pij * d_o[i * hd + e];
                    dq[i * hd + e] += scale * ds * k[j * hd + e];
                    dk[j * hd + e] += scale * ds * q[i * hd + e];
                }
            }
        }
    }
    [dq, dk, dv]
}
