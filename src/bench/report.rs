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
                })
            })
            .collect();
        let train_step = self.train_step.as_ref().map(|t| {
            json!({
                "description": t.description, "images_per_second": t.images_per_second,
                "forward_ms": t.forward_ms, "backward_ms": t.backward_ms, "optimizer_ms": t.optimizer_ms,
                "dispatches": t.dispatches, "peak_bytes": t.peak_bytes, "weight_bytes": t.weight_bytes, "kept_bytes": t.kept_bytes,
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
            "results": results,
            "train_step": train_step,
        });
        serde_json::to_string_pretty(&report).expect("a JSON value serialises") + "\n"
    }

    /// The whole report as `vpt bench` prints it.
    pub fn to_table(&self) -> String {
        let mut out = header(&self.adapter_line(), self.timing, &self.shape, self.reps);
        for r in &self.results {
            out += &table_row(r);
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
        "\ntrain step ({}):\n  {:.2} images/s = forward {:.1} ms + backward {:.1} ms + optimizer {:.1} ms (host clock, each waited for)\n  {} kernel launches per step; peak tensor memory {:.1} MiB, of which frozen weights {:.1} MiB; kept by the forward for the backward {:.1} MiB\n",
        t.description, t.images_per_second, t.forward_ms, t.backward_ms, t.optimizer_ms, t.dispatches, mib(t.peak_bytes), mib(t.weight_bytes), mib(t.kept_bytes)
    )
}

/// What ran where, and the column titles of [`table_row`].
pub(super) fn header(adapter: &str, timing: TimingMethod, s: &StepShape, reps: usize) -> String {
    let mut out = format!("adapter: {adapter}\n");
    out += &format!("timing:  {}, median and range of {reps} repetitions\n", timing.name());
    out += &format!(
        "sizes:   batch {}, {} tokens, dim {}, {} heads, mlp {}, {} classes\n\n",
        s.batch, s.tokens(), s.vit.embed_dim, s.vit.num_heads, s.vit.mlp_hidden, s.classes
    );
    out + &table_header()
}

/// The column titles (and a rule) of [`table_row`].
fn table_header() -> String {
    format!(
        "{:<22} {:<36} {:<32} {:>11} {:>11} {:>11} {:>9} {:>8}\n{}\n",
        "kernel",
        "variant",
        "shape",
        "median ms",
        "min ms",
        "max ms",
        "GFLOP/s",
        "GB/s",
        "-".repeat(22 + 36 + 32 + 3 * 12 + 10 + 9 + 5)
    )
}

/// One result as a table line.
pub(super) fn table_row(r: &BenchResult) -> String {
    let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    format!(
        "{:<22} {:<36} {:<32} {:>11.3} {:>11.3} {:>11.3} {:>9} {:>8}\n",
        r.kernel,
        r.variant,
        r.shape,
        r.median_ms,
        r.min_ms,
        r.max_ms,
        rate(r.gflops),
        rate(r.gbps)
    )
}
