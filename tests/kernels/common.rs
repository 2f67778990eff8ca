//! Shared test helpers: the GPUs to test on, random data, tolerances, finite differences.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;
use vpt_wgsl::{Gpu, Tensor};

/// Every adapter the kernel tests run on. With `WGPU_BACKEND` set, just that backend; otherwise
/// each of Vulkan, GL, Metal and DX12 that has an adapter, so one `cargo test` proves the kernels
/// on every API this machine has (lavapipe and llvmpipe's GL here).
///
/// No adapter at all is a test *failure* that says how to install one, never a silent skip.
pub fn gpus() -> &'static [Gpu] {
    static GPUS: OnceLock<Vec<Gpu>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let gpus = find_gpus(std::env::var("WGPU_BACKEND").ok().as_deref()).unwrap_or_else(|e| panic!("{e}"));
        for g in &gpus {
            eprintln!("kernel tests on: {}", g.describe());
        }
        gpus
    })
}

/// [`gpus`], plus each adapter that has subgroups opened a second time without them: the row
/// kernels (softmax, LayerNorm, cross-entropy) reduce with subgroup operations where a device has
/// them and through workgroup memory otherwise, and their tests run both builds on this machine
/// (lavapipe's Vulkan has `SUBGROUP`, llvmpipe's GL has not).
pub fn row_gpus() -> &'static [Gpu] {
    static GPUS: OnceLock<Vec<Gpu>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let mut all = gpus().to_vec();
        for gpu in gpus().iter().filter(|g| g.has_subgroups()) {
            let plain = gpu.reopen_without(wgpu::Features::SUBGROUP).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("row kernel tests also on: {}", plain.describe());
            all.push(plain);
        }
        all
    })
}

/// The adapters to test on for a `WGPU_BACKEND` value (None: try each backend separately).
pub fn find_gpus(backend: Option<&str>) -> Result<Vec<Gpu>, vpt_wgsl::Error> {
    let candidates = match backend {
        Some(list) => vec![wgpu::Backends::from_comma_list(list)],
        None => vec![wgpu::Backends::VULKAN, wgpu::Backends::GL, wgpu::Backends::METAL, wgpu::Backends::DX12],
    };
    let gpus: Vec<Gpu> = candidates.iter().filter_map(|&b| Gpu::with_backends(b).ok()).collect();
    if gpus.is_empty() {
        let tried: Vec<String> = candidates.iter().map(|b| format!("{b:?}")).collect();
        return Err(vpt_wgsl::Error::NoAdapter { backends: tried.join(", ") });
    }
    Ok(gpus)
}

/// The test harness must fail, with the fix in the message, where a backend has no adapter.
#[test]
fn missing_backend_fails_with_install_hint() {
    let absent = if cfg!(target_os = "windows") { "metal" } else { "dx12" };
    let err = find_gpus(Some(absent)).err().expect("a backend this OS lacks has no adapter").to_string();
    assert!(err.contains("no GPU adapter found"), "{err}");
    if cfg!(target_os = "linux") {
        assert!(err.contains("apt-get install -y mesa-vulkan-drivers"), "{err}");
    }
}

/// Proptest settings: `cases` random cases per property unless `PROPTEST_CASES` says otherwise.
/// Kept small because lavapipe runs every case on the CPU.
pub fn cases(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases);
    Config { cases, max_shrink_iters: 64, failure_persistence: None, ..Config::default() }
}

/// Values in [-scale, scale), deterministic for a seed.
pub fn random_vec(seed: u64, n: usize, scale: f64) -> Vec<f64> {
    // The crate's SplitMix64 stream (the values these tests were written with).
    let mut state = seed.wrapping_add(vpt_wgsl::rng::GOLDEN);
    (0..n).map(|_| (vpt_wgsl::rng::next_unit(&mut state) * 2.0 - 1.0) * scale).collect()
}

/// f64 values rounded to the f32 the GPU sees, so references compute on exactly the same inputs.
pub fn as_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}
pub fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Random f32-representable data: returns (f64 copy for the reference, tensor for the GPU).
pub fn random_tensor(gpu: &Gpu, shape: &[usize], seed: u64, scale: f64) -> (Vec<f64>, Tensor) {
    let n = shape.iter().product();
    let host = as_f32(&random_vec(seed, n, scale));
    let tensor = Tensor::from_slice(gpu, shape, &host).unwrap();
    (as_f64(&host), tensor)
}

/// Assert a GPU output matches the reference within `tol`, measured as `vpt check` measures it
/// (`Metric::Scaled`: max |got − want| / max(1, max |want|)): relative error for outputs larger
/// than 1, absolute error for outputs of order 1 or smaller. (A pure relative error would judge
/// f32 cancellation in tiny outputs, e.g. GELU(−5) ≈ −1e-6, which PyTorch's f32 kernels share.)
/// NaN or infinity anywhere fails.
pub fn assert_close(what: &str, gpu: &Gpu, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let err = vpt_wgsl::check::worst_error(got, want, vpt_wgsl::check::Metric::Scaled);
    assert!(err <= tol, "{what} on {}: scaled error {err:.3e} > tolerance {tol:.1e}", gpu.describe());
}

/// Directional central difference of L(x) = ⟨f(x), w⟩ along v: (L(x+εv) − L(x−εv)) / 2ε.
/// f is an f64 CPU reference, so with ε = 1e-4 the truncation error (~ε²) is far below f32 noise.
pub fn directional_fd(f: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], v: &[f64], w: &[f64]) -> f64 {
    let eps = 1e-4;
    let shifted = |s: f64| -> f64 {
        let xs: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + s * b).collect();
        f(&xs).iter().zip(w).map(|(a, b)| a * b).sum()
    };
    (shifted(eps) - shifted(-eps)) / (2.0 * eps)
}

/// Default tolerance of the finite-difference checks. The GPU gradient is f32: each element
/// carries up to ~1e-5 relative error where its formula cancels (1 − tanh² near saturation,
/// x − mean in layernorm), and the dot product with v adds summation error. 1e-4 of Σ|g_i v_i|
/// passes every correct kernel and still catches any wrong term (those show up at 1e-2 or more).
pub const GRAD_TOL: f64 = 1e-4;

/// Check a GPU gradient g = ∂⟨f(x), w⟩/∂x against finite differences along v.
/// Tolerance is relative to Σ|g_i v_i|, the size the dot product could have had before
/// cancellation, so a gradient that is nearly orthogonal to v is not judged on noise.
pub fn assert_grad_matches_fd(what: &str, gpu: &Gpu, grad: &[f32], fd: f64, v: &[f64], tol: f64) {
    let analytic: f64 = grad.iter().zip(v).map(|(&g, &d)| g as f64 * d).sum();
    let scale: f64 = grad.iter().zip(v).map(|(&g, &d)| (g as f64 * d).abs()).sum::<f64>().max(1e-6);
    let err = (analytic - fd).abs() / scale;
    assert!(err <= tol, "{what} on {}: ⟨grad, v⟩ = {analytic:.8e} but finite differences give {fd:.8e} (relative {err:.2e} > {tol:.1e})", gpu.describe());
}

/// Shapes strategy helper: a dimension from 1 to `max`, biased towards the awkward small sizes.
pub fn dim(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(1usize), 1 => 2usize..=7, 3 => 1usize..=max]
}
