//! `vpt check` in a page: every kernel and variant against the PyTorch fixtures and the f64
//! references built into the engine (`src/check/`), on the browser's adapter. The checks are the
//! native command's own; only their read-backs wait, and settle after each family without
//! blocking (`Checker::settle`).

use js_sys::Function;
use serde_json::json;
use vpt_wgsl::check::run_all_async;
use vpt_wgsl::{Gpu, Result};

use crate::page::{report, yield_to_page};

/// Run every check, reporting each row as it is made; the summary and the rows as JSON.
pub async fn run(gpu: &Gpu, progress: &Function) -> Result<String> {
    yield_to_page().await;
    let rows = run_all_async(gpu, |row| report(progress, &row.to_json())).await?;
    let count = |f: &dyn Fn(&vpt_wgsl::check::CheckRow) -> bool| rows.iter().filter(|r| f(r)).count();
    let summary = json!({
        "passed": count(&|r| r.passed()),
        "failed": count(&|r| r.failed()),
        "skipped": count(&|r| r.skipped.is_some()),
        "device": gpu.describe(),
        "kernels": rows.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
    });
    Ok(summary.to_string())
}
