//! `vpt check`: every kernel, every variant, run on this adapter and held to its tolerance, so that
//! a Metal, DX12 or Vulkan owner can see the engine is correct on their GPU before trusting it.
//!
//! Two yardsticks:
//! - PyTorch (`pytorch.rs`): the fixtures of `fixtures/kernels/`, written by `fixtures/generate.py`
//!   with torch, embedded in the binary. Inputs, outputs and autograd gradients per kernel family.
//! - f64 (`reference.rs`): the plain CPU versions in [`crate::reference`], on random inputs at
//!   awkward shapes (odd sizes across tile edges), for every matmul variant and layout (B also
//!   as f16 and read from a weight's texels), the fused attention, the row kernels and the f16
//!   packing of kept activations.
//!
//! The row kernels (softmax, LayerNorm, cross-entropy) are checked as built with subgroup
//! reductions where the device has them, and again on the same adapter opened without subgroups;
//! so is the fused attention (its subgroup build shares the streamed rows by shuffles).
//! The tests of `tests/kernels/pytorch.rs` run the same checks, so the suite and `vpt check` hold
//! the kernels to the same tolerances.

pub mod pytorch;
pub mod reference;

use crate::error::{Error, Result};
use crate::gpu::{feature_names, Gpu};
use crate::kernels::matmul::MatmulKernel;
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
    /// Why these checks were not run on this device: the feature it lacks.
    pub skipped: Option<String>,
}

impl CheckRow {
    pub fn passed(&self) -> bool {
        self.skipped.is_none() && self.failure.is_none() && self.error.is_finite() && self.error <= self.tolerance
    }

    /// Ran, and out of tolerance or failed to run (a skipped check did not fail).
    pub fn failed(&self) -> bool {
        self.skipped.is_none() && !self.passed()
    }

    /// One line of `vpt check`'s table.
    pub fn line(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("{:<5} {:<28} {:<30} {:<8} skipped: {why}  {}", "skip", self.kernel, self.case, self.against, self.device);
        }
        let verdict = if self.passed() { "ok" } else { "FAIL" };
        let error = match &self.failure {
            Some(msg) => format!("error: {msg}"),
            None => format!("{:.2e}", self.error),
        };
        format!("{verdict:<5} {:<28} {:<30} {:<8} {:>9}  ≤ {:.0e}  {}", self.kernel, self.case, self.against, error, self.tolerance, self.device)
    }

    /// The row as JSON (the browser's `/check` table).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kernel": self.kernel, "case": self.case, "against": self.against, "device": self.device,
            "error": if self.error.is_finite() { self.error.into() } else { serde_json::Value::Null },
            "tolerance": self.tolerance, "failure": self.failure, "skipped": self.skipped, "ok": self.passed(),
        })
    }
}

/// What a comparison is against: values on the host, or another tensor read back with it.
enum Want {
    Values(Vec<f64>),
    Tensor(Tensor),
}

/// A row of the table, made at once or once its read-back is done.
enum Entry {
    Row(CheckRow),
    /// A comparison whose tensors are read back at the next [`Checker::settle`].
    Waiting {
        row: CheckRow,
        got: Tensor,
        want: Want,
        metric: Metric,
    },
}

/// Collects the comparisons of one run.
///
/// Natively each comparison reads its tensor back at once. On the browser's WebGPU nothing may
/// block, so the comparisons wait, in order, until [`Checker::settle`] reads them back without
/// blocking; `run_all_async` settles after each family.
pub struct Checker<'a> {
    pub gpu: &'a Gpu,
    pub rows: Vec<CheckRow>,
    waiting: Vec<Entry>,
    /// Called with each row as it is made (the CLI prints it).
    progress: Box<dyn FnMut(&CheckRow) + 'a>,
}

