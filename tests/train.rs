//! The user's job end to end on a tiny backbone and image folder made here: `vpt train` killed
//! mid-run and resumed ends exactly where an uninterrupted run ends; `vpt predict` with several
//! tasks in one batch answers each image as each task alone does; bad input is a clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vpt_wgsl::io::{write_f32_tensors, TensorFile};
use vpt_wgsl::model::vit::StateDict;
use vpt_wgsl::model::vpt::Pool;
use vpt_wgsl::train::data::Normalization;
use vpt_wgsl::train::task::{backbone_fingerprint, new_task, TaskFile};
use vpt_wgsl::Gpu;

mod common;
use common::{image_folder, workdir, write_tiny_backbone, CLASSES};

fn vpt_train(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpt"));
    cmd.arg("train").args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Every tensor of a task file, by name.
fn task_tensors(path: &str) -> Vec<(String, Vec<f32>)> {
    let f = TensorFile::read(path).unwrap();
    let mut names: Vec<&String> = f.tensors.keys().collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), f.f32(n).unwrap().1.to_vec())).collect()
}

/// Every byte of tensor storage the engine holds (in use and pooled, uploads included), as the
/// metrics file reports it after each epoch, stops growing after the first epoch: a run keeps
/// nothing of the batches it has done with.
#[test]
fn a_long_run_holds_no_more_gpu_memory_after_its_first_epoch() {
    let dir = workdir("flat-memory");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 10);
    let out = dir.join("task.safetensors").to_string_lossy().into_owned();
    let args = ["--model", &model, "--data", &data.to_string_lossy(), "--out", &out, "--prompts", "2", "--epochs", "8", "--batch", "4", "--warmup", "1"];
    let run = vpt_train(&args).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let metrics = std::fs::read_to_string(dir.join("task.metrics.jsonl")).unwrap();
    let held: Vec<u64> = metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["gpu_bytes"].as_u64().expect("gpu_bytes in every metrics line")).collect();
    assert_eq!(held.len(), 8, "{metrics}");
    assert!(held.iter().skip(1).all(|&b| b <= held[0]), "GPU bytes held after each epoch grow: {held:?}");
}

/// Killing `vpt train` (SIGKILL, mid-run) and running it again with --resume ends with the same
/// task, bit for bit, as an uninterrupted run, and one metrics line per epoch, whichever of an
/// epoch's writes the kill interrupted.
#[test]
fn killed_and_resumed_run_ends_like_an_uninterrupted_one() {
    killed_and_resumed("resume", &[]);
}

