//! A benchmark report as `vpt bench` prints it: the table, or one JSON object.

use serde_json::json;

use super::{BenchReport, BenchResult, StepShape, TrainStepResult};
use crate::gpu::TimingMethod;

impl BenchReport {
    /// The report as one JSON object (fields documented in docs/benchmarks.md).
    pub fn to_json(&self) -> String {
        let s = &self.shape;
        let results: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|r| {
                json!({
                    "kernel": r.kernel, "variant": r.variant, "shape": r.shape,
                    "median_ms": r.median_ms, "min_ms": r.min_ms, "max_ms": r.max_ms, "gflops": r.gflops, "gbps": r.gbps,
                    "percent_of_peak": percent_of_peak(r, self.peak_gflops),
                    "tune_key": r.tune.as_ref().map(|t| &t.key), "chosen": r.tune.as_ref().map(|t| t.chosen),
                })
            })
            .collect();
        let train_step = self.train_step.as_ref().map(|t| {
            json!({
                "description": t.description, "images_per_second": t.images_per_second,
                "forward_ms": t.forward_ms, "backward_ms": t.backward_ms, "optimizer_ms": t.optimizer_ms,
                "dispatches": t.dispatches, "peak_bytes": t.peak_bytes, "weight_bytes": t.weight_bytes, "copy_bytes": t.copy_bytes, "texel_bytes": t.texel_bytes, "kept_bytes": t.kept_bytes,
            })
        });
        let report = json!({
            "adapter": self.adapter, "backend": self.backend, "driver": self.driver, "timing": self.timing.name(),
            "dims": {
                "batch": s.batch, "tokens": s.tokens(), "dim": s.vit.embed_dim, "heads": s.vit.num_heads,
                "mlp": s.vit.mlp_hidden, "classes": s.classes, "depth": s.vit.depth, "prompts": s.prompts,
                "patch": s.vit.patch_size, "img_size": [s.vit.img_size.0, s.vit.img_size.1],
            },
            "reps": self.reps,
            "peak_gflops": self.peak_gflops,
            "results": results,
            "train_step": train_step,
        });
        serde_json::to_string_pretty(&report).expect("a JSON value serialises") + "\n"
    }

    /// The whole report as `vpt bench` prints it.
    pub fn to_table(&self) -> String {
        let mut out = header(&self.adapter_line(), self.timing, &self.shape, self.reps, self.peak_gflops);
        for r in &self.results {
            out += &table_row(r, self.peak_gflops);
        }
        if let Some(t) = &self.train_step {
            out += &train_step_text(t);
        }
        out
    }

    fn adapter_line(&self) -> String {
        format!("{} ({}, {})", self.adapter, self.backend, self.driver)
    }
}

/// The training-step lines under the kernel table.
pub fn train_step_text(t: &TrainStepResult) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    format!(
        "\ntrain step ({}):\n  {:.2} images/s = forward {:.1} ms + backward {:.1} ms + optimizer {:.1} ms (host clock, each waited for)\n  {} kernel launches per step; peak tensor memory {:.1} MiB, of which frozen weights {:.1} MiB ({:.1} MiB of them transposed copies for the backward, {:.1} MiB texels); kept by the forward for the backward {:.1} MiB\n",
        t.description, t.images_per_second, t.forward_ms, t.backward_ms, t.optimizer_ms, t.dispatches, mib(t.peak_bytes), mib(t.weight_bytes), mib(t.copy_bytes), mib(t.texel_bytes), mib(t.kept_bytes)
    )
}

/// What ran where, and the column titles of [`table_row`].
pub(super) fn header(adapter: &str, timing: TimingMethod, s: &StepShape, reps: usize, peak_gflops: Option<f64>) -> String {
    let mut out = format!("adapter: {adapter}\n");
    out += &format!("timing:  {}, median and range of {reps} repetitions\n", timing.name());
    out += &format!("sizes:   batch {}, {} tokens, dim {}, {} heads, mlp {}, {} classes\n\n", s.batch, s.tokens(), s.vit.embed_dim, s.vit.num_heads, s.vit.mlp_hidden, s.classes);
    out += "* marks the variant the engine takes for that shape (the fixed rule, or `vpt tune`'s cache where one is in use)\n\n";
    out + &table_header(peak_gflops)
}

/// A matmul's GFLOP/s as a percentage of the adapter's FP32 peak, when the peak is given.
fn percent_of_peak(r: &BenchResult, peak_gflops: Option<f64>) -> Option<f64> {
    Some(100.0 * r.gflops? / peak_gflops.filter(|p| *p > 0.0)?)
}

/// The column titles (and a rule) of [`table_row`]; "% peak" only with a peak to divide by.
fn table_header(peak_gflops: Option<f64>) -> String {
    let peak = if peak_gflops.is_some() { format!(" {:>7}", "% peak") } else { String::new() };
    format!(
        "{:<22} {:<36} {:<32} {:>11} {:>11} {:>11} {:>9} {:>8}{peak}\n{}\n",
        "kernel",
        "variant",
        "shape",
        "median ms",
        "min ms",
        "max ms",
        "GFLOP/s",
        "GB/s",
        "-".repeat(22 + 36 + 32 + 3 * 12 + 10 + 9 + 5 + peak.len())
    )
}

/// One result as a table line.
pub(super) fn table_row(r: &BenchResult, peak_gflops: Option<f64>) -> String {
    let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let peak = match peak_gflops {
        Some(_) => format!(" {:>7}", percent_of_peak(r, peak_gflops).map_or("-".to_string(), |p| format!("{p:.1}"))),
        None => String::new(),
    };
    let chosen = if r.tune.as_ref().is_some_and(|t| t.chosen) { " *" } else { "" };
    format!("{:<22} {:<36} {:<32} {:>11.3} {:>11.3} {:>11.3} {:>9} {:>8}{peak}\n", r.kernel, format!("{}{chosen}", r.variant), r.shape, r.median_ms, r.min_ms, r.max_ms, rate(r.gflops), rate(r.gbps))
}
