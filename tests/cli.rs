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