/// The same with a method that trains backbone copies and LoRA pairs besides the prompts: the
/// task file and its resume state carry them.
#[test]
fn killed_and_resumed_method_run_ends_like_an_uninterrupted_one() {
    killed_and_resumed("resume-method", &["--method", "prompt+bias+lora", "--lora-rank", "2"]);
    let dir = workdir("method-files");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 4);
    let out = dir.join("task.safetensors").to_string_lossy().into_owned();
    let run = vpt_train(&["--model", &model, "--data", &data.to_string_lossy(), "--out", &out, "--method", "bias+lora", "--lora-rank", "2", "--epochs", "1", "--batch", "4"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let f = TensorFile::read(&out).unwrap();
    assert!(!f.tensors.contains_key("prompts"), "a method without prompt makes no prompts");
    for name in ["blocks.0.attn.qkv.bias", "norm.bias", "patch_embed.proj.bias", "lora.0.qkv.a", "lora.0.qkv.b"] {
        assert!(f.tensors.contains_key(name), "{name} missing from {:?}", f.tensors.keys().collect::<Vec<_>>());
    }
    assert!(!f.tensors.contains_key("blocks.0.attn.qkv.weight"), "bias trains no weight");
    assert_eq!(f.metadata["lora_alpha"], "2");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn killed_and_resumed(name: &str, extra: &[&str]) {
    let dir = workdir(name);
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 10);
    let common = |out: &str| -> Vec<String> {
        let mut args: Vec<String> = [
            "--model",
            &model,
            "--data",
            &data.to_string_lossy(),
            "--out",
            out,
            "--prompts",
            "3",
            "--depth",
            "deep",
            "--epochs",
            "10",
            "--batch",
            "4",
            "--lr",
            "2",
            "--warmup",
            "1",
            "--seed",
            "7",
            "--prompt-dropout",
            "0.1",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let straight = dir.join("straight.safetensors").to_string_lossy().into_owned();
    let out = vpt_train(&common(&straight).iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(out.status.success(), "uninterrupted run failed: {}", String::from_utf8_lossy(&out.stderr));

    let interrupted = dir.join("interrupted.safetensors").to_string_lossy().into_owned();
    let args = common(&interrupted);
    let mut child = vpt_train(&args.iter().map(String::as_str).collect::<Vec<_>>()).spawn().unwrap();
    // Wait until the first epoch is on disk, then kill the process wherever it is.
    let start = Instant::now();
    while !Path::new(&interrupted).exists() {
        assert!(child.try_wait().unwrap().is_none(), "training ended before its first epoch was written");
        assert!(start.elapsed() < Duration::from_secs(300), "no epoch written in 5 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.try_wait().unwrap().is_none(), "training finished before it could be killed: make the run longer");
    child.kill().unwrap();
    child.wait().unwrap();
    let epochs_before = TensorFile::read(vpt_wgsl::train::outputs::resume_path(&interrupted)).unwrap().metadata["epochs_done"].clone();
    assert_ne!(epochs_before, "10", "killed after the last epoch: nothing was interrupted");
    // Whatever the kill interrupted, the files are in one of the states an epoch's writes pass
    // through (`resume::save`: metrics line, then resume state, then task file, each atomic).
    // Make each of them at once: a metrics line for an epoch the state does not hold (killed
    // after the line), no task file (killed before the first epoch's task file), and a
    // temporary file left by an atomic write. The resumed run must end the same all the same.
    let metrics_path = vpt_wgsl::train::outputs::metrics_path(&interrupted);
    let mut metrics = std::fs::read_to_string(&metrics_path).unwrap();
    let done: usize = epochs_before.parse().unwrap();
    metrics.truncate(metrics.lines().take(done).map(|l| l.len() + 1).sum());
    metrics += &format!("{{\"epoch\":{},\"lr\":0.5,\"train_loss\":1.0}}\n", done + 1);
    std::fs::write(&metrics_path, metrics).unwrap();
    std::fs::remove_file(&interrupted).unwrap();
    std::fs::write(dir.join(".interrupted.safetensors.4242.0.tmp"), b"half a file").unwrap();

    let mut resumed_args = args.clone();
    resumed_args.push("--resume".into());
    let out = vpt_train(&resumed_args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(out.status.success(), "resumed run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(task_tensors(&straight), task_tensors(&interrupted), "resumed after epoch {epochs_before}: final task differs");
    let metrics = std::fs::read_to_string(vpt_wgsl::train::outputs::metrics_path(&interrupted)).unwrap();
    assert_eq!(metrics.lines().count(), 10, "one metrics line per epoch:\n{metrics}");
    assert!(!metrics.contains("\"train_loss\":1.0}"), "the line of an epoch the state did not hold was kept:\n{metrics}");

    // A second resume finds nothing to do and says so, without touching the task.
    let out = vpt_train(&resumed_args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already finished"));
    assert_eq!(task_tensors(&straight), task_tensors(&interrupted));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Several tasks in one `predict` call (mixed in one batch) give each image exactly the answer
/// each task gives alone.
#[test]
fn predict_with_several_tasks_answers_as_each_task_alone() {
    let dir = workdir("predict");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 2);
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let (vit, fingerprint, _) = vpt_wgsl::train::fit::load_backbone(&gpu, &model, &Default::default()).unwrap();
    let classes: Vec<String> = CLASSES.iter().map(|s| s.to_string()).collect();
    // Two tasks of the same prompt shape (they share batches) and one of another (its own batch).
    let make = |depth, prompts, pool, seed| TaskFile {
        task: new_task(&gpu, &vit.cfg, depth, prompts, 3, pool, seed).unwrap(),
        classes: classes.clone(),
        norm: Normalization::parse("0.5,0.5,0.5", "0.25,0.25,0.25").unwrap(),
        img_size: (16, 16),
        backbone: fingerprint.clone(),
    };
    // And one that changes the backbone (task 0 with a tuned final-norm bias): a batch of its own.
    let mut tuned = make(2, 3, Pool::Cls, 1);
    tuned.task.tuned = vit.fresh_tuned(&"bias".parse().unwrap(), 0).unwrap();
    let (_, norm_bias) = tuned.task.tuned.backbone.iter().find(|(n, _)| n == "norm.bias").unwrap();
    norm_bias.copy_from(&vpt_wgsl::Tensor::full(&gpu, norm_bias.shape(), 0.5).unwrap()).unwrap();
    let tasks = [make(2, 3, Pool::Cls, 1), make(2, 3, Pool::Cls, 2), make(1, 5, Pool::Image, 3), tuned];
    let images: Vec<PathBuf> = CLASSES.iter().flat_map(|c| (0..2).map(|i| data.join(c).join(format!("{i:03}.png"))).collect::<Vec<_>>()).collect();
    let together = vpt_wgsl::train::predict::predict(&gpu, &vit, &tasks, &images, 3, 64).unwrap();
    for (t, task) in tasks.iter().enumerate() {
        let alone = vpt_wgsl::train::predict::predict(&gpu, &vit, std::slice::from_ref(task), &images, 3, 64).unwrap();
        for (i, image) in images.iter().enumerate() {
            assert_eq!(together[i][t], alone[i][0], "task {t}, image {}", image.display());
        }
    }
    // The tasks really differ, so the comparison above is not vacuous; the tuned bias counts.
    assert_ne!(together[0][0], together[0][1]);
    assert_ne!(together[0][0], together[0][3]);

    // Through the CLI too: files on disk, two --task flags.
    let paths: Vec<String> = (0..2).map(|t| dir.join(format!("task{t}.safetensors")).to_string_lossy().into_owned()).collect();
    for (t, p) in tasks.iter().zip(&paths) {
        t.write(p, &[], &[]).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vpt")).args(["predict", "--model", &model, "--task", &paths[0], "--task", &paths[1], "--top-k", "2"]).arg(&images[0]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&paths[0]) && stdout.contains(&paths[1]) && stdout.contains('%'), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A task is refused on a backbone other than the one it was trained on.
#[test]
fn task_for_another_backbone_is_refused() {
    let dir = workdir("other-backbone");
    let model = write_tiny_backbone(&dir);
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let task = TaskFile {
        task: new_task(&gpu, &common::tiny_config(), 1, 2, 3, Pool::Cls, 1).unwrap(),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        norm: Normalization::IMAGENET,
        img_size: (16, 16),
        backbone: "fnv1a64:0000000000000000".into(),
    };
    let path = dir.join("task.safetensors").to_string_lossy().into_owned();
    task.write(&path, &[], &[]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vpt")).args(["predict", "--model", &model, "--task", &path, "nothing.png"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("trained on backbone") && !stderr.contains("panicked"), "{stderr}");
    let sd = StateDict::read(&model).unwrap();
    assert!(stderr.contains(&backbone_fingerprint(&sd)), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad training input: a clear message, a non-zero exit, and no task file.
#[test]
fn bad_training_input_is_a_clear_error() {
    let dir = workdir("bad-input");
    let model = write_tiny_backbone(&dir);
    let out = dir.join("task.safetensors");
    let run = |data: &Path| {
        let o = vpt_train(&["--model", &model, "--data", &data.to_string_lossy(), "--out", &out.to_string_lossy(), "--epochs", "1"]).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, stderr) = run(&dir.join("missing"));
    assert!(!ok && stderr.contains("missing") && !stderr.contains("panicked"), "{stderr}");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let (ok, stderr) = run(&dir.join("empty"));
    assert!(!ok && stderr.contains("error:") && !stderr.contains("panicked"), "{stderr}");
    // A checkpoint that is not a ViT.
    let not_vit = dir.join("not_vit.safetensors").to_string_lossy().into_owned();
    write_f32_tensors(&not_vit, &[("conv1.weight", &[2, 3][..], &[0.0; 6][..])], Default::default()).unwrap();
    let data = image_folder(&dir, 2);
    let o = vpt_train(&["--model", &not_vit, "--data", &data.to_string_lossy(), "--out", &out.to_string_lossy()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("cls_token") && !stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "no task file may appear after a failed run");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `vpt compare` trains each method with one recipe and reports it: the table, compare.json
/// (trainable parameters as each method defines them) and compare.svg; a second run without
/// --force leaves the report alone.
#[test]
fn compare_trains_each_method_and_writes_the_report() {
    let dir = workdir("compare");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 4);
    let out_dir = dir.join("report");
    let run = |force: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpt"));
        cmd.args(["compare", "--model", &model, "--data", &data.to_string_lossy(), "--out-dir", &out_dir.to_string_lossy()]);
        cmd.args(["--methods", "linear,prompt,bias", "--prompts", "2", "--epochs", "1", "--batch", "4", "--warmup", "0"]);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let out = run(false);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    for method in ["linear", "prompt", "bias"] {
        assert!(table.lines().any(|l| l.starts_with(method)), "{table}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("compare.json")).unwrap()).unwrap();
    let rows = report["methods"].as_array().unwrap();
    let trainable = |i: usize| rows[i]["trainable_params"].as_u64().unwrap() as usize;
    let (d, classes) = (common::D, CLASSES.len());
    assert_eq!(trainable(0), classes * d + classes, "linear trains the head alone");
    assert!(trainable(1) > trainable(0) && trainable(2) > trainable(0), "{report}");
    assert!(rows.iter().all(|r| r["top1"].as_f64().unwrap() >= 0.0 && r["peak_bytes"].as_u64().unwrap() > 0), "{report}");
    let svg = std::fs::read_to_string(out_dir.join("compare.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("bias") && svg.contains("trainable parameters"), "{svg}");
    let again = run(false);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(run(true).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
