//! timm's `resample_abs_pos_embed` on the CPU: what `checkpoint_filter_fn` does to a checkpoint's
//! `pos_embed` when the model runs at another image size (or patch grid).
//!
//! timm 1.0.31 calls `F.interpolate(mode='bicubic', antialias=True, align_corners=None)`, which
//! runs PyTorch's `_upsample_bicubic2d_aa`: a PIL-style separable filter (Keys cubic with
//! a = −0.5, its support widened by the scale when downsampling, weights normalised to sum 1),
//! used for upsampling too. (antialias=False would be another kernel, a = −0.75, not this one.)
//!
//! This mirrors PyTorch's float CPU path (aten/src/ATen/native/cpu/UpSampleKernel.cpp:
//! `HelperInterpCubic::aa_filter`, `HelperInterpBase::_compute_indices_min_size_weights_aa`,
//! `separable_upsample_generic_Nd_kernel_impl`) step by step: weights in f32 with the same
//! f32/f64 promotions and the fused multiply-adds torch's x86 build contracts them into, the width
//! resampled first into an f32 buffer, then the height, each output an f32 multiply-add chain in
//! tap order. Against timm 1.0.31 / torch 2.15 (tests/pos_embed.rs): upsampling is bit-identical,
//! downsampling within 1e-7 relative (some outputs differ in the last bit; torch's weights still
//! match exactly, its accumulation does not follow one fixed contraction pattern there).

use crate::error::{Error, Result};

/// PIL's bicubic filter with a = −0.5 (`HelperInterpCubic::aa_filter<float>` with
/// `cubic_convolution1/2` of UpSample.h), in f32, with the fused multiply-adds that torch's
/// build contracts these polynomials into (GCC's default `-ffp-contract=fast` in the AVX2/AVX-512
/// kernels): `mul_add` reproduces torch's weights bit for bit (checked on 1-D probes).
fn aa_cubic(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        // ((A + 2) * x - (A + 3)) * x * x + 1
        let p = (A + 2.0).mul_add(x, -(A + 3.0));
        (p * x).mul_add(x, 1.0)
    } else if x < 2.0 {
        // ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
        let p = A.mul_add(x, -(5.0 * A));
        let q = p.mul_add(x, 8.0 * A);
        q.mul_add(x, -(4.0 * A))
    } else {
        0.0
    }
}

/// The taps of one axis: for each output index, the first input index and its weights.
struct AxisTaps {
    taps: Vec<(usize, Vec<f32>)>,
}

impl AxisTaps {
    /// `_compute_index_ranges_weights` with antialias=True for scalar_t = float, reproducing its
    /// mixed f32/f64 arithmetic term by term (C++ promotes `float op double` to double).
    fn new(input_size: usize, output_size: usize) -> AxisTaps {
        const INTERP_SIZE: f64 = 4.0; // bicubic

        // area_pixel_compute_scale<float>(in, out, align_corners=false, no scale): float / int64.
        let scale = input_size as f32 / output_size as f32;
        // support = (scale >= 1.0) ? (interp_size * 0.5) * scale : interp_size * 0.5, in double,
        // stored as float.
        let support = if scale >= 1.0 { (INTERP_SIZE * 0.5 * scale as f64) as f32 } else { (INTERP_SIZE * 0.5) as f32 };
        let max_interp_size = (support.ceil() as i64) * 2 + 1;
        // invscale = (scale >= 1.0) ? 1.0 / scale : 1.0, in double, stored as float.
        let invscale = if scale >= 1.0 { (1.0 / scale as f64) as f32 } else { 1.0 };
        let taps = (0..output_size)
            .map(|i| {
                // center = scale * (i + 0.5): double, stored as float.
                let center = (scale as f64 * (i as f64 + 0.5)) as f32;
                // (int64)(center - support + 0.5): float subtraction, then double, truncated.
                let xmin = (((center - support) as f64 + 0.5) as i64).max(0);
                let xmax = (((center + support) as f64 + 0.5) as i64).min(input_size as i64);
                let xsize = (xmax - xmin).clamp(0, max_interp_size);
                let mut weights: Vec<f32> = (0..xsize)
                    .map(|j| {
                        // filter((j + xmin - center + 0.5) * invscale): the int64 j + xmin is
                        // converted to float for the float subtraction, + 0.5 and * invscale in
                        // double, and the argument is passed as float.
                        let arg = (((j + xmin) as f32 - center) as f64 + 0.5) * invscale as f64;
                        aa_cubic(arg as f32)
                    })
                    .collect();
                let total: f32 = weights.iter().fold(0.0f32, |acc, &w| acc + w);
                if total != 0.0 {
                    weights.iter_mut().for_each(|w| *w /= total);
                }
                (xmin as usize, weights)
            })
            .collect();
        AxisTaps { taps }
    }
}

