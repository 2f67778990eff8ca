//! Burn's matmul on the shapes of `examples/matmul_readback.rs`, timed the same way: fresh
//! random inputs each repetition, on the device before the clock starts, then the product
//! launched and read back to the host (`into_data()` alone returns before the GPU has finished;
//! only the values on the host stop the clock), the median of REPS after one untimed run.
//!
//!     cargo run --release --manifest-path benches/burn_matmul/Cargo.toml -- [BATCH] [REPS]
//!
//! The adapter is `Device::wgpu(DeviceKind::Cpu)` (lavapipe on this project's machines) unless
//! `--gpu` is given: `DeviceKind::DefaultDevice`, wgpu's pick. Set the two output tables side by
//! side: docs/benchmarks.md "Against Burn on the same adapter".

use std::time::Instant;

use burn::tensor::{Device, DeviceKind, Distribution, Tensor};

/// One case: A [batch, m, k] · op(B) [batch, k, n]; with `trans_b`, B is stored [batch, n, k]
/// (a weight [out, in], as vpt-wgsl keeps it) and transposed as a view.
fn time_matmul(device: &Device, name: &str, (batch, m, k, n): (usize, usize, usize, usize), trans_b: bool, reps: usize) {
    let uniform = Distribution::Uniform(-1.0, 1.0);
    let b_shape = if trans_b { [batch, n, k] } else { [batch, k, n] };
    let mut seconds = Vec::new();
    for rep in 0..=reps {
        let a = Tensor::<3>::random([batch, m, k], uniform, device);
        let b = Tensor::<3>::random(b_shape, uniform, device);
        // Reading one value of each makes sure both exist on the device before the clock starts.
        for t in [&a, &b] {
            t.clone().slice([0..1, 0..1, 0..1]).into_data().try_to_vec::<f32>().expect("f32 values");
        }
        let start = Instant::now();
        let b = if trans_b { b.swap_dims(1, 2) } else { b };
        let c: Vec<f32> = a.matmul(b).into_data().try_to_vec().expect("f32 values");
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(c.len(), batch * m * n);
        if rep > 0 {
            seconds.push(elapsed); // rep 0 compiles and autotunes the kernel
        }
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let gflops = 2.0 * (batch * m * n * k) as f64 / median / 1e9;
    let t = if trans_b { "^T" } else { "" };
    println!("{name:<8} [{batch},{m},{k}] x {b_shape:?}{t}   median {:9.2} ms   min {:9.2} ms   {gflops:6.2} GFLOP/s", median * 1e3, seconds[0] * 1e3);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gpu = args.iter().any(|a| a == "--gpu");
    let numbers: Vec<usize> = args.iter().filter(|a| *a != "--gpu").map(|a| a.parse().expect("BATCH and REPS are numbers")).collect();
    let (images, reps) = (numbers.first().copied().unwrap_or(1), numbers.get(1).copied().unwrap_or(5).max(1));
    let device = Device::wgpu(if gpu { DeviceKind::DefaultDevice } else { DeviceKind::Cpu });
    println!("Burn 0.22.1 on {}; fresh inputs each repetition, result read back, host clock, {reps} repetitions", if gpu { "wgpu's default device" } else { "wgpu's CPU adapter" });
    let (t, d, mlp, heads, hd) = (247, 768, 3072, 12, 64); // 1 CLS + 196 patches + 50 prompts
    let rows = images * t;
    for (name, (n_out, n_in)) in [("qkv", (3 * d, d)), ("proj", (d, d)), ("fc1", (mlp, d)), ("fc2", (d, mlp))] {
        // X · Wᵀ, then dX = dY · W
        time_matmul(&device, name, (1, rows, n_in, n_out), true, reps);
        time_matmul(&device, &format!("{name} dX"), (1, rows, n_out, n_in), false, reps);
    }
    time_matmul(&device, "q.kT", (images * heads, t, hd, t), true, reps);
    time_matmul(&device, "attn.v", (images * heads, t, t, hd), false, reps);
}
