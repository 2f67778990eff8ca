//! `vpt_wgsl::model::pos_embed::resample_abs_pos_embed` against timm 1.0.31's `resample_abs_pos_embed`
//! (bicubic, antialias=True): fixtures/vit/pos_embed.safetensors, written by
//! fixtures/generate_vit.py, holds "<case>.input" [1, prefix + h·w, D] and "<case>.output", with
//! "<case>.old_grid", "<case>.new_grid" ("H,W") and "<case>.num_prefix_tokens" in its metadata.
//! CPU only, no GPU needed. Prints each case's error:
//!
//!     cargo test --release --test pos_embed -- --nocapture

use vpt_wgsl::io::TensorFile;
use vpt_wgsl::model::pos_embed::resample_abs_pos_embed;

/// Relative error bound: max|ours − timm| / max|timm|. We mirror torch's float arithmetic
/// (upsampling comes out bit-identical, downsampling within a last-bit difference, ~1e-7), so
/// 1e-5 leaves room for another torch build's choice of fused multiply-adds.
const TOLERANCE: f64 = 1e-5;

fn grid(f: &TensorFile, key: &str) -> (usize, usize) {
    let raw: String = f.meta(key).unwrap();
    let parts: Vec<usize> = raw.split(',').map(|s| s.trim().parse().unwrap()).collect();
    assert_eq!(parts.len(), 2, "{key} = {raw:?}");
    (parts[0], parts[1])
}

#[test]
fn resample_matches_timm() {
    let path = format!("{}/fixtures/vit/pos_embed.safetensors", env!("CARGO_MANIFEST_DIR"));
    let f = TensorFile::read(&path).unwrap_or_else(|e| panic!("{e}\n(regenerate with: python3 fixtures/generate_vit.py)"));
    let cases: String = f.meta("cases").unwrap();
    let mut worst = 0.0f64;
    for case in cases.split(',') {
        let old = grid(&f, &format!("{case}.old_grid"));
        let new = grid(&f, &format!("{case}.new_grid"));
        let prefix: usize = f.meta(&format!("{case}.num_prefix_tokens")).unwrap();
        let (in_shape, input) = f.f32(&format!("{case}.input")).unwrap();
        let (out_shape, want) = f.f32(&format!("{case}.output")).unwrap();
        let dim = in_shape[2];
        assert_eq!(in_shape, &[1, prefix + old.0 * old.1, dim]);
        assert_eq!(out_shape, &[1, prefix + new.0 * new.1, dim]);

        let got = resample_abs_pos_embed(input, old, new, prefix, dim).unwrap();
        assert_eq!(got.len(), want.len(), "{case}: length");
        assert_eq!(&got[..prefix * dim], &input[..prefix * dim], "{case}: prefix tokens must pass through unchanged");
        let diff = got.iter().zip(want).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
        let scale = want.iter().fold(0.0f64, |m, &b| m.max((b as f64).abs()));
        let err = diff / scale;
        let bitwise = got.iter().zip(want).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
        println!(
            "pos_embed {case:<22} {old:?} -> {new:?} prefix {prefix} dim {dim}: relative error {err:.2e} \
             ({bitwise}/{} values bit-identical)  (tolerance {TOLERANCE:.0e})",
            want.len()
        );
        assert!(err <= TOLERANCE, "{case}: relative error {err:.3e} > {TOLERANCE:.0e}");
        worst = worst.max(err);
    }
    println!("pos_embed: max relative error over all cases {worst:.2e}");
}
