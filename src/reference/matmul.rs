//! Matrix multiply in f64: C = op(A)·op(B) + bias, batched, straight from the definition.
//!
//! The backward is written out element by element from ∂C[b,m,n]/∂op(A)[b,m,k] = op(B)[b,k,n]
//! and ∂C[b,m,n]/∂op(B)[b,k,n] = op(A)[b,m,k], accumulating into shared (unbatched) operands, so it
//! checks the GPU's composition of transposed matmuls independently.

/// The problem: `batch` products of op(A) [m, k] by op(B) [k, n]. An operand that is not
/// `*_batched` is one matrix shared by every batch.
#[derive(Clone, Copy, Debug)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_batched: bool,
    pub b_batched: bool,
}

impl MatmulDims {
    /// Index into A of op(A)[batch, m, k]; A is [batch?, m, k], or [batch?, k, m] when trans_a.
    fn a_index(&self, batch: usize, m: usize, k: usize) -> usize {
        let base = if self.a_batched { batch * self.m * self.k } else { 0 };
        base + if self.trans_a { k * self.m + m } else { m * self.k + k }
    }
    /// Index into B of op(B)[batch, k, n]; B is [batch?, k, n], or [batch?, n, k] when trans_b.
    fn b_index(&self, batch: usize, k: usize, n: usize) -> usize {
        let base = if self.b_batched { batch * self.k * self.n } else { 0 };
        base + if self.trans_b { n * self.k + k } else { k * self.n + n }
    }
    /// Index into C [batch, m, n].
    fn c_index(&self, batch: usize, m: usize, n: usize) -> usize {
        (batch * self.m + m) * self.n + n
    }
    fn a_len(&self) -> usize {
        let matrices = if self.a_batched { self.batch } else { 1 };
        matrices * self.m * self.k
    }
    fn b_len(&self) -> usize {
        let matrices = if self.b_batched { self.batch } else { 1 };
        matrices * self.k * self.n
    }
}

/// a, b as laid out by `d`; bias: [n] → C: [batch, m, n].
pub fn matmul_forward(a: &[f64], b: &[f64], bias: Option<&[f64]>, d: MatmulDims) -> Vec<f64> {
    let mut c = vec![0.0; d.batch * d.m * d.n];
    for batch in 0..d.batch {
        for m in 0..d.m {
            for n in 0..d.n {
                let dot: f64 = (0..d.k).map(|k| a[d.a_index(batch, m, k)] * b[d.b_index(batch, k, n)]).sum();
                c[d.c_index(batch, m, n)] = dot + bias.map_or(0.0, |bias| bias[n]);
            }
        }
    }
    c
}

/// Gradients of ⟨C, dc⟩: (dA laid out like A, dB laid out like B, dbias [n]).
pub fn matmul_backward(a: &[f64], b: &[f64], dc: &[f64], d: MatmulDims) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut da = vec![0.0; d.a_len()];
    let mut db = vec![0.0; d.b_len()];
    let mut dbias = vec![0.0; d.n];
    for batch in 0..d.batch {
        for m in 0..d.m {
            for n in 0..d.n {
                let g = dc[d.c_index(batch, m, n)];
                dbias[n] += g;
                for k in 0..d.k {
                    da[d.a_index(batch, m, k)] += g * b[d.b_index(batch, k, n)];
                    db[d.b_index(batch, k, n)] += g * a[d.a_index(batch, m, k)];
                }
            }
        }
    }
    (da, db, dbias)
}
