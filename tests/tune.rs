//! Kernel choice measured, not guessed: `vpt tune` writes the winners to a per-adapter cache, the
//! engine takes them (and only from the cache: nothing tunes mid-run), `vpt bench` marks them,
//! `vpt info` reports the cache, and a bad cache file is an error naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use vpt_wgsl::gpu::KernelChoices;
use vpt_wgsl::kernels::attention;
use vpt_wgsl::kernels::matmul::{matmul_forward, MatmulKernel, MatmulOptions};
use vpt_wgsl::kernels::softmax::softmax_forward;
use vpt_wgsl::{Gpu, Tensor};

fn cache_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vpt-tune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn vpt(args: &[&str], cache: &PathBuf) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).env("VPT_CACHE_DIR", cache).env_remove("WGPU_ADAPTER_NAME").output().expect("run vpt");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A choice in use replaces the fixed rule for exactly its shape and layout; the row kernels take
/// the workgroup-memory build, and the fused attention its kernels without subgroup shuffles,
/// when those were measured faster.
#[test]
fn the_engine_takes_the_choices_in_use() {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let linear = MatmulOptions { trans_a: false, trans_b: true };
    let (x, w) = (Tensor::zeros(&gpu, &[13, 24]).unwrap(), Tensor::zeros(&gpu, &[20, 24]).unwrap());
    let fixed = MatmulKernel::best_for(&gpu, 13, 20, 24, linear);
    let other = if fixed == MatmulKernel::Tiled { MatmulKernel::Reg4x4 } else { MatmulKernel::Tiled };
    let mut choices = KernelChoices::for_gpu(&gpu, "test");
    choices.choices = BTreeMap::from([
        (MatmulKernel::tune_key(13, 20, 24, linear, vpt_wgsl::DType::F32), other.name().to_string()),
        ("row_reduce".to_string(), "workgroup".to_string()),
        (attention::BUILD_KEY.to_string(), attention::BUILD_PLAIN.to_string()),
    ]);
    gpu.use_choices(choices);
    assert_eq!(MatmulKernel::best_for(&gpu, 13, 20, 24, linear), other);
    assert_eq!(MatmulKernel::best_for(&gpu, 13, 21, 24, linear), fixed, "another shape keeps the fixed rule");
    let before = gpu.dispatch_counts();
    matmul_forward(&x, &w, None, linear).unwrap();
    softmax_forward(&x).unwrap();
    let heads = Tensor::zeros(&gpu, &[1, 1, 5, 4]).unwrap();
    attention::attention_forward(&heads, &heads, &heads, 0.5).unwrap();
    gpu.wait_for_all().unwrap();
    let after = gpu.dispatch_counts();
    let ran = |op: &str| after.get(op).copied().unwrap_or(0) > before.get(op).copied().unwrap_or(0);
    assert!(ran(&format!("matmul::{}", other.entry())), "{after:?}");
    assert!(ran("softmax::softmax_forward") && !ran("softmax_subgroup::softmax_forward"), "{after:?}");
    assert!(ran("attention::attention_forward") && !ran("attention_subgroup::attention_forward_sg"), "{after:?}");
}

