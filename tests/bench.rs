//! The benchmark code path, at toy sizes: profiling (both timing methods), the suite as a library
//! function, its JSON, and `vpt bench` as a user runs it. Nothing here checks a speed: the
//! numbers themselves belong to `vpt bench`, on a quiet machine.

use std::process::Command;

use vpt_wgsl::bench::{self, BenchOptions, StepShape};
use vpt_wgsl::gpu::TimingMethod;
use vpt_wgsl::kernels::gelu::gelu_forward;
use vpt_wgsl::kernels::matmul::{matmul_forward_with, MatmulKernel, MatmulOptions};
use vpt_wgsl::model::plan::{AttentionChoice, BlockPlan, Recompute};
use vpt_wgsl::model::vit::{Precision, VitConfig};
use vpt_wgsl::{Gpu, Tensor};

/// A device of this test's own: a profile times every launch on its device, so tests running in
/// parallel on a shared one would land in each other's profiles.
fn private_gpu() -> Gpu {
    let shared = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    Gpu::from_adapter(shared.adapter().clone()).unwrap()
}

/// A ViT small enough for a test, every kernel still distinct (head dim 4, MLP 12): one block,
/// 8×8 images of 4×4 patches, so 5 tokens (an odd count) without prompts.
fn toy_vit() -> VitConfig {
    VitConfig { embed_dim: 8, depth: 1, num_heads: 2, patch_size: 4, img_size: (8, 8), in_chans: 3, mlp_hidden: 12, eps: 1e-6 }
}

fn toy_shape() -> StepShape {
    StepShape { vit: toy_vit(), batch: 2, prompts: 0, classes: 3 }
}

#[test]
fn profile_lists_every_launch_by_name_with_either_method() {
    let gpu = private_gpu();
    let x = Tensor::full(&gpu, &[4, 6], 0.5).unwrap();
    let w = Tensor::full(&gpu, &[3, 6], 0.25).unwrap();
    let mut methods = vec![TimingMethod::WallClock];
    if gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
        methods.push(TimingMethod::GpuTimestamps);
    }
    for method in methods {
        let (y, profile) = gpu
            .profile_with(method, || {
                let h = matmul_forward_with(MatmulKernel::Tiled, &x, &w, None, MatmulOptions { trans_a: false, trans_b: true })?;
                gelu_forward(&h)
            })
            .unwrap();
        assert_eq!(profile.method, method);
        let names: Vec<&str> = profile.kernels.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["matmul::matmul_tiled", "gelu::gelu_forward"], "{method:?}");
        assert_eq!(profile.total_ns(), profile.kernels.iter().map(|k| k.ns).sum::<u64>());
        // The profiled ops still computed: GELU(6 · 0.5 · 0.25) = GELU(0.75).
        assert!(y.to_vec().unwrap().iter().all(|&v| (v - 0.5800).abs() < 1e-3), "{method:?}");
    }
}

#[test]
fn profile_ends_even_when_the_ops_fail_and_does_not_nest() {
    let gpu = private_gpu();
    let bad = gpu.profile(|| matmul_forward_with(MatmulKernel::Tiled, &Tensor::zeros(&gpu, &[2, 3])?, &Tensor::zeros(&gpu, &[4, 5])?, None, MatmulOptions::default()));
    assert!(bad.unwrap_err().to_string().contains("matmul_forward"));
    // Not stuck profiling: a new profile starts, and one inside it is refused.
    let (inner, profile) = gpu.profile(|| Ok(gpu.profile(|| Ok(())).map(|_| ()))).unwrap();
    assert!(inner.unwrap_err().to_string().contains("already being profiled"));
    assert!(profile.kernels.is_empty());
}

