//! `vpt check`: every kernel, every variant, run on this adapter and held to its tolerance, so that
//! a Metal, DX12 or Vulkan owner can see the engine is correct on their GPU before trusting it.
//!
//! Two yardsticks:
//! - PyTorch (`pytorch.rs`): the fixtures of `fixtures/kernels/`, written by `fixtures/generate.py`
//!   with torch, embedded in the binary. Inputs, outputs and autograd gradients per kernel family.
//! - f64 (`reference.rs`): the plain CPU versions in [`crate::reference`], on random inputs at
//!   awkward shapes (odd sizes across tile edges), for every matmul variant and layout, the
//!   fused attention, the row kernels and the f16 packing of kept activations.
//!
//! The row kernels (softmax, LayerNorm, cross-entropy) are checked as built with subgroup
//! reductions where the device has them, and again on the same adapter opened without subgroups.
//! The tests of `tests/kernels/pytorch.rs` run the same checks, so the suite and `vpt check` hold
//! the kernels to the same tolerances.

pub mod pytorch;
pub mod reference;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// How an error is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// max|ours − want| / max|want|.
    Relative,
    /// max over elements of |ours − want| / max(1, |want|): absolute where the value is at most
    /// 1, relative above (GELU: for |y| ≥ 8 one f32 ulp is already ≥ 9.5e-7).
    Absolute,
    /// max|ours − want| / max(1, max|want|): relative to the output's scale, with a floor of 1 so
    /// that an all-near-zero output does not turn rounding noise into a large ratio.
    Scaled,
    /// max over elements of |ours − want| / |want| (|ours| where want is 0): relative per value,
    /// for outputs that span many scales (f16 rounding from 2⁻¹⁴ to 65504).
    PerValue,
}

/// One comparison: a kernel's output against its yardstick.
#[derive(Clone, Debug)]
pub struct CheckRow {
    /// "softmax", "matmul (gpu64x64)", …
    pub kernel: String,
    /// The fixture case and tensor ("attn.dx"), or the random shape.
    pub case: String,
    /// "pytorch" or "f64".
    pub against: &'static str,
    /// The device, as [`Gpu::describe`] names it.
    pub device: String,
    /// The worst error (`Metric`), or infinity where the kernel failed to run.
    pub error: f64,
    pub tolerance: f64,
    /// Why the kernel could not run, if it could not.
    pub failure: Option<String>,
}

impl CheckRow {
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.error.is_finite() && self.error <= self.tolerance
    }

    /// One line of `vpt check`'s table.
    pub fn line(&self) -> String {
        let verdict = if self.passed() { "ok" } else { "FAIL" };
        let error = match &self.failure {
            Some(msg) => format!("error: {msg}"),
            None => format!("{:.2e}", self.error),
        };
        format!("{verdict:<5} {:<28} {:<30} {:<8} {:>9}  ≤ {:.0e}  {}", self.kernel, self.case, self.against, error, self.tolerance, self.device)
    }
}

/// Collects the comparisons of one run.
pub struct Checker<'a> {
    pub gpu: &'a Gpu,
    pub rows: Vec<CheckRow>,
    /// Called with each row as it is made (the CLI prints it).
    progress: Box<dyn FnMut(&CheckRow) + 'a>,
}

impl<'a> Checker<'a> {
    pub fn new(gpu: &'a Gpu, progress: impl FnMut(&CheckRow) + 'a) -> Checker<'a> {
        Checker { gpu, rows: Vec::new(), progress: Box::new(progress) }
    }

    /// Compare `got` with `want` (same number of elements) and record the row. (Each argument is
    /// one column of the row it makes; a struct for them would only be built to be taken apart.)
    #[allow(clippy::too_many_arguments)]
    pub fn compare(&mut self, kernel: &str, case: &str, against: &'static str, got: &Tensor, want: &[f64], metric: Metric, tolerance: f64) -> Result<()> {
        if got.numel() != want.len() {
            return Err(Error::invalid(kernel, format!("{case}: {} values, the yardstick has {}", got.numel(), want.len())));
        }
        let got = got.to_vec()?;
        let error = worst_error(&got, want, metric);
        self.push(CheckRow { kernel: kernel.to_string(), case: case.to_string(), against, device: self.gpu.describe(), error, tolerance, failure: None });
        Ok(())
    }

    /// Record that a group of checks could not run (a kernel that failed to compile or launch).
    pub fn failed(&mut self, kernel: &str, against: &'static str, why: &Error) {
        let row = CheckRow { kernel: kernel.to_string(), case: "-".into(), against, device: self.gpu.describe(), error: f64::INFINITY, tolerance: 0.0, failure: Some(why.to_string()) };
        self.push(row);
    }

    fn push(&mut self, row: CheckRow) {
        (self.progress)(&row);
        self.rows.push(row);
    }
}

/// The worst error of `got` against `want` under `metric`; NaN anywhere is infinite.
pub fn worst_error(got: &[f32], want: &[f64], metric: Metric) -> f64 {
    let mut worst = 0.0f64;
    let scale = want.iter().fold(0.0f64, |m, b| m.max(b.abs()));
    for (&a, &b) in got.iter().zip(want) {
        let diff = (a as f64 - b).abs();
        let e = match metric {
            Metric::Relative => diff / scale.max(f64::MIN_POSITIVE),
            Metric::Absolute => diff / b.abs().max(1.0),
            Metric::Scaled => diff / scale.max(1.0),
            Metric::PerValue if b == 0.0 => a.abs() as f64,
            Metric::PerValue => diff / b.abs(),
        };
        if !e.is_finite() {
            return f64::INFINITY;
        }
        worst = worst.max(e);
    }
    worst
}

/// Every check on `gpu`: all PyTorch fixtures and all f64 cases; the row kernels again on the
/// same adapter without subgroups where it has them. `progress` sees each row as it is made.
pub fn run_all(gpu: &Gpu, mut progress: impl FnMut(&CheckRow)) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    {
        let mut checker = Checker::new(gpu, &mut progress);
        pytorch::check_all(&mut checker, pytorch::FAMILIES);
        reference::check_all(&mut checker, false);
        rows.append(&mut checker.rows);
    }
    if gpu.has_subgroups() {
        let plain = gpu.reopen_without(wgpu::Features::SUBGROUP)?;
        let mut checker = Checker::new(&plain, &mut progress);
        pytorch::check_all(&mut checker, pytorch::ROW_FAMILIES);
        reference::check_all(&mut checker, true);
        rows.append(&mut checker.rows);
    }
    Ok(rows)
}