/// `vpt tune` → cache file → `vpt info` names it → `vpt bench` marks the winners it wrote.
#[test]
fn tune_writes_the_cache_that_bench_and_info_use() {
    let cache = cache_dir("cli");
    let (ok, stdout, stderr) = vpt(&["tune", "--preset", "small", "--reps", "1", "--filter", "matmul qkv"], &cache);
    assert!(ok, "vpt tune failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("matmul 60x2304x768 nt") && stdout.contains("wrote "), "{stdout}");
    let files: Vec<PathBuf> = std::fs::read_dir(cache.join("tune")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let written = KernelChoices::from_json(&files[0], &text).unwrap();
    let winner = written.choices.get("matmul 60x2304x768 nt").expect("the qkv shape was tuned").clone();
    let layout = written.choices.get("linear dX 2304x768").expect("where qkv's dX reads its weight was tuned");
    assert!(["stored", "transposed"].contains(&layout.as_str()), "{layout}");
    if Gpu::new().unwrap().features().contains(wgpu::Features::SHADER_F16) {
        assert!(written.choices.contains_key("matmul 60x2304x768 nt f16"), "f16 weights are tuned too: {:?}", written.choices);
    }

    let (ok, info, _) = vpt(&["info"], &cache);
    assert!(ok && info.contains(&format!("tune cache: {}", files[0].display())), "{info}");

    let (ok, json, stderr) = vpt(&["bench", "--preset", "small", "--reps", "1", "--filter", "matmul qkv", "--backend", "vulkan", "--json"], &cache);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let chosen: Vec<&str> = report["results"].as_array().unwrap().iter().filter(|r| r["kernel"] == "matmul qkv" && r["chosen"] == true).map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(chosen, [winner.as_str()], "bench marks the tuned kernel");

    // The fused attention's build is a choice where the adapter has subgroups.
    let (ok, stdout, stderr) = vpt(&["tune", "--preset", "small", "--reps", "1", "--filter", "attention fwd fused,attention bwd fused", "--backend", "vulkan"], &cache);
    assert!(ok, "vpt tune failed:\n{stdout}\n{stderr}");
    if Gpu::with_backends(wgpu::Backends::VULKAN).unwrap().has_subgroups() {
        let line = stdout.lines().find(|l| l.starts_with(attention::BUILD_KEY)).unwrap_or_else(|| panic!("no attention choice:\n{stdout}"));
        assert!(line.contains(attention::BUILD_SUBGROUPS) && line.contains(attention::BUILD_PLAIN), "{line}");
    }
    let _ = std::fs::remove_dir_all(&cache);
}

/// A cache that does not parse, or was measured on another adapter: an error naming the file.
#[test]
fn a_bad_cache_is_an_error_naming_the_file() {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let cache = cache_dir("bad");
    // The path this adapter's cache takes, from the CLI's own report.
    let (_, info, _) = vpt(&["info"], &cache);
    let line = info.lines().find(|l| l.starts_with("tune cache: none")).expect("no cache yet");
    let path = PathBuf::from(line.split("would write ").nth(1).unwrap().split(')').next().unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();

    std::fs::write(&path, "{ not json").unwrap();
    let (ok, _, stderr) = vpt(&["info"], &cache);
    assert!(!ok && stderr.contains(&path.display().to_string()) && stderr.contains("vpt tune"), "{stderr}");

    let mut elsewhere = KernelChoices::for_gpu(&gpu, "test");
    elsewhere.adapter = "Another GPU".into();
    std::fs::write(&path, elsewhere.to_json()).unwrap();
    let (ok, _, stderr) = vpt(&["info"], &cache);
    assert!(!ok && stderr.contains("Another GPU"), "{stderr}");

    // Choices no kernel can take (another version's, or edited) are used for nothing, and said.
    let mut unknown = KernelChoices::for_gpu(&gpu, "test");
    unknown.choices = BTreeMap::from([
        ("matmul 60x2304x768 nt".to_string(), "reg64x64".to_string()),
        ("row_reduce".to_string(), "warp".to_string()),
        ("flash_attention".to_string(), "on".to_string()),
        ("matmul 60x768x768 nt".to_string(), MatmulKernel::Tiled.name().to_string()),
        // Every other kind of choice `vpt tune` writes, with a value it may take: no warning.
        ("attention".to_string(), "plain".to_string()),
        ("linear dX 2304x768".to_string(), "transposed".to_string()),
        ("linear source 2304x768 f16".to_string(), "texels".to_string()),
        ("linear source 768x768".to_string(), "textures".to_string()),
    ]);
    std::fs::write(&path, unknown.to_json()).unwrap();
    let (ok, _, stderr) = vpt(&["info"], &cache);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: the tune cache") && l.contains(&path.display().to_string())).collect();
    assert!(ok && warnings.len() == 4, "{stderr}");
    assert!(warnings.iter().any(|w| w.contains("\"textures\", which is not a variant (use buffer or texels)")), "{stderr}");
    assert!(warnings.iter().any(|w| w.contains("\"reg64x64\", which is not a variant")) && warnings.iter().any(|w| w.contains("\"flash_attention\" is not a choice")), "{stderr}");
    let _ = std::fs::remove_dir_all(&cache);
}
