//! `vpt` fed what a hostile or careless user feeds it: every case must end in a clear error that
//! names the file or flag at fault (exit 1, no panic), never hang, never destroy a file the user
//! did not ask to replace, and never report a NaN result as if it were one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{image_folder, workdir, write_tiny_backbone};
use vpt_wgsl::io::{write_f32_tensors, TensorFile};
use vpt_wgsl::model::synthetic::synthetic_vit_state_dict;

fn vpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).env_remove("WGPU_ADAPTER_NAME").stdin(Stdio::null()).output().expect("run vpt")
}

/// Runs `vpt` and returns its stderr, asserting it failed cleanly: exit code 1 (2 for a value
/// the argument parser refuses), an error line, no panic, and every one of `names` (the file or
/// flag at fault) in the message.
fn fails_naming(args: &[&str], names: &[&str]) -> String {
    let out = vpt(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(matches!(out.status.code(), Some(1 | 2)), "`vpt {}` should fail with exit 1 or 2:\n{stderr}", args.join(" "));
    assert!(stderr.contains("error:") && !stderr.contains("panicked"), "`vpt {}`:\n{stderr}", args.join(" "));
    for name in names {
        assert!(stderr.contains(name), "`vpt {}` should name {name:?}:\n{stderr}", args.join(" "));
    }
    stderr
}

/// `vpt` started in the background, its stderr kept.
fn spawn_vpt(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Wait (two minutes at most) until `path` exists.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The tiny backbone's metadata, as `write_tiny_backbone` writes it.
const TINY_METADATA: [(&str, &str); 3] = [("num_heads", "3"), ("mean", "0.5,0.5,0.5"), ("std", "0.25,0.25,0.25")];

/// The tiny backbone with `edit` applied to its tensors and `metadata`, written as `name`.
fn backbone_with(dir: &Path, name: &str, metadata: &[(&str, &str)], edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> String {
    let mut tensors = synthetic_vit_state_dict(&common::tiny_config(), 0, common::SEED);
    edit(&mut tensors);
    let list: Vec<(&str, &[usize], &[f32])> = tensors.iter().map(|(n, s, d)| (n.as_str(), &s[..], &d[..])).collect();
    let path = s(&dir.join(name));
    write_f32_tensors(&path, &list, metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap();
    path
}

/// The tiny backbone with `edit` applied to its tensors, written as `name`.
fn edited_backbone(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> String {
    backbone_with(dir, name, &TINY_METADATA, edit)
}

/// A task for the tiny ViT, and a batch of two of its images, in the `vpt grad` formats.
fn task_and_batch(dir: &Path) -> (String, String) {
    let d = common::D;
    let task = s(&dir.join("task.safetensors"));
    let prompts = vec![0.01f32; 2 * 3 * d];
    let head = vec![0.02f32; 4 * d];
    write_f32_tensors(&task, &[("prompts", &[2, 3, d][..], &prompts[..]), ("head.weight", &[4, d], &head), ("head.bias", &[4], &[0.0; 4])], Default::default()).unwrap();
    let batch = s(&dir.join("batch.safetensors"));
    write_batch(&batch, &vec![0.5f32; 2 * 3 * common::IMG * common::IMG], &[2, 3, common::IMG, common::IMG]);
    (task, batch)
}

/// A batch of the tiny task's 4 classes, labels 0, 1, 2, 3, 0, ...
fn write_batch(path: &str, images: &[f32], shape: &[usize]) {
    let labels: Vec<i64> = (0..shape[0] as i64).map(|l| l % 4).collect();
    common::write_batch(Path::new(path), images, shape, &labels);
}

/// Checkpoints that made the config inference panic (an MLP weight stored as a scalar, a patch
/// embedding with kernel size 0) or that hold NaN: clear errors naming the tensor, in every
/// command that loads a backbone.
#[test]
fn broken_checkpoints_are_errors_naming_the_tensor() {
    let dir = workdir("hostile-ckpt");
    let (task, batch) = task_and_batch(&dir);
    let data = s(&image_folder(&dir, 2));
    let scalar_mlp = edited_backbone(&dir, "scalar_mlp.safetensors", |t| {
        let fc1 = t.iter_mut().find(|(n, _, _)| n == "blocks.0.mlp.fc1.weight").unwrap();
        *fc1 = (fc1.0.clone(), vec![], vec![1.0]);
    });
    let zero_kernel = edited_backbone(&dir, "zero_kernel.safetensors", |t| {
        let w = t.iter_mut().find(|(n, _, _)| n == "patch_embed.proj.weight").unwrap();
        *w = (w.0.clone(), vec![common::D, 3, 0, 0], vec![]);
    });
    let nan = edited_backbone(&dir, "nan.safetensors", |t| t.iter_mut().find(|(n, _, _)| n == "blocks.1.attn.proj.weight").unwrap().2[5] = f32::NAN);
    for (model, tensor) in [(&scalar_mlp, "blocks.0.mlp.fc1.weight"), (&zero_kernel, "patch_embed.proj.weight"), (&nan, "blocks.1.attn.proj.weight")] {
        let out = s(&dir.join("out.safetensors"));
        fails_naming(&["grad", "--model", model, "--task", &task, "--batch", &batch, "--out", &out], &[model, tensor]);
        fails_naming(&["train", "--model", model, "--data", &data, "--out", &out, "--epochs", "1"], &[model, tensor]);
        assert!(!Path::new(&out).exists());
    }
}

/// `/dev/zero` (endless) and a FIFO (blocks on open) as `--model`: refused at once.
#[cfg(unix)]
#[test]
fn devices_and_pipes_are_refused_without_reading() {
    let dir = workdir("hostile-fifo");
    let (task, batch) = task_and_batch(&dir);
    let fifo = s(&dir.join("pipe.safetensors"));
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for model in ["/dev/zero", fifo.as_str()] {
        let start = Instant::now();
        fails_naming(&["grad", "--model", model, "--task", &task, "--batch", &batch, "--out", &s(&dir.join("o.safetensors"))], &[model, "not a regular file"]);
        assert!(start.elapsed() < Duration::from_secs(60), "{model} took {:?}", start.elapsed());
    }

    // The same for the other files vpt reads: an image in a class folder (skipped, named), a
    // demo's reference, a tune cache, a kernel of --wgsl-dir.
    let data = image_folder(&dir, 3);
    let class = data.join(common::CLASSES[0]);
    assert!(Command::new("mkfifo").arg(class.join("pipe.png")).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", class.join("zero.png")).unwrap();
    let model = write_tiny_backbone(&dir);
    let start = Instant::now();
    let run = vpt(&["train", "--model", &model, "--data", &s(&data), "--out", &s(&dir.join("t.safetensors")), "--epochs", "1", "--method", "linear"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success() && stdout.contains("pipe.png (is not a regular file") && stdout.contains("zero.png (is not a regular file"), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(start.elapsed() < Duration::from_secs(120), "took {:?}", start.elapsed());

    let demo = dir.join("demo");
    std::fs::create_dir_all(&demo).unwrap();
    assert!(Command::new("mkfifo").arg(demo.join("pytorch_reference.json")).status().unwrap().success());
    fails_naming(&["demo", "--dir", &s(&demo), "--out-dir", &s(&dir.join("demo-out"))], &["--dir", "pytorch_reference.json"]);

    let cache = dir.join("cache");
    let info = Command::new(env!("CARGO_BIN_EXE_vpt")).arg("info").env("VPT_CACHE_DIR", &cache).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let path = info.lines().find_map(|l| l.split("would write ").nth(1)).and_then(|rest| rest.split(')').next()).expect("the cache's path").to_string();
    std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
    assert!(Command::new("mkfifo").arg(&path).status().unwrap().success());
    let out = Command::new(env!("CARGO_BIN_EXE_vpt")).arg("info").env("VPT_CACHE_DIR", &cache).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&path) && stderr.contains("not a regular file"), "{stderr}");

    let wgsl = dir.join("wgsl");
    std::fs::create_dir_all(wgsl.join("lib")).unwrap();
    assert!(Command::new("mkfifo").arg(wgsl.join("lib/flat.wgsl")).status().unwrap().success());
    let gpu = vpt_wgsl::Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    gpu.use_wgsl_dir(&wgsl).unwrap();
    let x = vpt_wgsl::Tensor::from_slice(&gpu, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let Err(err) = vpt_wgsl::kernels::gelu::gelu_forward(&x) else { panic!("a FIFO is no kernel source") };
    let err = err.to_string();
    assert!(err.starts_with("wgsl_dir:") && err.contains("flat.wgsl") && err.contains("not a regular file"), "{err}");
}

/// No command overwrites a file the user did not ask to replace.
#[test]
fn outputs_never_destroy_inputs_or_earlier_results() {
    let dir = workdir("hostile-write");
    let model = write_tiny_backbone(&dir);
    let model_bytes = std::fs::read(&model).unwrap();
    let data = s(&image_folder(&dir, 3));
    let (task, batch) = task_and_batch(&dir);
    let out = s(&dir.join("run.safetensors"));
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "1", "--batch", "4", "--prompts", "2"];
        args.extend(extra);
        vpt(&args)
    };

    // --out is the backbone: refused, the backbone untouched.
    fails_naming(&["train", "--model", &model, "--data", &data, "--out", &model, "--resume"], &["--out", "--model"]);
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    // forward / grad writing over one of their inputs, or over an existing file.
    for input in [&model, &task, &batch] {
        fails_naming(&["forward", "--model", &model, "--task", &task, "--batch", &batch, "--out", input], &["--out", input]);
    }
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    let logits = s(&dir.join("logits.safetensors"));
    assert!(vpt(&["forward", "--model", &model, "--task", &task, "--batch", &batch, "--out", &logits]).status.success());
    fails_naming(&["forward", "--model", &model, "--task", &task, "--batch", &batch, "--out", &logits], &[&logits, "--force"]);
    assert!(vpt(&["forward", "--model", &model, "--task", &task, "--batch", &batch, "--out", &logits, "--force"]).status.success());

    // A finished run: its files are not replaced by a fresh run, nor by --resume without state.
    assert!(train(&[]).status.success());
    let (task_bytes, metrics) = (std::fs::read(&out).unwrap(), std::fs::read(dir.join("run.metrics.jsonl")).unwrap());
    fails_naming(&["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "1"], &[&out, "--resume", "--force"]);
    std::fs::remove_file(dir.join("run.resume.safetensors")).unwrap();
    fails_naming(&["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "1", "--resume"], &["--resume", &out]);
    assert_eq!(std::fs::read(&out).unwrap(), task_bytes);
    assert_eq!(std::fs::read(dir.join("run.metrics.jsonl")).unwrap(), metrics);
    // Only a resume state left over from a run: a fresh run does not overwrite it.
    let orphan = s(&dir.join("orphan.safetensors"));
    std::fs::copy(&out, dir.join("orphan.resume.safetensors")).unwrap();
    fails_naming(&["train", "--model", &model, "--data", &data, "--out", &orphan, "--epochs", "1"], &["orphan.resume.safetensors"]);
    // --force replaces, and starts clean: one metrics line, not two.
    assert!(train(&["--force"]).status.success());
    assert_eq!(std::fs::read_to_string(dir.join("run.metrics.jsonl")).unwrap().lines().count(), 1);
    // No temporary file is left behind.
    let litter: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".tmp") || n.ends_with(".lock")).collect();
    assert!(litter.is_empty(), "{litter:?}");
}

/// A second `vpt train` on the same --out while the first runs is refused at once, and the
/// first finishes untouched.
#[test]
fn a_second_run_on_the_same_out_is_refused_at_once() {
    let dir = workdir("hostile-lock");
    let model = write_tiny_backbone(&dir);
    let data = s(&image_folder(&dir, 6));
    let out = s(&dir.join("run.safetensors"));
    let args = ["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "6", "--batch", "2", "--prompts", "2"];
    let mut first = spawn_vpt(&args);
    wait_for(&dir.join("run.lock"));
    assert!(first.try_wait().unwrap().is_none(), "the first run ended before the second could start");
    let start = Instant::now();
    fails_naming(&args, &["another vpt train", &out]);
    assert!(start.elapsed() < Duration::from_secs(30), "the second run was not refused at once");
    let done = first.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("run.metrics.jsonl")).unwrap().lines().count(), 6);
}

/// The lock beside --out never costs the user a file: a file of theirs under the lock's name
/// survives a whole run untouched, and an input given under that name is refused before anything.
#[test]
fn the_lock_never_deletes_a_users_file() {
    let dir = workdir("hostile-lock-users-file");
    let model = write_tiny_backbone(&dir);
    let data = s(&image_folder(&dir, 3));
    let out = s(&dir.join("run.safetensors"));
    let lock = dir.join("run.lock");
    std::fs::write(&lock, "my notes about this run").unwrap();
    let run = vpt(&["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "1", "--batch", "4", "--prompts", "2"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "my notes about this run", "the run changed or removed the user's file");

    let model_as_lock = s(&dir.join("other.lock"));
    std::fs::copy(&model, &model_as_lock).unwrap();
    let other_out = s(&dir.join("other.safetensors"));
    fails_naming(&["train", "--model", &model_as_lock, "--data", &data, "--out", &other_out, "--epochs", "1"], &["--model", "--out", &model_as_lock]);
    assert_eq!(std::fs::read(&model_as_lock).unwrap(), std::fs::read(&model).unwrap(), "the --model given under the lock's name was changed");
}

/// What used to pass in silence now says so: a warm-up as long as the run warns with the rate it
/// reaches, the header says what the method trains, `partial-K` beyond the backbone's depth is
/// refused as `--depth` is, and so is one method named twice in `vpt compare`.
#[test]
fn quiet_surprises_are_said() {
    let dir = workdir("hostile-quiet");
    let model = write_tiny_backbone(&dir);
    let data = s(&image_folder(&dir, 3));
    let out = s(&dir.join("run.safetensors"));
    let run = vpt(&["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "2", "--warmup", "10", "--batch", "4", "--method", "bias"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("warning: --warmup 10 is not shorter than --epochs 2") && stdout.contains("--warmup 1 or fewer"), "{stdout}");
    assert!(stdout.contains("training every bias and the head on"), "{stdout}");
    let depth = common::DEPTH.to_string();
    let too_deep = format!("partial-{}", common::DEPTH + 1);
    fails_naming(&["train", "--model", &model, "--data", &data, "--out", &s(&dir.join("deep.safetensors")), "--method", &too_deep], &["--method", &too_deep, &depth]);
    // One method named twice in `vpt compare` would train twice into one task file.
    let report = s(&dir.join("report"));
    fails_naming(&["compare", "--model", &model, "--data", &data, "--out-dir", &report, "--methods", "bias,linear+bias"], &["--methods", "bias twice", "bias.safetensors"]);
}

/// Non-finite numbers: refused as input, and a diverging run stops with an error instead of
/// writing NaN task files.
#[test]
fn nan_and_inf_are_refused_and_divergence_stops_the_run() {
    let dir = workdir("hostile-nan");
    let model = write_tiny_backbone(&dir);
    let data = s(&image_folder(&dir, 3));
    let out = s(&dir.join("run.safetensors"));
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "2", "--batch", "4", "--prompts", "2"];
        args.extend(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str], names: &[&str]| fails_naming(&train(extra).iter().map(String::as_str).collect::<Vec<_>>(), names);
    for wd in ["nan", "inf", "-5"] {
        run(&[&format!("--wd={wd}")], &["--wd"]);
    }
    for lr in ["nan", "inf", "0", "-1"] {
        run(&[&format!("--lr={lr}")], &["--lr"]);
    }
    let stderr = run(&["--lr", "1e30", "--warmup", "0"], &["--lr", "diverged"]);
    assert!(stderr.contains("lower --lr"), "{stderr}");
    assert!(!Path::new(&out).exists(), "a diverged run wrote {out}");

    // NaN in the batch, the task, or logits that overflow: errors, never an accuracy.
    let (task, batch) = task_and_batch(&dir);
    let nan_batch = s(&dir.join("nan_batch.safetensors"));
    let mut images = vec![0.5f32; 2 * 3 * common::IMG * common::IMG];
    images[17] = f32::NAN;
    write_batch(&nan_batch, &images, &[2, 3, common::IMG, common::IMG]);
    fails_naming(&["grad", "--model", &model, "--task", &task, "--batch", &nan_batch, "--out", &s(&dir.join("g.safetensors"))], &[&nan_batch, "images"]);
    let nan_task = s(&dir.join("nan_task.safetensors"));
    let mut head = vec![0.02f32; 4 * common::D];
    head[3] = f32::INFINITY;
    write_f32_tensors(&nan_task, &[("head.weight", &[4, common::D][..], &head[..]), ("head.bias", &[4], &[0.0; 4])], Default::default()).unwrap();
    fails_naming(&["forward", "--model", &model, "--task", &nan_task, "--batch", &batch, "--out", &s(&dir.join("f.safetensors"))], &[&nan_task, "head.weight"]);
}

/// What the data folder, the flags and the environment can get wrong, each named in the error.
#[test]
fn bad_data_and_flags_are_errors_naming_the_culprit() {
    let dir = workdir("hostile-flags");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 3);
    let d = s(&data);
    let out = s(&dir.join("run.safetensors"));

    // One class is no classification task.
    let one = dir.join("one");
    std::fs::create_dir_all(one.join("only")).unwrap();
    std::fs::copy(data.join("circle/000.png"), one.join("only/a.png")).unwrap();
    fails_naming(&["train", "--model", &model, "--data", &s(&one), "--out", &out, "--epochs", "1"], &["--data", "at least two"]);
    // Sizes and flags.
    fails_naming(&["train", "--model", &model, "--data", &d, "--out", &out, "--img-size", "1"], &["--img-size"]);
    fails_naming(&["train", "--model", &model, "--data", &d, "--out", &out, "--prompts", "100000"], &["--prompts"]);
    fails_naming(&["train", "--model", &model, "--data", &d, "--out", ""], &["--out"]);
    let start = Instant::now();
    fails_naming(&["train", "--model", &model, "--data", &d, "--out", &s(&dir.join("no/such/folder/t.safetensors"))], &["--out", "does not exist"]);
    assert!(start.elapsed() < Duration::from_secs(30), "a missing --out folder must fail before training");
    fails_naming(&["train", "--model", &model, "--data", &d, "--out", &out, "--num-heads", "4"], &["--num-heads", "3"]);
    let out_file = dir.join("a_file");
    std::fs::write(&out_file, "x").unwrap();
    fails_naming(&["demo", "--out-dir", &s(&out_file)], &["--out-dir", "not a folder"]);
    let junk = Command::new(env!("CARGO_BIN_EXE_vpt")).arg("info").env("WGPU_BACKEND", "junk").output().unwrap();
    let stderr = String::from_utf8_lossy(&junk.stderr);
    assert!(!junk.status.success() && stderr.contains("WGPU_BACKEND") && stderr.contains("vulkan") && !stderr.contains("apt-get"), "{stderr}");

    // Task files: zero classes, a class named twice, a batch of the wrong size.
    let (task, batch) = task_and_batch(&dir);
    let empty_head = s(&dir.join("empty_head.safetensors"));
    write_f32_tensors(&empty_head, &[("head.weight", &[0, common::D][..], &[][..]), ("head.bias", &[0], &[])], Default::default()).unwrap();
    fails_naming(&["forward", "--model", &model, "--task", &empty_head, "--batch", &batch, "--out", &s(&dir.join("x.safetensors"))], &[&empty_head, "head.weight"]);
    let narrow = s(&dir.join("narrow_head.safetensors"));
    let w = common::D;
    write_f32_tensors(&narrow, &[("prompts", &[2, 3, w][..], &vec![0.0; 6 * w][..]), ("head.weight", &[4, w - 8], &vec![0.0; 4 * (w - 8)]), ("head.bias", &[4], &[0.0; 4])], Default::default())
        .unwrap();
    fails_naming(&["forward", "--model", &model, "--task", &narrow, "--batch", &batch, "--out", &s(&dir.join("z.safetensors"))], &[&narrow, "head.weight", "prompts", "disagree"]);
    let big_batch = s(&dir.join("big_batch.safetensors"));
    write_batch(&big_batch, &vec![0.0; 2 * 3 * 18 * 18], &[2, 3, 18, 18]); // not a multiple of the patch
    fails_naming(&["forward", "--model", &model, "--task", &task, "--batch", &big_batch, "--out", &s(&dir.join("y.safetensors"))], &["--batch", &big_batch]);

    // A trained task whose class list names a class twice.
    assert!(vpt(&["train", "--model", &model, "--data", &d, "--out", &out, "--epochs", "1", "--prompts", "2"]).status.success());
    let f = TensorFile::read(&out).unwrap();
    let mut meta = f.metadata.clone();
    meta.insert("classes".into(), r#"["circle","circle","stripes"]"#.into());
    let dup = s(&dir.join("dup.safetensors"));
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = ["prompts", "head.weight", "head.bias"].iter().map(|n| (n.to_string(), f.f32(n).unwrap().0.to_vec(), f.f32(n).unwrap().1.to_vec())).collect();
    let list: Vec<(&str, &[usize], &[f32])> = tensors.iter().map(|(n, s, d)| (n.as_str(), &s[..], &d[..])).collect();
    write_f32_tensors(&dup, &list, meta.into_iter().collect()).unwrap();
    fails_naming(&["eval", "--model", &model, "--task", &dup, "--data", &d], &[&dup, "twice"]);
    // eval with --num-heads that contradicts the backbone.
    fails_naming(&["eval", "--model", &model, "--task", &out, "--data", &d, "--num-heads", "4"], &["--num-heads"]);
}

/// Images that cannot be trained on are found at the scan, named in the warning, and skipped.
#[test]
fn unreadable_images_are_named_at_the_scan() {
    let dir = workdir("hostile-images");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 3);
    let png = std::fs::read(data.join("cross/000.png")).unwrap();
    std::fs::write(data.join("cross/truncated.png"), &png[..png.len() / 2]).unwrap();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(20, 20, image::Rgb([9, 99, 199])).write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    std::fs::write(data.join("circle/cut.jpg"), &jpeg[..jpeg.len() - 40]).unwrap();
    let out = vpt(&["train", "--model", &model, "--data", &s(&data), "--out", &s(&dir.join("t.safetensors")), "--epochs", "1", "--prompts", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("skipped 2 files") && stdout.contains("truncated.png") && stdout.contains("cut.jpg"), "{stdout}");
}

/// `--resume` after the data changed is refused naming what changed; the same folder spelled
/// another way is the same folder.
#[test]
fn resume_checks_the_data_and_names_what_changed() {
    let dir = workdir("hostile-resume");
    let model = write_tiny_backbone(&dir);
    let data = image_folder(&dir, 3);
    let out = s(&dir.join("run.safetensors"));
    let args = |data: &str, epochs: &str| -> Vec<String> { ["train", "--model", &model, "--data", data, "--out", &out, "--epochs", epochs, "--prompts", "2", "--resume"].map(String::from).to_vec() };
    let run = |a: Vec<String>| vpt(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(args(&s(&data), "1")).status.success());
    let slash = format!("{}/", s(&data));
    let stderr = fails_naming(&args(&slash, "2").iter().map(String::as_str).collect::<Vec<_>>(), &["--epochs: 1 then, 2 now"]);
    assert!(!stderr.contains("--data:"), "a trailing / is the same folder:\n{stderr}");
    std::fs::remove_file(data.join("stripes/001.png")).unwrap();
    fails_naming(&args(&s(&data), "1").iter().map(String::as_str).collect::<Vec<_>>(), &["images (the files in --data and --val)"]);
}

/// Two identical runs write identical bytes.
#[test]
fn identical_runs_write_identical_task_files() {
    let dir = workdir("hostile-bytes");
    let model = write_tiny_backbone(&dir);
    let data = s(&image_folder(&dir, 3));
    let run = |name: &str| -> PathBuf {
        let out = dir.join(name);
        assert!(vpt(&["train", "--model", &model, "--data", &data, "--out", &s(&out), "--epochs", "1", "--prompts", "2"]).status.success());
        out
    };
    let (a, b) = (run("a.safetensors"), run("b.safetensors"));
    assert!(std::fs::read(a).unwrap() == std::fs::read(b).unwrap(), "two identical runs wrote different task files");
}

/// Ctrl-C: the step finishes, the last finished epoch's files stay, the message says how to
/// resume, and resuming ends where an uninterrupted run ends.
#[cfg(unix)]
#[test]
fn ctrl_c_keeps_the_last_epoch_and_says_how_to_resume() {
    let dir = workdir("hostile-ctrl-c");
    let model = write_tiny_backbone(&dir);
    let data = s(&image_folder(&dir, 6));
    let out = s(&dir.join("run.safetensors"));
    let args = ["train", "--model", &model, "--data", &data, "--out", &out, "--epochs", "40", "--batch", "2", "--prompts", "2"];
    let child = spawn_vpt(&args);
    let metrics = dir.join("run.metrics.jsonl");
    wait_for(&metrics);
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "the run was not interrupted (did it finish 40 epochs first?): {stderr}");
    assert!(stderr.contains("--resume") && !stderr.contains("panicked"), "{stderr}");
    let kept = std::fs::read_to_string(&metrics).unwrap().lines().count();
    assert_eq!(TensorFile::read(dir.join("run.resume.safetensors")).unwrap().metadata["epochs_done"], kept.to_string());
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    assert!(vpt(&resumed).status.success());
    assert_eq!(std::fs::read_to_string(&metrics).unwrap().lines().count(), 40);
}

/// Errors that named a value alone now name where it came from — the file, the tensor or key, the
/// flag — and say what to do: a label beyond the task's classes, a checkpoint's mean/std, a task
/// whose image size disagrees with the batch, a position embedding with no patch positions, an
/// output folder where nothing can be created.
#[test]
fn unclear_errors_name_their_file_key_or_flag() {
    let dir = workdir("hostile-unclear");
    let model = write_tiny_backbone(&dir);
    let data = s(&image_folder(&dir, 3));
    let (task, _) = task_and_batch(&dir);
    let grad = |model: &str, task: &str, batch: &str, out: &str| ["grad", "--model", model, "--task", task, "--batch", batch, "--out", out].map(str::to_string);
    fn args(a: &[String]) -> Vec<&str> {
        a.iter().map(String::as_str).collect()
    }
    let out = s(&dir.join("grads.safetensors"));

    // A label beyond the task's 4 classes.
    let far_label = s(&dir.join("far_label.safetensors"));
    common::write_batch(Path::new(&far_label), &vec![0.5f32; 2 * 3 * common::IMG * common::IMG], &[2, 3, common::IMG, common::IMG], &[1, 7]);
    fails_naming(&args(&grad(&model, &task, &far_label, &out)), &[&far_label, "\"labels\"", "7", "4 classes"]);

    // A checkpoint's normalisation that is NaN or not positive: the file and the key.
    for (name, key, value) in [("nan_mean.safetensors", "mean", "nan,0.5,0.5"), ("zero_std.safetensors", "std", "0.5,0,0.5")] {
        let meta = TINY_METADATA.map(|(k, v)| if k == key { (k, value) } else { (k, v) });
        let bad = backbone_with(&dir, name, &meta, |_| {});
        fails_naming(&["train", "--model", &bad, "--data", &data, "--out", &s(&dir.join("n.safetensors")), "--epochs", "1"], &[&bad, &format!("metadata {key}")]);
    }

    // A task trained at another image size than the batch's: both files, and the task's key.
    let sized = s(&dir.join("sized_task.safetensors"));
    let file = TensorFile::read(&task).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = file.tensors.keys().map(|n| (n.clone(), file.f32(n).unwrap().0.to_vec(), file.f32(n).unwrap().1.to_vec())).collect();
    let list: Vec<(&str, &[usize], &[f32])> = tensors.iter().map(|(n, s, d)| (n.as_str(), &s[..], &d[..])).collect();
    write_f32_tensors(&sized, &list, [("img_size".to_string(), "32,32".to_string())].into()).unwrap();
    let (_, batch) = task_and_batch(&dir);
    fails_naming(&args(&grad(&model, &sized, &batch, &out)), &["--batch", &batch, &sized, "img_size", "32×32"]);

    // A position embedding holding the class token alone.
    let no_grid = edited_backbone(&dir, "no_grid.safetensors", |t| {
        let pe = t.iter_mut().find(|(n, _, _)| n == "pos_embed").unwrap();
        pe.1 = vec![1, 1, common::D];
        pe.2.truncate(common::D);
    });
    fails_naming(&["train", "--model", &no_grid, "--data", &data, "--out", &s(&dir.join("g.safetensors")), "--img-size", "16"], &[&no_grid, "\"pos_embed\"", "no"]);

    // An output where no file can be created: the flag and the folder, before any work.
    #[cfg(target_os = "linux")]
    {
        fails_naming(&args(&grad(&model, &task, &batch, "/proc/grads.safetensors")), &["--out", "/proc", "no file can be created"]);
        fails_naming(&["train", "--model", &model, "--data", &data, "--out", "/proc/run.safetensors"], &["--out", "/proc"]);
        fails_naming(&["compare", "--model", &model, "--data", &data, "--methods", "linear", "--out-dir", "/proc/compare"], &["--out-dir", "/proc/compare"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
