//! The `vpt` binary as a user runs it.

use std::process::Command;

fn vpt(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpt"));
    cmd.args(args).env_remove("WGPU_BACKEND").env_remove("WGPU_ADAPTER_NAME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run vpt");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `vpt info` lists adapters with backend, driver, features and limits. Fails (like every GPU
/// test) where no adapter exists, with the install hint.
#[test]
fn info_lists_adapters_with_limits() {
    let (ok, stdout, stderr) = vpt(&["info"], &[]);
    assert!(ok, "vpt info failed: {stderr}");
    for field in ["backend:", "driver:", "features:", "max storage buffer binding size:", "max workgroup storage:", "max invocations per workgroup:", "default choice:"] {
        assert!(stdout.contains(field), "missing {field:?} in:\n{stdout}");
    }
}

/// A backend with no adapter: non-zero exit and a message naming the fix.
#[test]
fn info_without_adapter_fails_with_install_hint() {
    let absent = if cfg!(target_os = "windows") { "metal" } else { "dx12" };
    let (ok, _, stderr) = vpt(&["info"], &[("WGPU_BACKEND", absent)]);
    assert!(!ok, "vpt info should fail with WGPU_BACKEND={absent}");
    assert!(stderr.contains("no GPU adapter found"), "{stderr}");
    if cfg!(target_os = "linux") {
        assert!(stderr.contains("mesa-vulkan-drivers"), "{stderr}");
    }
}

/// WGPU_ADAPTER_NAME that matches nothing: an error listing what exists, not a panic.
#[test]
fn unknown_adapter_name_is_an_error_not_a_panic() {
    let (ok, _, stderr) = vpt(&["info"], &[("WGPU_ADAPTER_NAME", "no-such-gpu-xyz")]);
    assert!(!ok);
    assert!(stderr.contains("no-such-gpu-xyz") && stderr.contains("matches no adapter"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn fixture(case: &str, file: &str) -> String {
    format!("{}/fixtures/vit/{case}/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn max_relative_error(ours: &[f32], theirs: &[f32]) -> f64 {
    let diff = ours.iter().zip(theirs).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    diff / theirs.iter().fold(0.0f64, |m, &b| m.max((b as f64).abs()))
}

/// `vpt grad` and `vpt forward` on a timm fixture (deep prompts, image pooling, f16 checkpoint)
/// write what PyTorch computed.
#[test]
fn grad_and_forward_write_what_pytorch_computed() {
    let out_dir = std::env::temp_dir().join(format!("vpt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("grads.safetensors").to_string_lossy().into_owned();
    let case = "deep_image";
    let inputs = ["--model", &fixture(case, "model.safetensors"), "--task", &fixture(case, "task.safetensors"), "--batch", &fixture(case, "batch.safetensors")];
    let (ok, stdout, stderr) = vpt(&[&["grad"][..], &inputs, &["--out", &out]].concat(), &[]);
    assert!(ok, "vpt grad failed: {stderr}");
    assert!(stdout.contains("loss"), "{stdout}");
    let ours = vpt_wgsl::io::TensorFile::read(&out).unwrap();
    let torch = vpt_wgsl::io::TensorFile::read(fixture(case, "expected.safetensors")).unwrap();
    for (name, tol) in [("logits", 1e-4), ("loss", 1e-4), ("grad.prompts", 1e-3), ("grad.head.weight", 1e-3), ("grad.head.bias", 1e-3)] {
        let err = max_relative_error(ours.f32(name).unwrap().1, torch.f32(name).unwrap().1);
        assert!(err <= tol, "{name}: relative error {err:.2e}");
    }
    // Recomputing every block in the backward writes the same bits.
    let recomputed = out_dir.join("recomputed.safetensors").to_string_lossy().into_owned();
    let (ok, _, stderr) = vpt(&[&["grad"][..], &inputs, &["--out", &recomputed, "--recompute", "block"]].concat(), &[]);
    assert!(ok, "vpt grad --recompute block failed: {stderr}");
    let recomputed = vpt_wgsl::io::TensorFile::read(&recomputed).unwrap();
    for name in ["logits", "loss", "grad.prompts", "grad.head.weight", "grad.head.bias"] {
        assert_eq!(recomputed.f32(name).unwrap().1, ours.f32(name).unwrap().1, "{name}");
    }
    let logits_out = out_dir.join("logits.safetensors").to_string_lossy().into_owned();
    let (ok, _, stderr) = vpt(&[&["forward"][..], &inputs, &["--out", &logits_out]].concat(), &[]);
    assert!(ok, "vpt forward failed: {stderr}");
    let logits = vpt_wgsl::io::TensorFile::read(&logits_out).unwrap();
    assert_eq!(logits.f32("logits").unwrap().1, ours.f32("logits").unwrap().1);
    std::fs::remove_dir_all(&out_dir).unwrap();
}

/// `--precision f16` as a user gives it: on the default adapter (lavapipe's Vulkan has
/// SHADER_F16) the logits stay within 1e-2 of PyTorch's f32; on GL, which has no f16, a clear
/// error and no output file.
#[test]
fn grad_with_f16_weights() {
    let out_dir = std::env::temp_dir().join(format!("vpt-cli-f16-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let case = "odd_sizes";
    let inputs = ["--model", &fixture(case, "model.safetensors"), "--task", &fixture(case, "task.safetensors"), "--batch", &fixture(case, "batch.safetensors")];
    let out = out_dir.join("f16.safetensors").to_string_lossy().into_owned();
    let with_f16 = vpt_wgsl::Gpu::new().map(|g| g.features().contains(wgpu::Features::SHADER_F16)).unwrap_or(false);
    if with_f16 {
        let (ok, _, stderr) = vpt(&[&["grad"][..], &inputs, &["--out", &out, "--precision", "f16"]].concat(), &[]);
        assert!(ok, "vpt grad --precision f16 failed: {stderr}");
        let ours = vpt_wgsl::io::TensorFile::read(&out).unwrap();
        let torch = vpt_wgsl::io::TensorFile::read(fixture(case, "expected.safetensors")).unwrap();
        for name in ["logits", "loss", "grad.prompts"] {
            let err = max_relative_error(ours.f32(name).unwrap().1, torch.f32(name).unwrap().1);
            assert!(err <= 1e-2, "{name}: relative error {err:.2e}");
        }
    }
    // Where this machine has a GL adapter (here: llvmpipe), it has no f16.
    let gl_without_f16 = vpt_wgsl::Gpu::with_backends(wgpu::Backends::GL).is_ok_and(|g| !g.features().contains(wgpu::Features::SHADER_F16));
    if gl_without_f16 {
        let refused = out_dir.join("refused.safetensors");
        let (ok, _, stderr) = vpt(&[&["grad"][..], &inputs, &["--out", &refused.to_string_lossy(), "--precision", "f16"]].concat(), &[("WGPU_BACKEND", "gl")]);
        assert!(!ok && stderr.contains("SHADER_F16") && stderr.contains("--precision f32"), "{stderr}");
        assert!(!refused.exists(), "a refused run wrote its output");
    }
    let (ok, _, stderr) = vpt(&["grad", "--precision", "f8"], &[]);
    assert!(!ok && stderr.contains("f8"), "{stderr}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

/// A task made for another backbone is refused with a message, and no output file appears.
#[test]
fn grad_refuses_a_task_for_another_backbone() {
    let out = std::env::temp_dir().join(format!("vpt-cli-mismatch-{}.safetensors", std::process::id()));
    let (ok, _, stderr) = vpt(
        &[
            "grad",
            "--model",
            &fixture("odd_sizes", "model.safetensors"),
            "--task",
            &fixture("deep_image", "task.safetensors"),
            "--batch",
            &fixture("odd_sizes", "batch.safetensors"),
            "--out",
            &out.to_string_lossy(),
        ],
        &[],
    );
    assert!(!ok && !out.exists());
    assert!(stderr.contains("error:") && !stderr.contains("panicked"), "{stderr}");
}
