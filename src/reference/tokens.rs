//! Token-axis concatenation, slicing and dropping in f64. Tensors are [B, T, D], row-major.

/// parts: (data, [Bᵢ, Tᵢ, D]) with Bᵢ = B or 1 (broadcast) → [B, ΣTᵢ, D].
pub fn concat_tokens_forward(parts: &[(&[f64], [usize; 3])], batch: usize) -> Vec<f64> {
    let width = parts[0].1[2];
    let mut y = Vec::new();
    for b in 0..batch {
        for (data, [pb, tokens, _]) in parts {
            let src_b = if *pb == 1 { 0 } else { b };
            y.extend_from_slice(&data[src_b * tokens * width..(src_b + 1) * tokens * width]);
        }
    }
    y
}

/// x: [B, T, D] → [B, count, D].
pub fn slice_tokens_forward(x: &[f64], [batch, tokens, width]: [usize; 3], start: usize, count: usize) -> Vec<f64> {
    (0..batch).flat_map(|b| x[(b * tokens + start) * width..(b * tokens + start + count) * width].iter().copied()).collect()
}

/// x: [B, T, D] → [B, T − count, D], without tokens start..start + count.
pub fn drop_tokens_forward(x: &[f64], [batch, tokens, width]: [usize; 3], start: usize, count: usize) -> Vec<f64> {
    (0..batch)
        .flat_map(|b| (0..tokens).filter(move |t| !(start..start + count).contains(t)).map(move |t| (b, t)))
        .flat_map(|(b, t)| x[(b * tokens + t) * width..(b * tokens + t + 1) * width].iter().copied())
        .collect()
}
