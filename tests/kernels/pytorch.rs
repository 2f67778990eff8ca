//! Every kernel against PyTorch, on every backend: the checks of `vpt check`
//! (`vpt_wgsl::check::pytorch`, where each tolerance is explained), run here on the fixtures of
//! fixtures/kernels/<family>.safetensors (written by fixtures/generate.py, torch pinned in
//! fixtures/requirements.txt), as embedded in the library. Each comparison prints its error; run
//! with `-- --nocapture` to see the table:
//!   cargo test --release --test kernels pytorch -- --nocapture
//!
//! The row families (softmax, LayerNorm, cross-entropy) run on `row_gpus()`: also on the Vulkan
//! adapter opened without subgroups, so both of their builds are held to torch.

use vpt_wgsl::check::{pytorch, Checker};
use vpt_wgsl::Gpu;

use crate::common::{gpus, row_gpus};

/// Run `family`'s checks on each device, print every comparison, fail on any out of tolerance.
fn assert_family(family: &str, devices: &[Gpu]) {
    for gpu in devices {
        let mut checker = Checker::new(gpu, |row| println!("{}", row.line()));
        pytorch::check_family(&mut checker, family).unwrap_or_else(|e| panic!("{family} on {}: {e}", gpu.describe()));
        let failed: Vec<String> = checker.rows.iter().filter(|r| r.failed()).map(|r| r.line()).collect();
        assert!(!checker.rows.is_empty(), "{family}: no comparisons ran");
        assert!(failed.is_empty(), "{family} against PyTorch:\n{}", failed.join("\n"));
    }
}

#[test]
fn elementwise_matches_pytorch() {
    assert_family("elementwise", gpus());
}

#[test]
fn gelu_matches_pytorch() {
    assert_family("gelu", gpus());
}

#[test]
fn reductions_match_pytorch() {
    assert_family("reduce", gpus());
}

#[test]
fn tokens_match_pytorch() {
    assert_family("tokens", gpus());
}

#[test]
fn heads_match_pytorch() {
    assert_family("heads", gpus());
}

/// timm's PatchEmbed (Conv2d) vs im2col + matmul, and im2col vs torch's unfold.
#[test]
fn patch_embedding_matches_pytorch_conv_and_unfold() {
    assert_family("patch", gpus());
}

#[test]
fn optimizers_match_pytorch() {
    assert_family("optim", gpus());
}

/// Every matmul kernel, all four layouts, and the backward.
#[test]
fn matmul_matches_pytorch() {
    assert_family("matmul", gpus());
}

#[test]
fn softmax_matches_pytorch() {
    assert_family("softmax", row_gpus());
}

/// Includes the two ill-conditioned cases held to f64 instead (torch's own f32 answer is off).
#[test]
fn layernorm_matches_pytorch() {
    assert_family("layernorm", row_gpus());
}

#[test]
fn cross_entropy_matches_pytorch() {
    assert_family("cross_entropy", row_gpus());
}

/// torch's scaled_dot_product_attention against the fused kernels.
#[test]
fn attention_matches_pytorch() {
    assert_family("attention", gpus());
}

/// The check catches a wrong answer: a softmax whose output is off by one part in 1e4 fails.
#[test]
fn a_wrong_answer_fails_the_check() {
    let gpu = &gpus()[0];
    let mut checker = Checker::new(gpu, |_| ());
    let x = vpt_wgsl::Tensor::from_slice(gpu, &[2], &[1.0, 1.0]).unwrap();
    checker.compare("test", "off", "f64", &x, &[1.0, 1.0001], vpt_wgsl::check::Metric::Relative, 1e-5).unwrap();
    checker.compare("test", "nan", "f64", &x, &[1.0, f64::NAN], vpt_wgsl::check::Metric::Relative, 1e-5).unwrap();
    checker.compare("test", "exact", "f64", &x, &[1.0, 1.0], vpt_wgsl::check::Metric::Relative, 0.0).unwrap();
    let passed: Vec<bool> = checker.rows.iter().map(|r| r.passed()).collect();
    assert_eq!(passed, [false, false, true]);
}