/// Resample `[rows, old_w, dim]` along the width to `[rows, new_w, dim]` (or, with the roles of
/// the axes taken by the caller, along the height): `out[r, o, c] = Σ_j in[r, xmin_o + j, c]·w_oj`.
fn resample_axis(input: &[f32], outer: usize, old: usize, inner: usize, taps: &AxisTaps) -> Vec<f32> {
    let new = taps.taps.len();
    let mut out = vec![0.0f32; outer * new * inner];
    for r in 0..outer {
        for (o, (xmin, weights)) in taps.taps.iter().enumerate() {
            let dst = &mut out[(r * new + o) * inner..(r * new + o + 1) * inner];
            for (c, d) in dst.iter_mut().enumerate() {
                // torch (interpolate_aa_single_dim): output = t0 * w0; then output += tj * wj in
                // tap order, f32, each step contracted into a fused multiply-add.
                let at = |j: usize| input[(r * old + xmin + j) * inner + c];
                let mut acc = at(0) * weights[0];
                for (j, &w) in weights.iter().enumerate().skip(1) {
                    acc = at(j).mul_add(w, acc);
                }
                *d = acc;
            }
        }
    }
    out
}

/// Resample a ViT's absolute position embedding to another patch grid, as timm 1.0.31's
/// `resample_abs_pos_embed(posemb, new_size, old_size, num_prefix_tokens)` with its defaults
/// (bicubic, antialias=True, align_corners=None).
///
/// `pos_embed` is `[num_prefix_tokens + old_h·old_w, dim]` row-major (timm's `[1, T, dim]`
/// without the leading 1), the grid tokens in row-major (row, col) order. Returns
/// `[num_prefix_tokens + new_h·new_w, dim]`. The prefix tokens (CLS, registers) pass through
/// unchanged; when the grids are equal the input is returned as is (timm's early exit).
pub fn resample_abs_pos_embed(pos_embed: &[f32], old_grid: (usize, usize), new_grid: (usize, usize), num_prefix_tokens: usize, dim: usize) -> Result<Vec<f32>> {
    const OP: &str = "resample_abs_pos_embed";
    let (old_h, old_w) = old_grid;
    let (new_h, new_w) = new_grid;
    if dim == 0 || old_h == 0 || old_w == 0 || new_h == 0 || new_w == 0 {
        return Err(Error::shape(OP, format!("grids and dim must be non-empty: old {old_grid:?}, new {new_grid:?}, dim {dim}")));
    }
    let expected = old_h
        .checked_mul(old_w)
        .and_then(|n| n.checked_add(num_prefix_tokens))
        .and_then(|t| t.checked_mul(dim))
        .ok_or_else(|| Error::shape(OP, format!("sizes overflow: old {old_grid:?}, prefix {num_prefix_tokens}, dim {dim}")))?;
    if pos_embed.len() != expected {
        return Err(Error::shape(OP, format!("pos_embed has {} values but ({num_prefix_tokens} prefix + {old_h}x{old_w} grid tokens) x dim {dim} = {expected}", pos_embed.len())));
    }
    if old_grid == new_grid {
        return Ok(pos_embed.to_vec());
    }
    new_h
        .checked_mul(new_w)
        .and_then(|n| n.checked_add(num_prefix_tokens))
        .and_then(|t| t.checked_mul(dim))
        .ok_or_else(|| Error::shape(OP, format!("new grid {new_grid:?} with dim {dim} is too large")))?;

    let (prefix, grid) = pos_embed.split_at(num_prefix_tokens * dim);
    // The grid is [H, W, dim]; torch sees it as NCHW (channels-last strides), which changes the
    // memory order but not the arithmetic of each output value.
    let mut x = grid.to_vec();
    // Width first (the contiguous dimension in NCHW), then height; an axis whose size does not
    // change is skipped, as torch does.
    if new_w != old_w {
        x = resample_axis(&x, old_h, old_w, dim, &AxisTaps::new(old_w, new_w));
    }
    if new_h != old_h {
        // Height: rows are the outer axis, each (col, channel) pair is one inner element.
        x = resample_axis(&x, 1, old_h, new_w * dim, &AxisTaps::new(old_h, new_h));
    }
    let mut out = Vec::with_capacity(prefix.len() + x.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(&x);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_identity_when_equal() {
        for (i, o) in [(7, 12), (12, 7), (24, 14), (5, 5), (1, 3), (3, 1)] {
            let taps = AxisTaps::new(i, o);
            for (xmin, w) in &taps.taps {
                let s: f32 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-6, "{i}->{o}: sum {s}");
                assert!(xmin + w.len() <= i);
            }
        }
        let pe: Vec<f32> = (0..(1 + 9) * 2).map(|v| v as f32).collect();
        assert_eq!(resample_abs_pos_embed(&pe, (3, 3), (3, 3), 1, 2).unwrap(), pe);
    }

    #[test]
    fn constant_stays_constant_and_prefix_passes() {
        let dim = 3;
        let mut pe = vec![7.0f32, -1.0, 2.5]; // one prefix token
        pe.extend(std::iter::repeat_n(0.25f32, 4 * 5 * dim));
        let out = resample_abs_pos_embed(&pe, (4, 5), (9, 2), 1, dim).unwrap();
        assert_eq!(out.len(), (1 + 18) * dim);
        assert_eq!(&out[..3], &[7.0, -1.0, 2.5]);
        assert!(out[3..].iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(resample_abs_pos_embed(&[0.0; 10], (2, 2), (3, 3), 1, 3).is_err());
        assert!(resample_abs_pos_embed(&[], (0, 2), (3, 3), 0, 3).is_err());
        assert!(resample_abs_pos_embed(&[0.0; 12], (2, 2), (0, 3), 0, 3).is_err());
        assert!(resample_abs_pos_embed(&[0.0; 12], (2, 2), (usize::MAX, 3), 0, 3).is_err());
    }
}