#[test]
fn suite_measures_every_kernel_and_variant_and_writes_json() {
    let gpu = private_gpu();
    let options = BenchOptions { reps: 2, ..BenchOptions::new(toy_shape()) };
    let mut streamed = 0;
    let report = bench::run(&gpu, &options, |_| streamed += 1).unwrap();

    // 14 matmuls of a step and the 2 with a fused GELU epilogue, with each kernel, and the 5 dX
    // products again from a transposed copy of the weight; LayerNorm, add + LayerNorm, softmax,
    // GELU, cross-entropy both ways; the f16 packing of kept activations both ways; attention
    // fused and unfused both ways, and the fused backward with dQ's own kernel; the 8 row-kernel
    // cases and the 3 fused attention cases again without subgroups where the adapter has them.
    let matmuls = ["qkv", "proj", "fc1", "fc2"].len() * 2 + 6 + 2 + 5;
    // And the 3 fused attention cases once more with the subgroup kernels reading the heads from
    // their other source (texels or buffers), where those kernels run.
    let without_subgroups = if gpu.has_subgroups() { 8 + 3 } else { 0 };
    let other_heads = if gpu.has_subgroups() { 3 } else { 0 };
    assert_eq!(report.results.len(), matmuls * MatmulKernel::all_on(&gpu).len() + 10 + 2 + 5 + without_subgroups + other_heads);
    if gpu.has_subgroups() {
        for kernel in ["layernorm fwd", "add_layernorm bwd", "softmax fwd", "cross_entropy bwd"] {
            let variants: Vec<&str> = report.results.iter().filter(|r| r.kernel == kernel).map(|r| r.variant.as_str()).collect();
            assert!(variants.len() == 2 && variants[0].ends_with(" (subgroups)") && !variants[1].ends_with(" (subgroups)"), "{kernel}: {variants:?}");
        }
        for kernel in ["attention fwd fused", "attention bwd fused, dq kernel"] {
            let variants: Vec<&str> = report.results.iter().filter(|r| r.kernel == kernel).map(|r| r.variant.as_str()).collect();
            let texels = variants.iter().filter(|v| v.ends_with(" (subgroups, texels)")).count();
            let buffers = variants.iter().filter(|v| v.ends_with(" (subgroups)")).count();
            assert!(variants.len() == 3 && texels == 1 && buffers == 1 && !variants[1].contains("(subgroups"), "{kernel}: {variants:?}");
        }
    }
    assert_eq!(streamed, report.results.len());
    for kernel in MatmulKernel::all_on(&gpu) {
        let n = report.results.iter().filter(|r| r.kernel.starts_with("matmul") && r.variant == kernel.name()).count();
        assert_eq!(n, matmuls, "{}", kernel.name());
    }
    for kernel in ["halves to", "halves from"] {
        assert!(report.results.iter().any(|r| r.kernel == kernel), "{kernel}");
    }
    for kernel in ["layernorm", "add_layernorm", "softmax", "gelu", "cross_entropy"] {
        for dir in ["fwd", "bwd"] {
            assert!(report.results.iter().any(|r| r.kernel == format!("{kernel} {dir}")), "{kernel} {dir}");
        }
    }
    for path in ["fused", "unfused"] {
        for dir in ["fwd", "bwd"] {
            assert!(report.results.iter().any(|r| r.kernel == format!("attention {dir} {path}")), "attention {dir} {path}");
        }
    }
    // The fused kernels share the streamed rows by subgroup shuffles where the adapter has them
    // (the `_sg` entry points), listed first.
    let sg = if gpu.has_subgroups() { "_sg" } else { "" };
    let fused = report.results.iter().find(|r| r.kernel == "attention bwd fused").unwrap();
    assert!(fused.variant.starts_with(&format!("attention_backward_rowdot+attention_backward_dkdv{sg}+matmul_")), "dQ by matmul: {}", fused.variant);
    let kernel = report.results.iter().find(|r| r.kernel == "attention bwd fused, dq kernel").unwrap();
    assert_eq!(kernel.variant.split(" (").next().unwrap(), format!("attention_backward_rowdot+attention_backward_dkdv{sg}+attention_backward_dq{sg}"));
    for r in &report.results {
        assert!(r.min_ms <= r.median_ms && r.median_ms <= r.max_ms, "{r:?}");
        // GFLOP/s for matmuls, GB/s for the rest (either may be absent if a kernel took 0 ns).
        if r.kernel.starts_with("matmul") {
            assert!(r.gbps.is_none(), "{r:?}");
        } else {
            assert!(r.gflops.is_none(), "{r:?}");
        }
    }
    let ce = report.results.iter().rfind(|r| r.kernel == "cross_entropy fwd").unwrap();
    assert_eq!(ce.variant, "cross_entropy_forward+mean_forward");
    assert_eq!(ce.shape, "[2,3]");

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("to_json writes valid JSON");
    assert_eq!(json["adapter"], report.adapter.as_str());
    assert_eq!(json["timing"], report.timing.name());
    assert_eq!(json["dims"]["tokens"], 5);
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), report.results.len());
    for (r, j) in report.results.iter().zip(results) {
        assert_eq!(j["kernel"], r.kernel.as_str());
        assert_eq!(j["variant"], r.variant.as_str());
        assert_eq!(j["shape"], r.shape.as_str());
        // serde_json's default float parser may miss the last bit; the text itself round-trips.
        assert!((j["median_ms"].as_f64().unwrap() - r.median_ms).abs() <= 1e-12 * r.median_ms, "{j}");
        for field in ["min_ms", "max_ms", "gflops", "gbps"] {
            assert!(j.get(field).is_some(), "{field} missing from {j}");
        }
    }
    assert!(report.to_table().contains("matmul fc1 dX"));
}

