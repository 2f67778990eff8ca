//! The browser build (web/): the engine compiled to WebAssembly, trained and checked on headless
//! Chromium's WebGPU (SwiftShader: Chrome's Tint compiler and a CPU rasteriser) through the pages
//! `vpt lab` serves, driven by `benches/browser/run.mjs`.
//!
//! - /train on the demo trains as native `vpt train` does with the same flags: the same split,
//!   order, crops and initialisation, so the task's tensors agree to the adapters' rounding;
//! - a folder picked through the page's input trains, as natively;
//! - bad input on the page gets the message the CLI gives for it;
//! - /check runs every kernel check on the browser's adapter, and none fails.
//!
//! Needs the package (`bash web/build.sh`, which `.ci/run` runs), Chromium and the driver
//! (`npm ci --prefix benches/browser`). Fails, never skips, without them.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use vpt_wgsl::io::{HostData, TensorFile};

const DEMO_FLAGS: [(&str, &str); 9] = [("method", "prompt"), ("prompts", "5"), ("depth", "deep"), ("epochs", "2"), ("warmup", "0"), ("lr", "1"), ("batch", "64"), ("seed", "3"), ("no-flip", "1")];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vpt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpt"));
    c.env_remove("WGPU_BACKEND").env_remove("WGPU_ADAPTER_NAME");
    c
}

/// `vpt lab` with a small trace (it serves the replay too), stopped when dropped.
struct Lab {
    child: Child,
    url: String,
}

impl Lab {
    fn start(dir: &Path) -> Lab {
        let package = repo().join("web/pkg/vpt_web_bg.wasm");
        assert!(package.is_file(), "{} is missing: build the browser package with `bash web/build.sh`", package.display());
        let traces = dir.join("traces");
        std::fs::create_dir_all(&traces).unwrap();
        let o = vpt().args(["record", "step", "--out"]).arg(traces.join("step.trace")).output().unwrap();
        assert!(o.status.success(), "vpt record step failed:\n{}", String::from_utf8_lossy(&o.stderr));
        let mut child = vpt().args(["lab", "--port", "0", "--traces"]).arg(&traces).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("vpt lab printed no URL: {line:?}")).trim_end_matches('/').to_string();
        Lab { child, url }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Open each URL in headless Chromium; what each page reported in `window.<result>`.
fn pages(urls: &[String], result: &str, screenshot: Option<&Path>) -> Vec<serde_json::Value> {
    let driver = repo().join("benches/browser/node_modules/playwright-core");
    assert!(driver.is_dir(), "{} is missing: install the browser driver with `npm ci --prefix benches/browser` (Node.js 20+), and Chromium with `apt-get install chromium`", driver.display());
    let mut node = Command::new("node");
    node.arg(repo().join("benches/browser/run.mjs")).args(urls).env("VPT_RESULT", result);
    if let Some(path) = screenshot {
        node.env("VPT_SCREENSHOT", path);
    }
    let out = node.output().unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 20+ and `npm ci --prefix benches/browser`"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the pages did not report:\n{stderr}");
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), urls.len(), "{stderr}");
    results
}

/// `/train?run=train&demo=1&…` with these settings.
fn demo_url(lab: &Lab, flags: &[(&str, &str)]) -> String {
    let query: Vec<String> = flags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}/train?run=train&demo=1&{}", lab.url, query.join("&"))
}

/// `vpt train` with these settings (each `--name value`, or `--name` alone for a switch);
/// its output.
fn native_train(model: &Path, data: &Path, out: &Path, flags: &[(&str, &str)]) -> std::process::Output {
    let mut c = vpt();
    c.args(["train", "--model"]).arg(model).arg("--data").arg(data).arg("--out").arg(out);
    for (name, value) in flags {
        c.arg(format!("--{name}"));
        if *name != "no-flip" {
            c.arg(value);
        }
    }
    c.output().unwrap()
}

