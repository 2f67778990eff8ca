//! A sweep of bad values through every flag of every command that reads files or numbers (train,
//! eval, predict, forward, bench, demo, compare, sweep, record, lab, check, tune, convert, and the
//! methods' options): a few hundred runs of `vpt`, each with one flag (or argument) replaced by something a careless or
//! hostile user might type. For every run: no panic, no hang, none of the user's files changed,
//! no NaN printed or written, and a failure names the flag or the value at fault.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{image_folder, workdir, write_tiny_backbone};
use vpt_wgsl::io::TensorFile;

/// Numbers and words a number flag might be given.
const BAD_NUMBERS: [&str; 10] = ["", "-1", "0", "nan", "inf", "1e30", "abc", "99999999999999999999", "3.5", "0x10"];

/// What became of one run.
struct Run {
    code: Option<i32>,
    stderr: String,
    stdout: String,
}

/// Run `vpt` with a time limit, killing it past the limit (a hang).
fn run(args: &[String], limit: Duration) -> Option<Run> {
    // `vpt tune` writes the tune cache: never the user's (nor the other tests') one.
    let cache = std::env::temp_dir().join(format!("vpt-sweep-cache-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpt"))
        .args(args)
        .env_remove("WGPU_ADAPTER_NAME")
        .env("VPT_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    Some(Run { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned(), stdout: String::from_utf8_lossy(&out.stdout).into_owned() })
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// Does any float tensor of a written file hold a NaN or an infinity?
fn holds_non_finite(path: &Path) -> bool {
    TensorFile::read(path).map(|f| f.tensors.keys().any(|n| f.f32(n).is_ok_and(|(_, d)| d.iter().any(|v| !v.is_finite())))).unwrap_or(false)
}

#[test]
fn a_sweep_of_bad_values_through_every_flag() {
    let dir = workdir("sweep");
    let keep = dir.join("keep"); // the user's files: nothing may change them
    std::fs::create_dir_all(&keep).unwrap();
    let model = write_tiny_backbone(&keep);
    let data = image_folder(&keep, 3).display().to_string();
    let task = keep.join("task.safetensors").display().to_string();
    let trained = Command::new(env!("CARGO_BIN_EXE_vpt")).args(["train", "--model", &model, "--data", &data, "--out", &task, "--epochs", "1", "--prompts", "2"]).output().unwrap();
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    std::fs::remove_file(keep.join("task.resume.safetensors")).unwrap();
    std::fs::remove_file(keep.join("task.metrics.jsonl")).unwrap();
    let image = format!("{data}/circle/000.png");
    let text = keep.join("notes.txt");
    std::fs::write(&text, "not a model").unwrap();
    let text = text.display().to_string();
    let folder = keep.display().to_string();
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let before = snapshot(&keep);

    let missing = scratch.join("no/such/file.safetensors").display().to_string();
    let bad_paths: Vec<String> = vec!["".into(), missing, folder.clone(), "/dev/null".into(), text.clone(), image.clone(), model.clone(), task.clone()];
    let new_out = |i: usize| scratch.join(format!("out{i}.safetensors")).display().to_string();
    // (command, the valid arguments, the flags to sweep with number values, with path values)
    type Base = (&'static str, Vec<(&'static str, String)>, Vec<&'static str>, Vec<&'static str>);
    let bases: Vec<Base> = vec![
        (
            "train",
            vec![("--model", model.clone()), ("--data", data.clone()), ("--out", String::new()), ("--epochs", "1".into()), ("--batch", "4".into()), ("--prompts", "2".into())],
            vec![
                "--prompts",
                "--epochs",
                "--batch",
                "--lr",
                "--wd",
                "--warmup",
                "--seed",
                "--img-size",
                "--prompt-dropout",
                "--num-heads",
                "--depth",
                "--mean",
                "--std",
                "--pool",
                "--optimizer",
                "--attention",
                "--recompute",
                "--method",
                "--adapter-reduction",
                "--lora-rank",
                "--lora-alpha",
            ],
            vec!["--model", "--data", "--val", "--root", "--out"],
        ),
        ("eval", vec![("--model", model.clone()), ("--task", task.clone()), ("--data", data.clone())], vec!["--batch", "--num-heads"], vec!["--model", "--task", "--data", "--root"]),
        ("convert", vec![("--model", model.clone()), ("--out", String::new())], vec!["--num-heads"], vec!["--model", "--out"]),
        ("predict", vec![("--model", model.clone()), ("--task", task.clone()), ("", image.clone())], vec!["--top-k", "--batch", "--num-heads"], vec!["--model", "--task", ""]),
        (
            "forward",
            vec![("--model", model.clone()), ("--task", task.clone()), ("--batch", String::new()), ("--out", String::new())],
            vec!["--num-heads"],
            vec!["--model", "--task", "--batch", "--out"],
        ),
        ("bench", vec![("--filter", "gelu fwd".into()), ("--reps", "1".into())], vec!["--reps", "--batch", "--attention", "--recompute"], vec![]),
        ("demo", vec![("--epochs", "1".into())], vec![], vec!["--out-dir", "--dir"]),
        (
            "compare",
            vec![("--model", model.clone()), ("--data", data.clone()), ("--methods", "linear".into()), ("--out-dir", String::new()), ("--epochs", "1".into()), ("--batch", "4".into())],
            vec!["--methods", "--epochs", "--batch", "--lr", "--prompts", "--adapter-reduction", "--lora-rank", "--lora-alpha"],
            vec!["--model", "--data", "--out-dir"],
        ),
        (
            "sweep",
            vec![
                ("--model", model.clone()),
                ("--data", data.clone()),
                ("--out-dir", String::new()),
                ("--lr", "1,0.1".into()),
                ("--wd", "0".into()),
                ("--epochs", "1".into()),
                ("--batch", "4".into()),
                ("--prompts", "2".into()),
            ],
            // The flags sweep reads its own way (lists, the test images, its folder); the
            // recipe's other flags are train's, swept above through the same code.
            vec!["--lr", "--wd"],
            vec!["--test", "--out-dir"],
        ),
        ("record", vec![("", "step".into()), ("--out", String::new())], vec![""], vec!["--out"]),
        ("lab", vec![("--port", "0".into()), ("--traces", folder.clone())], vec![], vec!["--traces"]),
        ("check", vec![("--wgsl-dir", folder.clone())], vec![], vec!["--wgsl-dir"]),
        ("tune", vec![("--preset", "small".into()), ("--filter", "matmul qkv".into()), ("--reps", "1".into())], vec!["--reps", "--batch"], vec![]),
    ];
    // forward needs a batch file: one of the tiny ViT's size, written with the task's normalisation.
    let batch = scratch.join("batch.safetensors").display().to_string();
    common::write_batch(Path::new(&batch), &vec![0.1; 2 * 3 * common::IMG * common::IMG], &[2, 3, common::IMG, common::IMG], &[0, 1]);

    let mut cases = 0;
    let mut problems = Vec::new();
    for (command, valid, number_flags, path_flags) in &bases {
        let sweeps = number_flags.iter().flat_map(|f| BAD_NUMBERS.iter().map(move |v| (*f, v.to_string())));
        let sweeps: Vec<(&str, String)> = sweeps.chain(path_flags.iter().flat_map(|f| bad_paths.iter().map(move |v| (*f, v.clone())))).collect();
        for (flag, value) in sweeps {
            cases += 1;
            let out = new_out(cases);
            let mut args = vec![command.to_string()];
            let mut replaced = false;
            for (f, v) in valid {
                let v = if *f == flag {
                    replaced = true;
                    value.clone()
                } else if v.is_empty() && f.starts_with("--out") {
                    out.clone()
                } else if v.is_empty() {
                    batch.clone()
                } else {
                    v.clone()
                };
                if !f.is_empty() {
                    args.push(f.to_string());
                }
                args.push(v);
            }
            if !replaced {
                args.push(flag.to_string());
                args.push(value.clone());
            }
            let Some(r) = run(&args, Duration::from_secs(180)) else {
                problems.push(format!("hang: vpt {}", args.join(" ")));
                continue;
            };
            let what = format!("vpt {} → exit {:?}: {}", args.join(" "), r.code, r.stderr.lines().last().unwrap_or(""));
            if r.code == Some(101) || r.stderr.contains("panicked") {
                problems.push(format!("panic: {what}"));
            }
            if r.stdout.contains("NaN") || r.stdout.contains(" inf") || holds_non_finite(Path::new(&out)) {
                problems.push(format!("NaN result: {what}"));
            }
            let named = [flag, value.as_str()].iter().any(|n| !n.is_empty() && r.stderr.contains(n))
                || r.stderr.contains("Usage:") // clap: its usage line names the flags
                || (flag.is_empty() && (r.stderr.contains("<IMAGES>") || r.stderr.contains("WORKLOAD"))); // the positional arguments
            if r.code != Some(0) && !named {
                problems.push(format!("error names neither {flag:?} nor {value:?}: {what}"));
            }
        }
    }
    // A file of the user's changed or gone is a file destroyed. (New files may appear: `demo
    // --out-dir` given the user's folder writes its task files there.)
    let after = snapshot(&keep);
    let destroyed: Vec<&String> = before.iter().filter(|f| !after.contains(f)).map(|(name, _)| name).collect();
    assert!(destroyed.is_empty(), "runs changed or removed the user's files: {destroyed:?}");
    assert!(cases >= 200, "only {cases} cases");
    assert!(problems.is_empty(), "{} of {cases} runs went wrong:\n{}", problems.len(), problems.join("\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}
