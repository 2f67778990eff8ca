//! `vpt sweep`, the paper's learning-rate × weight-decay search, as a user runs it: on the demo
//! digits it writes its table, sweep.json and heatmap, and `vpt eval` of best.safetensors gives
//! its test top-1; killed and resumed, it reruns no pair that had finished and ends as an
//! uninterrupted sweep ends; a diverged pair is reported as failed; `vpt compare --sweep` gives
//! each method its own search.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{image_folder, workdir, write_tiny_backbone};
use serde_json::Value;
use vpt_wgsl::io::TensorFile;

fn vpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

fn record(out_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out_dir.join("sweep.json")).unwrap()).unwrap()
}

/// How many runs the sweep in `out_dir` has recorded so far (0 before its sweep.json).
fn recorded_runs(out_dir: &Path) -> usize {
    let text = std::fs::read_to_string(out_dir.join("sweep.json")).unwrap_or_default();
    serde_json::from_str::<Value>(&text).ok().and_then(|v| v["runs"].as_array().map(Vec::len)).unwrap_or(0)
}

/// The demo's digits (train/ and test/ folders) and its backbone.
fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo")
}

#[test]
fn a_sweep_on_the_demo_digits_writes_its_report_and_eval_gives_its_test_top1() {
    let dir = workdir("sweep-demo");
    let out = dir.join("sweep");
    let (model, train, test) = (text(&demo().join("backbone.safetensors")), text(&demo().join("digits-5to9/train")), text(&demo().join("digits-5to9/test")));
    let grid = ["--lr", "2.5,0.5", "--wd", "0.001,0"];
    let recipe = ["--epochs", "1", "--warmup", "0", "--prompts", "5", "--batch", "32", "--no-flip"];
    let run = vpt(&[&["sweep", "--model", &model, "--data", &train, "--test", &test, "--out-dir", &text(&out)][..], &grid, &recipe].concat());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&run.stderr));
    for k in 1..=4 {
        assert!(stdout.contains(&format!("run {k} of 4")), "no progress line for run {k}: {stdout}");
    }

    let json = record(&out);
    let runs = json["runs"].as_array().unwrap();
    let pairs: Vec<(f64, f64)> = runs.iter().map(|r| (r["lr"].as_f64().unwrap(), r["wd"].as_f64().unwrap())).collect();
    assert_eq!(pairs, [(2.5, 0.001), (2.5, 0.0), (0.5, 0.001), (0.5, 0.0)], "the grid, learning rate by learning rate");
    let top1: Vec<f64> = runs.iter().map(|r| r["val_top1"].as_f64().expect("every run finished")).collect();
    assert!(top1.iter().all(|t| (0.0..=100.0).contains(t)), "top-1 in percent: {top1:?}");
    // The best: the highest validation top-1, the earlier pair on a tie.
    let best = (0..4).fold(0, |b, i| if top1[i] > top1[b] { i } else { b });
    assert_eq!((json["best"]["lr"].as_f64().unwrap(), json["best"]["wd"].as_f64().unwrap()), pairs[best], "{json}");
    assert_eq!(json["best"]["val_top1"].as_f64().unwrap(), top1[best]);
    assert_eq!(json["refit"]["finished"], true);
    for (k, (lr, wd)) in pairs.iter().enumerate() {
        let line = format!("{lr:>8} {wd:>8} {:>8.2}%", top1[k]);
        assert!(stdout.contains(&line), "the table has no line {line:?}: {stdout}");
        assert!(out.join(format!("runs/lr{lr}_wd{wd}.metrics.jsonl")).exists(), "run {k}'s metrics are kept");
        assert!(!out.join(format!("runs/lr{lr}_wd{wd}.safetensors")).exists(), "without --keep-runs a finished run keeps only its metrics");
    }
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("weight decay") && top1.iter().all(|t| svg.contains(&format!("{t:.1}"))), "{svg}");

    // `vpt eval` of the refit task on the test images reports sweep.json's test top-1.
    let test_top1 = json["test_top1"].as_f64().unwrap();
    assert_eq!(json["test_images"], 179);
    let eval = vpt(&["eval", "--model", &model, "--task", &text(&out.join("best.safetensors")), "--data", &test]);
    let said = String::from_utf8_lossy(&eval.stdout);
    assert!(eval.status.success() && said.starts_with(&format!("top-1 accuracy: {test_top1:.2}% on 179 images")), "sweep.json says {test_top1}; vpt eval: {said}");
    assert!(stdout.contains(&format!("test top-1: {test_top1:.2}%")), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tiny backbone's sweep: a first learning rate that makes the loss infinite (a failed run),
/// then two that train. Three epochs each, so that a kill can fall mid-run.
fn tiny_sweep(model: &str, data: &Path, out: &Path, extra: &[&str]) -> Command {
    let epochs = if extra.contains(&"--epochs") { &[][..] } else { &["--epochs", "3"][..] };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpt"));
    cmd.args(["sweep", "--model", model, "--data", &text(data), "--out-dir", &text(out), "--lr", "1e30,1,0.1", "--wd", "0", "--batch", "4", "--prompts", "2", "--warmup", "0"]);
    cmd.args(epochs).args(extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

#[test]
fn a_killed_sweep_resumes_without_rerunning_a_finished_pair_and_ends_as_an_uninterrupted_one() {
    let dir = workdir("sweep-resume");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 6);
    let whole = dir.join("whole");
    let run = tiny_sweep(&model, &data, &whole, &[]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let expected = record(&whole);
    assert_eq!(expected["runs"][0]["status"], "diverged", "lr 1e30 fails: {expected}");
    assert!(expected["runs"][0]["val_top1"].is_null() && String::from_utf8_lossy(&run.stdout).contains("failed"), "{expected}");

    // Killed (SIGKILL) as soon as sweep.json records its second run.
    let killed = dir.join("killed");
    let mut child = tiny_sweep(&model, &data, &killed, &[]).spawn().unwrap();
    let start = Instant::now();
    while recorded_runs(&killed) < 2 {
        assert!(start.elapsed() < Duration::from_secs(300) && child.try_wait().unwrap().is_none(), "the sweep never recorded two runs");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished_metrics = killed.join("runs/lr1_wd0.metrics.jsonl");
    let before = (std::fs::read(&finished_metrics).unwrap(), std::fs::metadata(&finished_metrics).unwrap().modified().unwrap());

    let resumed = tiny_sweep(&model, &data, &killed, &["--resume"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&resumed.stderr));
    for done in ["run 1 of 3 (lr 1e30, wd 0): done before", "run 2 of 3 (lr 1, wd 0): done before"] {
        assert!(stdout.contains(done), "{done:?} missing: {stdout}");
    }
    assert!(!stdout.contains("— run 1 of 3") && !stdout.contains("— run 2 of 3"), "a finished pair ran again: {stdout}");
    let after = (std::fs::read(&finished_metrics).unwrap(), std::fs::metadata(&finished_metrics).unwrap().modified().unwrap());
    assert!(before == after, "the finished run's metrics were written again");
    let got = record(&killed);
    for key in ["runs", "best", "grid"] {
        assert_eq!(got[key], expected[key], "{key}");
    }
    assert_eq!(got["refit"]["train_loss"], expected["refit"]["train_loss"]);
    let (a, b) = (TensorFile::read(whole.join("best.safetensors")).unwrap(), TensorFile::read(killed.join("best.safetensors")).unwrap());
    for name in a.tensors.keys() {
        assert_eq!(a.f32(name).unwrap().1, b.f32(name).unwrap().1, "best.safetensors {name} differs from the uninterrupted sweep's");
    }

    // Resumed with another recipe, or run again without --resume or --force: refused, naming why.
    for (extra, words) in
        [(&["--resume", "--epochs", "4"][..], "--epochs: 3 then, 4 now"), (&[][..], "--resume to continue that sweep, --force to replace it"), (&["--resume", "--force"][..], "contradict")]
    {
        let o = tiny_sweep(&model, &data, &killed, extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(words) && !stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `vpt compare --sweep`: each method its own search, reported by its best pair, and top-1 on
/// --test; one --lr list without --sweep is refused.
#[test]
fn compare_with_sweep_searches_each_method_on_its_own() {
    let dir = workdir("compare-sweep");
    let model = write_tiny_backbone(&dir);
    let data = text(&image_folder(&dir, 4));
    let out = dir.join("report");
    let args = ["compare", "--model", &model, "--data", &data, "--test", &data, "--out-dir", &text(&out), "--methods", "linear,prompt", "--prompts", "2", "--epochs", "1", "--batch", "4"];
    let run = vpt(&[&args[..], &["--sweep", "--lr", "1,0.1", "--wd", "0"]].concat());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    for (i, method) in ["linear", "prompt"].iter().enumerate() {
        let row = &report["methods"][i];
        let sweep = record(&out.join(method));
        assert_eq!(row["best"], serde_json::json!({ "lr": sweep["best"]["lr"], "wd": sweep["best"]["wd"] }), "{method}: {row}");
        assert_eq!(row["top1"].as_f64().unwrap() * 100.0, sweep["best"]["val_top1"].as_f64().unwrap(), "{method}");
        assert!(row["task_file"].as_str().unwrap().ends_with(&format!("{method}/best.safetensors")), "{row}");
        assert!((0.0..=1.0).contains(&row["test_top1"].as_f64().unwrap()), "{row}");
    }
    assert!(stdout.contains("best pair") && stdout.contains("test top-1"), "{stdout}");
    let once = vpt(&[&args[..], &["--lr", "1,0.1", "--force"]].concat());
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert!(!once.status.success() && stderr.contains("--lr: takes one value without --sweep"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
