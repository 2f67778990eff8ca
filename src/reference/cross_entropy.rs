//! Softmax cross-entropy with integer labels, mean over the batch, in f64. logits: [B, C].

use super::softmax::softmax_forward;

pub struct CrossEntropy {
    pub loss: f64,
    pub losses: Vec<f64>,
    pub probs: Vec<f64>,
}

pub fn cross_entropy_forward(logits: &[f64], labels: &[u32], classes: usize) -> CrossEntropy {
    let losses: Vec<f64> = logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let logsumexp = max + row.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
            logsumexp - row[label as usize]
        })
        .collect();
    let loss = losses.iter().sum::<f64>() / losses.len() as f64;
    CrossEntropy { loss, losses, probs: softmax_forward(logits, classes) }
}

/// dlogits = (probs − onehot(label)) · dloss / B.
pub fn cross_entropy_backward(probs: &[f64], labels: &[u32], classes: usize, dloss: f64) -> Vec<f64> {
    let batch = labels.len() as f64;
    probs
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let onehot = if (i % classes) as u32 == labels[i / classes] { 1.0 } else { 0.0 };
            (p - onehot) * dloss / batch
        })
        .collect()
}