#[test]
fn filter_selects_cases_and_bad_sizes_are_errors() {
    let gpu = private_gpu();
    let options = BenchOptions { reps: 1, filter: vec!["GELU".into(), "fc2 dx".into()], ..BenchOptions::new(toy_shape()) };
    let report = bench::run(&gpu, &options, |_| ()).unwrap();
    let kernels: Vec<&str> = report.results.iter().map(|r| r.kernel.as_str()).collect();
    let kernel_count = MatmulKernel::all_on(&gpu).len();
    // "fc2 dx" picks fc2's dX from the weight and from its transposed copy; "gelu" also picks
    // the fused "fc1+gelu" and "fc2 dX*gelu'" (which "fc2 dx" matches too, with its copy's).
    for case in ["matmul fc2 dX", "matmul fc2 dX (W^T copy)", "matmul fc1+gelu", "matmul fc2 dX*gelu'", "matmul fc2 dX*gelu' (W^T copy)"] {
        assert_eq!(kernels.iter().filter(|k| **k == case).count(), kernel_count, "{case}");
    }
    assert_eq!(kernels.len(), 5 * kernel_count + 2, "{kernels:?}");

    let bad = BenchOptions::new(StepShape { vit: VitConfig { num_heads: 3, ..toy_vit() }, ..toy_shape() });
    assert!(bench::run(&gpu, &bad, |_| ()).unwrap_err().to_string().contains("not a multiple of num_heads"));
}

fn vpt(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).env_remove("WGPU_BACKEND").env_remove("WGPU_ADAPTER_NAME").output().expect("run vpt");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `vpt bench --json` prints one JSON object on stdout and nothing else there.
#[test]
fn cli_json_is_one_object() {
    let (ok, stdout, stderr) = vpt(&["bench", "--filter", "gelu fwd,gelu bwd", "--reps", "1", "--json"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r["gbps"].is_number() && r["gflops"].is_null()), "{json}");
    assert!(stderr.contains("gelu fwd"), "progress rows go to stderr: {stderr}");
}

/// Errors: a backend with no adapter, a filter that matches nothing. Non-zero exit, clear message.
#[test]
fn cli_errors_exit_non_zero() {
    let absent = if cfg!(target_os = "windows") { "metal" } else { "dx12" };
    let (ok, _, stderr) = vpt(&["bench", "--backend", absent]);
    assert!(!ok);
    assert!(stderr.contains("no GPU adapter found"), "{stderr}");
    let (ok, _, stderr) = vpt(&["bench", "--filter", "no-such-kernel", "--reps", "1"]);
    assert!(!ok);
    assert!(stderr.contains("matches no case"), "{stderr}");
}

/// The training-step benchmark runs a real VPT-deep step and accounts for it.
#[test]
fn train_step_benchmark_times_a_real_step() {
    let gpu = vpt_wgsl::Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let shape = StepShape { vit: VitConfig { depth: 2, ..toy_vit() }, prompts: 2, ..toy_shape() };
    let t = bench::train_step(&gpu, &shape, BlockPlan::default(), Precision::F32, 1).unwrap();
    assert!(t.images_per_second > 0.0 && t.forward_ms > 0.0 && t.backward_ms > 0.0 && t.optimizer_ms > 0.0, "{t:?}");
    // Forward, backward and 3 SGD updates: dozens of launches, and at least the 3 updates.
    assert!(t.dispatches > 20, "{t:?}");
    assert!(t.peak_bytes > t.weight_bytes && t.weight_bytes > 0, "{t:?}");
    assert!(bench::train_step_text(&t).contains("images/s"));
    // Recomputing every block keeps only the blocks' inputs for the backward.
    let light = bench::train_step(&gpu, &shape, BlockPlan { attention: AttentionChoice::Fused, recompute: Recompute::Block, max_images: None }, Precision::F32, 1).unwrap();
    assert!(light.kept_bytes < t.kept_bytes && light.description.contains("fused attention, recompute block"), "{light:?} vs {t:?}");
    // f16 weights: the same step on half the weight memory (biases and norms stay f32), where
    // the adapter has SHADER_F16; a clear error where it has not.
    let half = bench::train_step(&gpu, &shape, BlockPlan::default(), Precision::F16, 1);
    if gpu.features().contains(wgpu::Features::SHADER_F16) {
        let half = half.unwrap();
        assert!(half.weight_bytes < t.weight_bytes * 3 / 4 && half.description.contains("f16 weights"), "{half:?} vs {t:?}");
    } else {
        assert!(half.unwrap_err().to_string().contains("SHADER_F16"));
    }
    // An image smaller than one patch is an error, not a panic.
    let bad = StepShape { vit: VitConfig { img_size: (2, 8), ..shape.vit.clone() }, ..shape };
    assert!(bench::train_step(&gpu, &bad, BlockPlan::default(), Precision::F32, 1).unwrap_err().to_string().contains("smaller than one"));
}
