//! Matmul timed the way a framework user sees it, to compare with another library on the same
//! adapter: fresh random inputs each repetition (uploaded before the clock starts), then the
//! product launched and its result read back to the host, all on the host clock.
//!
//!     cargo run --release --example matmul_readback -- [BATCH] [REPS]     (default 1 5)
//!
//! The shapes are those of `vpt bench --preset vit-b`: the four linear layers of a ViT-B/16 block
//! over BATCH·247 token rows, forward (weight stored [out, in], as the engine keeps it) and their
//! input gradient dX = dY·W (W read [K, N]) and, as `dXᵀ`, the same from a transposed copy of W
//! (read [N, K], as `DxLayout::Transposed` does), and attention's two products per image and head.
//! Unlike `vpt bench` (GPU timestamps around the kernel alone), the time includes the launch, the
//! wait and the copy back, so it is the figure to set beside e.g. Burn's
//! `tensor.matmul(other).into_data()` read to the host, which `benches/burn_matmul` times on the
//! same shapes. The engine's kernel choice is `vpt tune`'s where this adapter has a tune cache,
//! as for every `vpt` command, and the fixed rule otherwise.

use std::time::Instant;

use vpt_wgsl::kernels::matmul::{matmul_forward, MatmulOptions};
use vpt_wgsl::{Gpu, Result, Tensor};

/// One case: A [batch, m, k] · op(B) [batch, k, n]; with `trans_b`, B is stored [batch, n, k].
fn time_matmul(gpu: &Gpu, name: &str, (batch, m, k, n): (usize, usize, usize, usize), trans_b: bool, reps: usize) -> Result<()> {
    let b_shape = if trans_b { [batch, n, k] } else { [batch, k, n] };
    let opts = MatmulOptions { trans_a: false, trans_b };
    let mut seconds = Vec::new();
    let mut seed = 1u64;
    for rep in 0..=reps {
        let a = random(gpu, &[batch, m, k], &mut seed)?;
        let b = random(gpu, &b_shape, &mut seed)?;
        a.to_vec()?; // the uploads have landed before the clock starts
        let start = Instant::now();
        let c = matmul_forward(&a, &b, None, opts)?.to_vec()?;
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(c.len(), batch * m * n);
        if rep > 0 {
            seconds.push(elapsed); // rep 0 compiles the pipeline
        }
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let gflops = 2.0 * (batch * m * n * k) as f64 / median / 1e9;
    println!("{name:<8} [{batch},{m},{k}] x {b_shape:?}{}   median {:9.2} ms   min {:9.2} ms   {gflops:6.2} GFLOP/s", if trans_b { "^T" } else { "" }, median * 1e3, seconds[0] * 1e3);
    Ok(())
}

/// Uniform values in [-1, 1) from a small xorshift generator.
fn random(gpu: &Gpu, shape: &[usize], seed: &mut u64) -> Result<Tensor> {
    let values: Vec<f32> = (0..shape.iter().product())
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_slice(gpu, shape, &values)
}

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("BATCH and REPS are numbers")).collect();
    let (images, reps) = (args.first().copied().unwrap_or(1), args.get(1).copied().unwrap_or(5).max(1));
    let gpu = Gpu::new()?;
    // The kernel choices `vpt tune` measured on this adapter, as every vpt command uses them.
    let tuned = gpu.load_tune_cache()?;
    println!("adapter: {}; fresh inputs each repetition, result read back, host clock, {reps} repetitions", gpu.describe());
    println!("kernel choice: {}", tuned.map_or("the fixed rule (no tune cache)".to_string(), |p| format!("vpt tune's, from {}", p.display())));
    let (t, d, mlp, heads, hd) = (247, 768, 3072, 12, 64); // 1 CLS + 196 patches + 50 prompts
    let rows = images * t;
    let (nt, nn) = (true, false);
    for (name, (n_out, n_in)) in [("qkv", (3 * d, d)), ("proj", (d, d)), ("fc1", (mlp, d)), ("fc2", (d, mlp))] {
        // X · Wᵀ; dX = dY · W; the same dX from a transposed copy of W, dY · (Wᵀ)ᵀ (`DxLayout`)
        time_matmul(&gpu, name, (1, rows, n_in, n_out), nt, reps)?;
        time_matmul(&gpu, &format!("{name} dX"), (1, rows, n_out, n_in), nn, reps)?;
        time_matmul(&gpu, &format!("{name} dXᵀ"), (1, rows, n_out, n_in), nt, reps)?;
    }
    time_matmul(&gpu, "q.kT", (images * heads, t, hd, t), nt, reps)?;
    time_matmul(&gpu, "attn.v", (images * heads, t, t, hd), nn, reps)?;
    Ok(())
}
