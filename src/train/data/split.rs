//! The seeded randomness of the data: one seed per purpose and position, the stratified
//! train/val split, shuffling.

use super::Sample;
use crate::rng::{below, next_u64};

/// Stream tags for [`derive_seed`], so the split, the shuffle and the augmentation never share
/// random numbers even under the same user seed.
const SPLIT_STREAM: u64 = 1;
const SHUFFLE_STREAM: u64 = 2;
const AUGMENT_STREAM: u64 = 3;

/// A seed for one purpose (tag) and position (epoch, sample, class...) from the user's seed:
/// each part is folded in through one SplitMix64 step.
fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(seed, |s, &p| {
        let mut state = s ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        next_u64(&mut state)
    })
}

/// Fisher–Yates shuffle.
fn shuffle<T>(items: &mut [T], rng: &mut u64) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(i + 1, rng));
    }
}

/// The paper's split when there is no validation folder: a seeded split, stratified per class
/// (each class keeps ~`val_fraction` for validation, at least 1 when the class has ≥ 2 images,
/// and always at least 1 for training). Both halves keep the input order. Each class is drawn
/// with its own seed, so adding images to one class leaves the other classes' splits alone.
pub fn split_train_val(samples: &[Sample], val_fraction: f64, seed: u64) -> (Vec<Sample>, Vec<Sample>) {
    let num_classes = samples.iter().map(|s| s.label + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, s) in samples.iter().enumerate() {
        by_class[s.label].push(i);
    }
    let mut is_val = vec![false; samples.len()];
    for (label, members) in by_class.iter_mut().enumerate() {
        let mut rng = derive_seed(seed, &[SPLIT_STREAM, label as u64]);
        shuffle(members, &mut rng);
        for &i in &members[..val_count(members.len(), val_fraction)] {
            is_val[i] = true;
        }
    }
    let (val, train): (Vec<_>, Vec<_>) = samples.iter().zip(&is_val).partition(|(_, &v)| v);
    let unzip = |v: Vec<(&Sample, &bool)>| v.into_iter().map(|(s, _)| s.clone()).collect();
    (unzip(train), unzip(val))
}

/// How many of a class's `n` images go to validation.
fn val_count(n: usize, fraction: f64) -> usize {
    if n < 2 || fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
}

/// Sample indices in the order of one epoch: a seeded per-epoch permutation, or the identity.
pub fn epoch_order(n: usize, shuffle_samples: bool, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle_samples {
        let mut rng = derive_seed(seed, &[SHUFFLE_STREAM, epoch as u64]);
        shuffle(&mut order, &mut rng);
    }
    order
}

/// The seed of sample `index`'s random crop and flip in `epoch`: the same whichever thread (or
/// browser task) decodes it, and whether the run was resumed.
pub fn augment_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    derive_seed(seed, &[AUGMENT_STREAM, epoch as u64, index as u64])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn val_count_keeps_one_for_each_side() {
        assert_eq!([0, 1, 2, 3, 10, 15, 30].map(|n| val_count(n, 0.1)), [0, 0, 1, 1, 1, 2, 3]);
        assert_eq!(val_count(5, 1.0), 4);
        assert_eq!(val_count(5, f64::NAN), 0);
    }

    #[test]
    fn derived_seeds_differ_per_stream_and_position() {
        let a = derive_seed(1, &[AUGMENT_STREAM, 0, 5]);
        assert_ne!(a, derive_seed(1, &[AUGMENT_STREAM, 0, 6]));
        assert_ne!(a, derive_seed(1, &[AUGMENT_STREAM, 1, 5]));
        assert_ne!(a, derive_seed(2, &[AUGMENT_STREAM, 0, 5]));
        assert_ne!(derive_seed(1, &[SHUFFLE_STREAM, 0]), derive_seed(1, &[SPLIT_STREAM, 0]));
    }
}
