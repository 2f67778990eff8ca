//! `vpt check` as a user runs it: green on every backend this machine has (lavapipe's Vulkan, with
//! subgroups, and llvmpipe's GL, without), and red when a kernel is broken; and an edited kernel
//! (`--wgsl-dir`) that drops a binding named as such.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vpt_check(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vpt")).arg("check").args(args).env_remove("WGPU_BACKEND").env_remove("WGPU_ADAPTER_NAME").output().expect("run vpt");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The backends with an adapter here, by `vpt check --backend` name; none is a failure.
fn backends() -> Vec<&'static str> {
    let all = [("vulkan", wgpu::Backends::VULKAN), ("gl", wgpu::Backends::GL), ("metal", wgpu::Backends::METAL), ("dx12", wgpu::Backends::DX12)];
    let found: Vec<&str> = all.iter().filter(|(_, b)| vpt_wgsl::Gpu::with_backends(*b).is_ok()).map(|(name, _)| *name).collect();
    assert!(!found.is_empty(), "no GPU adapter found; on Debian/Ubuntu: sudo apt-get install -y mesa-vulkan-drivers libegl1 libegl-mesa0");
    found
}

#[test]
fn check_passes_on_every_backend() {
    for backend in backends() {
        let (ok, stdout, stderr) = vpt_check(&["--backend", backend]);
        assert!(ok, "vpt check --backend {backend} failed:\n{stdout}\n{stderr}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
        // Every family, every matmul kernel, both yardsticks.
        for kernel in
            ["elementwise", "gelu", "reduce", "tokens", "heads", "patch", "optim", "softmax", "layernorm", "cross_entropy", "attention", "matmul (gpu64x64)", "matmul (naive)", "matmul (reg32x8)"]
        {
            assert!(stdout.contains(&format!("ok    {kernel} ")), "{backend}: no passing {kernel} line in:\n{stdout}");
        }
        assert!(stdout.contains(" pytorch ") && stdout.contains(" f64 "), "{stdout}");
        let with_subgroups = vpt_wgsl::Gpu::new().map(|g| g.has_subgroups()).unwrap_or(false);
        if backend == "vulkan" && with_subgroups {
            assert!(stdout.contains("without subgroups"), "the row kernels' workgroup-memory build was not checked:\n{stdout}");
        }
    }
}

/// Copy `wgsl/` into a fresh folder.
fn copy_wgsl(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vpt-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("wgsl");
    for sub in ["", "lib"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(src.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    dir
}

/// A sign flipped in softmax's backward: `vpt check --wgsl-dir` exits non-zero, and the failures
/// are softmax's alone (both of its builds), while the untouched kernels still pass.
#[test]
fn a_broken_kernel_turns_check_red() {
    let dir = copy_wgsl("broken");
    let path = dir.join("softmax.wgsl");
    let source = std::fs::read_to_string(&path).unwrap();
    let broken = source.replace("(dy[start + j] - dot)", "(dy[start + j] + dot)");
    assert_ne!(broken, source, "the line to break is no longer in softmax.wgsl");
    std::fs::write(&path, broken).unwrap();

    let (ok, stdout, stderr) = vpt_check(&["--wgsl-dir", dir.to_str().unwrap()]);
    assert!(!ok, "a broken softmax passed vpt check:\n{stdout}");
    assert!(stderr.contains("comparisons failed"), "{stderr}");
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(!failures.is_empty(), "{stdout}");
    assert!(failures.iter().all(|l| l.contains("softmax")), "only softmax is broken:\n{}", failures.join("\n"));
    assert!(failures.iter().any(|l| l.contains(" f64 ")) && failures.iter().any(|l| l.contains(" pytorch ")), "{}", failures.join("\n"));
    assert!(stdout.contains("ok    layernorm "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A folder that is not a copy of wgsl/: an error naming the flag, before anything runs.
#[test]
fn wgsl_dir_without_lib_is_an_error() {
    let dir = std::env::temp_dir().join(format!("vpt-check-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, _, stderr) = vpt_check(&["--wgsl-dir", dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("--wgsl-dir") && stderr.contains("lib/"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An edited kernel (`vpt check --wgsl-dir`) that no longer uses a binding its launcher binds:
/// the error says so and names the bindings, not wgpu's bind-group-layout words alone.
#[test]
fn an_edited_kernel_that_drops_a_binding_is_named() {
    let gpu = vpt_wgsl::Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let read = |relative: &str| -> vpt_wgsl::Result<String> {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("wgsl").join(relative)).unwrap();
        // gelu_forward no longer reads x (binding 1).
        Ok(if relative == "gelu.wgsl" { text.replace("y[i] = gelu_exact(x[i]);", "y[i] = 1.0;") } else { text })
    };
    gpu.use_kernel_sources(std::sync::Arc::new(read)).unwrap();
    let x = vpt_wgsl::Tensor::from_slice(&gpu, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let Err(err) = vpt_wgsl::kernels::gelu::gelu_forward(&x) else { panic!("the bind group cannot fit") };
    let err = err.to_string();
    assert!(err.contains("gelu::gelu_forward") && err.contains("buffers at [1, 2]") && err.contains("`wgsl_dir`") && err.contains("keep every binding"), "{err}");
}
