//! The lab in a real browser: traces recorded here by `vpt record`, served by `vpt lab`, replayed
//! on headless Chromium's WebGPU (its SwiftShader adapter: Tint, Chrome's own WGSL compiler, and a
//! CPU rasteriser) by `benches/browser/run.mjs`. A training step's trace must replay with every
//! kernel matching the engine's results, and the same trace with a kernel broken must turn red.
//!
//! Every kernel on the browser's adapter is `tests/web.rs`'s: `/check` runs the checks themselves
//! there (against PyTorch and f64, not only against this machine's results), so the `kernels`
//! trace, which replays the same launches, is not replayed here too (it cost the cold suite
//! about three minutes of SwiftShader compiling the same kernels again).
//!
//! Needs Chromium (`apt-get install chromium`, or CHROMIUM=path) and Node.js with the driver
//! (`npm ci --prefix benches/browser`); `.ci/run` installs both. Fails, never skips, without them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn vpt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpt"));
    c.env_remove("WGPU_BACKEND").env_remove("WGPU_ADAPTER_NAME");
    c
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/browser")
}

/// Stops `vpt lab` when the test ends, however it ends.
struct Lab(Child);
impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn record(workload: &str, out: &Path) {
    let o = vpt().args(["record", workload, "--out"]).arg(out).output().unwrap();
    assert!(o.status.success(), "vpt record {workload} failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

/// Copy a trace with `from` replaced by `to` in the source of the shader named `shader`.
fn break_kernel(trace: &Path, out: &Path, shader: &str, from: &str, to: &str) {
    let bytes = std::fs::read(trace).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut edited = 0;
    for s in manifest["shaders"].as_array_mut().unwrap() {
        if s["name"] == shader {
            let source = s["source"].as_str().unwrap();
            assert!(source.contains(from), "{shader} no longer contains {from:?}; update the test");
            s["source"] = source.replace(from, to).into();
            edited += 1;
        }
    }
    assert_eq!(edited, 1, "the trace has no shader {shader}");
    let json = manifest.to_string().into_bytes();
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&json);
    file.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(out, file).unwrap();
}

/// The outcome of one page, as run.mjs printed it.
fn kernels_of(result: &serde_json::Value) -> Vec<(String, Option<bool>, String)> {
    result["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap().to_string(), k["ok"].as_bool(), k["skipped"].as_str().or(k["error"].as_str()).unwrap_or("").to_string()))
        .collect()
}

#[test]
fn traces_replay_in_headless_chromium() {
    let driver = browser_dir().join("node_modules/playwright-core");
    assert!(driver.is_dir(), "{} is missing: install the browser driver with `npm ci --prefix benches/browser` (Node.js 20+), and Chromium with `apt-get install chromium`", driver.display());
    let dir = std::env::temp_dir().join(format!("vpt-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    record("step", &dir.join("step.trace"));
    // SGD's update with its sign flipped: the prompts after the step must no longer match.
    break_kernel(&dir.join("step.trace"), &dir.join("broken.trace"), "optim", "param[i] = param[i] - params.lr * g;", "param[i] = param[i] + params.lr * g;");

    let mut child = vpt().args(["lab", "--port", "0", "--traces"]).arg(&dir).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let _lab = Lab(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("vpt lab printed no URL: {line:?}")).to_string();

    let out = Command::new("node")
        .arg(browser_dir().join("run.mjs"))
        .args(["step", "broken"].map(|name| format!("{url}?run={name}")))
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 20+ and `npm ci --prefix benches/browser`"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser replay did not finish:\n{stderr}");
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 2, "{stderr}");
    for r in &results {
        assert!(r["error"].is_null(), "{}: {}", r["url"], r["error"]);
        eprintln!(
            "{}: {} passed, {} failed, {} skipped on {}; GPU {:.1} ms, replay {:.0} ms",
            r["workload"],
            r["passed"],
            r["failed"],
            r["skipped"],
            r["adapter"],
            r["gpu_ms"].as_f64().unwrap(),
            r["wall_ms"].as_f64().unwrap()
        );
    }

    // step: every kernel of the step passes, and the loss is the engine's.
    let step = &results[0];
    assert_eq!(step["failed"], 0, "{:#?}", kernels_of(step));
    assert_eq!(step["skipped"], 0, "{:#?}", kernels_of(step));
    assert_eq!(step["labelled"]["loss"]["ok"], true, "{}", step["labelled"]);
    let (replayed, recorded) = (step["labelled"]["loss"]["replayed"][0].as_f64().unwrap(), step["labelled"]["loss"]["recorded"][0].as_f64().unwrap());
    assert!((replayed - recorded).abs() <= 1e-4 * recorded.abs(), "loss {replayed} replayed vs {recorded} recorded");

    // broken: red, and the blame on the broken kernel; what ran before it still matches.
    let broken = &results[1];
    let kernels = kernels_of(broken);
    let red: Vec<&str> = kernels.iter().filter(|(_, ok, _)| *ok == Some(false)).map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(red, ["optim::sgd_step"], "{kernels:#?}");
    assert_eq!(broken["labelled"]["prompts"]["ok"], false);
    assert_eq!(broken["labelled"]["loss"]["ok"], true);
    std::fs::remove_dir_all(&dir).ok();
}
