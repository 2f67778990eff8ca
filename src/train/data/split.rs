//! The seeded randomness of the data: one seed per purpose and position, the stratified
//! train/val split, shuffling.

use super::folder::Sample;
use crate::rng::{below, next_u64};

/// Stream tags for [`derive_seed`], so the split, the shuffle and the augmentation never share
/// random numbers even under the same user seed.
pub(super) const SPLIT_STREAM: u64 = 1;
pub(super) const SHUFFLE_STREAM: u64 = 2;
pub(super) const AUGMENT_STREAM: u64 = 3;

/// A seed for one purpose (tag) and position (epoch, sample, class...) from the user's seed:
/// each part is folded in through one SplitMix64 step.
pub(super) fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(seed, |s, &p| {
        let mut state = s ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        next_u64(&mut state)
    })
}

/// Fisher–Yates shuffle.
pub(super) fn shuffle<T>(items: &mut [T], rng: &mut u64) {
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