impl<'a> Checker<'a> {
    pub fn new(gpu: &'a Gpu, progress: impl FnMut(&CheckRow) + 'a) -> Checker<'a> {
        Checker { gpu, rows: Vec::new(), waiting: Vec::new(), progress: Box::new(progress) }
    }

    /// Compare `got` with `want` (same number of elements) and record the row. (Each argument is
    /// one column of the row it makes; a struct for them would only be built to be taken apart.)
    #[allow(clippy::too_many_arguments)]
    pub fn compare(&mut self, kernel: &str, case: &str, against: &'static str, got: &Tensor, want: &[f64], metric: Metric, tolerance: f64) -> Result<()> {
        if got.numel() != want.len() {
            return Err(Error::invalid(kernel, format!("{case}: {} values, the yardstick has {}", got.numel(), want.len())));
        }
        self.enter(kernel, case, against, got, Want::Values(want.to_vec()), metric, tolerance)
    }

    /// [`Checker::compare`] against the values of another tensor (of the same size).
    #[allow(clippy::too_many_arguments)]
    pub fn compare_tensors(&mut self, kernel: &str, case: &str, against: &'static str, got: &Tensor, want: &Tensor, metric: Metric, tolerance: f64) -> Result<()> {
        if got.numel() != want.numel() {
            return Err(Error::invalid(kernel, format!("{case}: {} values, the yardstick has {}", got.numel(), want.numel())));
        }
        self.enter(kernel, case, against, got, Want::Tensor(want.clone()), metric, tolerance)
    }

    /// Record that a group of checks could not run (a kernel that failed to compile or launch).
    pub fn failed(&mut self, kernel: &str, against: &'static str, why: &Error) {
        let row = CheckRow { failure: Some(why.to_string()), ..self.row(kernel, "-", against, 0.0) };
        self.push(Entry::Row(row));
    }

    /// Record that a group of checks was not run: those of `kernel` ("matmul (every kernel)" for
    /// all of them) whose cases contain `cases` ("-": every case). `why` names the feature this
    /// device lacks.
    pub fn skipped(&mut self, kernel: &str, against: &'static str, cases: &str, why: String) {
        let row = CheckRow { skipped: Some(why), ..self.row(kernel, cases, against, 0.0) };
        self.push(Entry::Row(row));
    }

    /// Read back every comparison still waiting, without blocking, and record their rows.
    pub async fn settle(&mut self) -> Result<()> {
        for entry in std::mem::take(&mut self.waiting) {
            let row = match entry {
                Entry::Row(row) => row,
                Entry::Waiting { row, got, want, metric } => {
                    let want = match want {
                        Want::Values(v) => v,
                        Want::Tensor(t) => t.to_vec_async().await?.into_iter().map(f64::from).collect(),
                    };
                    CheckRow { error: worst_error(&got.to_vec_async().await?, &want, metric), ..row }
                }
            };
            (self.progress)(&row);
            self.rows.push(row);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn enter(&mut self, kernel: &str, case: &str, against: &'static str, got: &Tensor, want: Want, metric: Metric, tolerance: f64) -> Result<()> {
        let row = self.row(kernel, case, against, tolerance);
        self.push(Entry::Waiting { row, got: got.clone(), want, metric });
        if self.gpu.is_browser() {
            return Ok(());
        }
        self.gpu.blocking("check", self.settle())
    }

    fn row(&self, kernel: &str, case: &str, against: &'static str, tolerance: f64) -> CheckRow {
        CheckRow { kernel: kernel.to_string(), case: case.to_string(), against, device: self.gpu.describe(), error: f64::INFINITY, tolerance, failure: None, skipped: None }
    }

    fn push(&mut self, entry: Entry) {
        self.waiting.push(entry);
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

/// Every check on `gpu`: all PyTorch fixtures and all f64 cases; the row kernels (fixtures and
/// f64) and the fused attention (f64) again on the same adapter without subgroups where it has
/// them. `progress` sees each row as it is made.
pub fn run_all(gpu: &Gpu, progress: impl FnMut(&CheckRow)) -> Result<Vec<CheckRow>> {
    gpu.blocking("check", run_all_async(gpu, progress))
}

/// [`run_all`] without blocking (in a browser): read-backs settle after each family.
pub async fn run_all_async(gpu: &Gpu, mut progress: impl FnMut(&CheckRow)) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    {
        let mut checker = Checker::new(gpu, &mut progress);
        for kernel in MatmulKernel::ALL.into_iter().filter(|k| !k.available(gpu)) {
            checker.skipped(&format!("matmul ({})", kernel.name()), "both", "-", format!("{} has no {} feature, which this kernel needs", gpu.describe(), feature_names(kernel.needs())));
        }
        run_families(&mut checker, pytorch::FAMILIES, false).await?;
        if !gpu.has_subgroups() {
            checker.skipped(
                "row kernels, attention (subgroups)",
                "both",
                "-",
                format!("{} has no SUBGROUP feature: its row kernels and fused attention run the builds without subgroups, checked above", gpu.describe()),
            );
            checker.settle().await?;
        }
        rows.append(&mut checker.rows);
    }
    if gpu.has_subgroups() {
        let plain = gpu.reopen_without_async(wgpu::Features::SUBGROUP).await?;
        let mut checker = Checker::new(&plain, &mut progress);
        run_families(&mut checker, pytorch::ROW_FAMILIES, true).await?;
        rows.append(&mut checker.rows);
    }
    Ok(rows)
}

/// The PyTorch checks of `families`, then the f64 groups (`subgroup_builds_only`: those of the
/// families with a subgroup build), each settled before the next runs, so that what waits to be
/// read back stays one family's.
async fn run_families(checker: &mut Checker<'_>, families: &[&str], subgroup_builds_only: bool) -> Result<()> {
    for family in families {
        pytorch::check_all(checker, &[family]);
        checker.settle().await?;
    }
    for (name, group) in reference::groups(checker, subgroup_builds_only) {
        reference::run_group(checker, name, group);
        checker.settle().await?;
    }
    Ok(())
}