/// A task file's tensors by name (shape, values) and its metadata.
type TaskContents = (HashMap<String, (Vec<usize>, Vec<f32>)>, HashMap<String, String>);

fn tensors_of(name: &str, bytes: &[u8]) -> TaskContents {
    let file = TensorFile::from_bytes(name, bytes).unwrap();
    let tensors = file
        .tensors
        .into_iter()
        .map(|(n, t)| match t.data {
            HostData::F32(d) => (n, (t.shape, d)),
            HostData::I64(_) => panic!("{name}: {n} is not f32"),
        })
        .collect();
    (tensors, file.metadata)
}

/// Standard base64, as the page's `btoa` writes it.
fn from_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:?}"),
    } as u32;
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | value(c) << (18 - 6 * i));
        out.extend(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The demo's VPT-deep for two epochs in the page and natively: the task tensors within 1e-3
/// (relative to each tensor's largest value), the validation accuracy within one image, the
/// curves drawn where the figures say, and the page's task file one `vpt eval` reads. The
/// screenshot is kept in the test's folder.
#[test]
fn the_page_trains_the_demo_as_vpt_train_does() {
    let dir = common::workdir("web-train");
    let lab = Lab::start(&dir);
    let screenshot = dir.join("train.png");
    let page = pages(&[demo_url(&lab, &DEMO_FLAGS)], "vptTrain", Some(&screenshot)).remove(0);
    assert_eq!(page["done"], true, "the page did not train: {page:#}");

    let demo = repo().join("fixtures/demo");
    let native_task = dir.join("native.safetensors");
    let o = native_train(&demo.join("backbone.safetensors"), &demo.join("digits-5to9/train"), &native_task, &DEMO_FLAGS);
    assert!(o.status.success(), "vpt train failed:\n{}", String::from_utf8_lossy(&o.stderr));

    // The task file the page offers is one `vpt eval` reads.
    let page_task = dir.join("page.safetensors");
    std::fs::write(&page_task, from_base64(page["task"].as_str().unwrap())).unwrap();
    let o = vpt().args(["eval", "--task"]).arg(&page_task).arg("--model").arg(demo.join("backbone.safetensors")).arg("--data").arg(demo.join("digits-5to9/test")).output().unwrap();
    assert!(o.status.success(), "vpt eval of the page's task failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let (ours, our_meta) = tensors_of("the page's task", &std::fs::read(&page_task).unwrap());
    let (native, native_meta) = tensors_of("vpt train's task", &std::fs::read(&native_task).unwrap());
    assert_eq!(our_meta, native_meta, "the task files' metadata differ");
    let mut names: Vec<&String> = native.keys().collect();
    names.sort();
    assert_eq!(ours.keys().count(), names.len(), "the page's task has {:?}, vpt train's {names:?}", ours.keys().collect::<Vec<_>>());
    for name in names {
        let ((shape, want), (our_shape, got)) = (&native[name], &ours[name]);
        assert_eq!(shape, our_shape, "{name}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        let worst = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        eprintln!("{name} {shape:?}: page against vpt train, {worst:.2e} of its largest value");
        assert!(worst <= 1e-3, "{name}: the page's values differ from vpt train's by {worst:.2e} of the largest");
    }

    // The epochs: vpt train's metrics file, line by line.
    let metrics = std::fs::read_to_string(dir.join("native.metrics.jsonl")).unwrap();
    let native_epochs: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let epochs = page["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    const VAL_IMAGES: f64 = 72.0;
    for (e, n) in epochs.iter().zip(&native_epochs) {
        let (ours, theirs) = (e["val_top1"].as_f64().unwrap(), n["val_accuracy"].as_f64().unwrap());
        eprintln!(
            "epoch {}: loss {:.5} (vpt train {:.5}), val top-1 {:.2}% ({:.2}%), {:.1} s ({:.1} s)",
            e["epoch"],
            e["loss"],
            n["train_loss"],
            100.0 * ours,
            100.0 * theirs,
            e["seconds"].as_f64().unwrap_or(f64::NAN),
            n["seconds"].as_f64().unwrap_or(f64::NAN)
        );
        assert!((ours - theirs).abs() * VAL_IMAGES <= 1.0 + 1e-9, "epoch {}: val top-1 {ours} in the page, {theirs} natively", e["epoch"]);
        assert!((e["loss"].as_f64().unwrap() - n["train_loss"].as_f64().unwrap()).abs() <= 1e-3, "epoch {}: loss {} against {}", e["epoch"], e["loss"], n["train_loss"]);
    }

    // The curves: one point per epoch and series, each drawn (an opaque pixel where it says).
    let drawn = page["curves"]["drawn"].as_array().unwrap();
    assert_eq!(drawn.len(), 4, "{drawn:#?}");
    for point in drawn {
        let rgba: Vec<u64> = point["rgba"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert!(rgba[3] == 255 && rgba[..3] != [255, 255, 255], "nothing drawn at {point}");
    }
    let shot = std::fs::metadata(&screenshot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", screenshot.display()));
    assert!(shot.len() > 10_000, "the screenshot is {} bytes", shot.len());
    eprintln!("screenshot of the page after training: {}", screenshot.display());
}

/// A message as the CLI prints it and the page shows it, made comparable: the folders the test
/// made and the demo's folder taken off the paths, and `--flag` written as the page's `flag`.
fn comparable(text: &str, dirs: &[&Path]) -> String {
    let mut text = text.trim().trim_start_matches("error: ").to_string();
    for dir in dirs {
        text = text.replace(&format!("{}/", dir.display()), "");
    }
    text.replace("--", "")
}

/// What the CLI prints on stderr for `args`, which must fail.
fn cli_error(args: &[&std::ffi::OsStr]) -> String {
    let o = vpt().args(args).output().unwrap();
    assert!(!o.status.success(), "vpt {args:?} succeeded");
    // The last error line: Vulkan's loader may complain before it.
    String::from_utf8_lossy(&o.stderr).lines().rfind(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("vpt {args:?} printed no error: {}", String::from_utf8_lossy(&o.stderr))).to_string()
}

/// A folder picked through the page's input trains as `vpt train` trains on it (VPT, and DoRA),
/// and an image dropped after is classified; each bad input the page can be given shows the CLI's message:
/// one class, no class folders, a file that is not an image (skipped with the CLI's warning, or
/// refused when classifying), a checkpoint that is not a ViT, a task trained on another backbone.
#[test]
fn a_picked_folder_trains_and_bad_input_gets_the_clis_message() {
    let dir = common::workdir("web-inputs");
    let lab = Lab::start(&dir);
    let demo = repo().join("fixtures/demo");
    let demo_backbone = demo.join("backbone.safetensors");
    let images = common::image_folder(&dir, 6);
    let flags = [("epochs", "1"), ("prompts", "2"), ("batch", "8"), ("warmup", "0"), ("lr", "1")];
    let query: Vec<String> = flags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let recipe = query.join("&");

    // The bad inputs.
    let one_class = dir.join("one_class");
    std::fs::create_dir_all(one_class.join("only")).unwrap();
    std::fs::copy(images.join("circle/000.png"), one_class.join("only/000.png")).unwrap();
    let loose = dir.join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    std::fs::copy(images.join("circle/000.png"), loose.join("000.png")).unwrap();
    let with_text = dir.join("with_text");
    for class in common::CLASSES {
        std::fs::create_dir_all(with_text.join(class)).unwrap();
        std::fs::copy(images.join(class).join("000.png"), with_text.join(class).join("000.png")).unwrap();
        std::fs::copy(images.join(class).join("001.png"), with_text.join(class).join("001.png")).unwrap();
    }
    let notes = with_text.join("circle/notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    let not_vit = dir.join("not_vit.safetensors");
    vpt_wgsl::io::write_f32_tensors(&not_vit, &[("weight", &[2, 2], &[1.0, 2.0, 3.0, 4.0])], HashMap::new()).unwrap();
    let other_backbone_dir = dir.join("other");
    std::fs::create_dir_all(&other_backbone_dir).unwrap();
    let other_backbone = PathBuf::from(common::write_tiny_backbone(&other_backbone_dir));
    let other_task = dir.join("other_task.safetensors");
    let o = native_train(&other_backbone, &images, &other_task, &flags);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let native_task = dir.join("native.safetensors");
    let o = native_train(&demo_backbone, &images, &native_task, &flags);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let at = |path: &Path| path.display().to_string();
    let urls = [
        format!("{}/train?{recipe}#folder={}&image={}", lab.url, at(&images), at(&images.join("cross/003.png"))),
        format!("{}/train?{recipe}#folder={}", lab.url, at(&one_class)),
        format!("{}/train?{recipe}#folder={}", lab.url, at(&loose)),
        format!("{}/train?{recipe}&method=dora#folder={}", lab.url, at(&with_text)),
        format!("{}/train?{recipe}#folder={}&backbone={}", lab.url, at(&images), at(&not_vit)),
        format!("{}/train#task={}", lab.url, at(&other_task)),
        format!("{}/train#task={}&image={}", lab.url, at(&native_task), at(&notes)),
    ];
    let results = pages(&urls, "vptTrain", None);
    let shown = |i: usize| comparable(results[i]["error"].as_str().unwrap_or_else(|| panic!("page {}: no error shown: {:#}", urls[i], results[i])), &[&dir, &demo]);
    let dirs = [dir.as_path(), demo.as_path()];

    // The picked folder: trained as natively (the epoch's loss), and the dropped image classified.
    let picked = &results[0];
    assert_eq!(picked["done"], true, "{picked:#}");
    let prediction = picked["prediction"].as_str().unwrap();
    assert!(common::CLASSES.iter().any(|c| prediction == format!("003.png: {c}")), "{prediction}");
    let metrics: serde_json::Value = serde_json::from_str(std::fs::read_to_string(dir.join("native.metrics.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    let page_loss = picked["curves"]["loss"][0][1].as_f64().unwrap();
    assert!((page_loss - metrics["train_loss"].as_f64().unwrap()).abs() <= 1e-3, "loss {page_loss} in the page, {} natively", metrics["train_loss"]);

    let os = |s: &str| std::ffi::OsString::from(s);
    let train_on = |model: &Path, data: &Path| cli_error(&[&os("train"), &os("--model"), model.as_os_str(), &os("--data"), data.as_os_str(), &os("--out"), dir.join("x.safetensors").as_os_str()]);
    // One class, no class folders: the CLI's errors.
    assert_eq!(shown(1), comparable(&train_on(&demo_backbone, &one_class), &dirs));
    assert!(shown(1).contains("a classifier needs at least two"), "{}", shown(1));
    assert_eq!(shown(2), comparable(&train_on(&demo_backbone, &loose), &dirs));
    assert!(shown(2).contains("no class sub-folders"), "{}", shown(2));
    // A file that is not an image among the images: skipped with the CLI's warning, and the run
    // trains (DoRA, whose start reads the backbone's qkv weights back: without blocking here).
    assert_eq!(results[3]["done"], true, "{:#}", results[3]);
    let dora_flags: Vec<(&str, &str)> = flags.iter().copied().chain([("method", "dora")]).collect();
    let o = native_train(&demo_backbone, &with_text, &dir.join("with_text.safetensors"), &dora_flags);
    let dora: serde_json::Value = serde_json::from_str(std::fs::read_to_string(dir.join("with_text.metrics.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    let page_loss = results[3]["curves"]["loss"][0][1].as_f64().unwrap();
    assert!((page_loss - dora["train_loss"].as_f64().unwrap()).abs() <= 1e-3, "DoRA's loss {page_loss} in the page, {} natively", dora["train_loss"]);
    let native_warning = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with("warning: skipped"))
        .unwrap_or_else(|| panic!("no warning from vpt train: {}", String::from_utf8_lossy(&o.stdout)))
        .to_string();
    assert_eq!(comparable(results[3]["warnings"].as_str().unwrap(), &dirs), comparable(&native_warning, &dirs));
    // A checkpoint that is not a ViT.
    assert_eq!(shown(4), comparable(&train_on(&not_vit, &images), &dirs));
    // A task trained on another backbone, as `vpt eval` refuses it.
    let eval = cli_error(&[&os("eval"), &os("--task"), other_task.as_os_str(), &os("--model"), demo_backbone.as_os_str(), &os("--data"), images.as_os_str()]);
    assert_eq!(shown(5), comparable(&eval, &dirs));
    assert!(shown(5).contains("use the backbone it was trained with"), "{}", shown(5));
    // A file that is not an image, to classify.
    assert!(shown(6).ends_with("notes.txt: not a JPEG or PNG image"), "{}", shown(6));
    std::fs::remove_dir_all(&dir).ok();
}

/// /check: every check `vpt check` runs here also runs in the page on the browser's adapter and
/// passes, unless the adapter lacks a feature it needs, which its skip row names.
#[test]
fn the_kernel_checks_pass_in_the_browser() {
    let dir = common::workdir("web-check");
    let lab = Lab::start(&dir);
    let page = pages(&[format!("{}/check?run=check", lab.url)], "vptCheck", None).remove(0);
    assert!(page["error"].is_null(), "{}", page["error"]);
    let rows = page["kernels"].as_array().unwrap();
    eprintln!("/check: {} passed, {} failed, {} skipped on {}", page["passed"], page["failed"], page["skipped"], page["device"]);
    let failed: Vec<&serde_json::Value> = rows.iter().filter(|r| r["ok"] == false && r["skipped"].is_null()).collect();
    assert!(failed.is_empty(), "checks failing in Chromium: {failed:#?}");
    let skips: Vec<&serde_json::Value> = rows.iter().filter(|r| !r["skipped"].is_null()).collect();
    for skip in &skips {
        let why = skip["skipped"].as_str().unwrap();
        assert!(why.contains("has no") && why.contains("feature"), "a skip must name the feature it lacks: {skip}");
    }

    // The same checks as natively: each native row ran and passed in the page, or was skipped.
    let gpu = vpt_wgsl::Gpu::new().expect("no GPU adapter here: install Mesa's lavapipe (`.ci/run` does)");
    let native = vpt_wgsl::check::run_all(&gpu, |_| ()).unwrap();
    let key = |kernel: &str, case: &str, against: &str| format!("{kernel} | {case} | {against}");
    let in_page: std::collections::HashSet<String> =
        rows.iter().filter(|r| r["ok"] == true).map(|r| key(r["kernel"].as_str().unwrap(), r["case"].as_str().unwrap(), r["against"].as_str().unwrap())).collect();
    // A skip row covers its kernel's checks ("matmul (every kernel)": every matmul's) whose
    // cases contain its case ("-": all of them).
    let covered = |kernel: &str, case: &str| {
        skips.iter().any(|r| {
            let (k, c) = (r["kernel"].as_str().unwrap(), r["case"].as_str().unwrap());
            (k == kernel || (k == "matmul (every kernel)" && kernel.starts_with("matmul ("))) && (c == "-" || case.contains(c))
        })
    };
    let missing: Vec<String> = native.iter().filter(|r| r.skipped.is_none() && !covered(&r.kernel, &r.case)).map(|r| key(&r.kernel, &r.case, r.against)).filter(|k| !in_page.contains(k)).collect();
    assert!(missing.is_empty(), "checks vpt check runs here that the page did not pass: {missing:#?}");
    assert!(in_page.len() >= 150, "only {} checks passed in the page", in_page.len());
}
