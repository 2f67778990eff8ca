//! A frozen weight read from its buffer against the same weight read from its texels
//! (`WeightSource`, `wgsl/lib/matmul_b_texels.wgsl`; with the texels, A's quads come from texels
//! made for the launch too, `Gpu::activation_texels`), interleaved: each repetition times the
//! product both ways, one right after the other, on the same inputs, so that a host whose speed
//! drifts (a shared CPU running lavapipe) slows both alike.
//!
//!     cargo run --release --example texels_ab -- [BATCH] [REPS] [PRECISION]     (default 8 5 f32)
//!
//! The shapes are `vpt bench --preset vit-b`'s linear layers over BATCH·247 token rows: the
//! forward (weight stored [out, in]) and dX = dY·W (W read [K, N]), with the kernel the engine
//! takes. GPU timestamps around the kernel alone; median over REPS after one untimed run of each.
//! The two results are checked to be the same bits.

use vpt_wgsl::kernels::matmul::{matmul_forward, MatmulOptions};
use vpt_wgsl::model::vit::Precision;
use vpt_wgsl::{Error, Gpu, Result, Tensor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| args.get(i).map_or(Ok(default), |a| a.parse().map_err(|_| Error::invalid("texels_ab", format!("{a:?}: BATCH and REPS are numbers"))));
    let (images, reps) = (number(0, 8)?, number(1, 5)?.max(1));
    let precision: Precision = args.get(2).map_or(Ok(Precision::F32), |a| a.parse())?;
    let gpu = Gpu::new()?;
    println!("adapter: {}; {precision:?} weights, GPU timestamps, {reps} interleaved repetitions", gpu.describe());
    let (t, d, mlp) = (247, 768, 3072); // 1 CLS + 196 patches + 50 prompts
    let rows = images * t;
    let (mut buffer_total, mut texels_total) = (0.0, 0.0);
    for (name, (out, inp)) in [("qkv", (3 * d, d)), ("proj", (d, d)), ("fc1", (mlp, d)), ("fc2", (d, mlp))] {
        let w = values(out * inp, 7);
        let (plain, textured) = weight_twice(&gpu, &[out, inp], &w, precision)?;
        // X [rows, in] · Wᵀ, and dX [rows, in] = dY [rows, out] · W.
        for (case, k, trans_b) in [(name.to_string(), inp, true), (format!("{name} dX"), out, false)] {
            let a = Tensor::from_slice(&gpu, &[rows, k], &values(rows * k, 11))?;
            let opts = MatmulOptions { trans_a: false, trans_b };
            let time = |b: &Tensor| -> Result<(f64, Vec<u32>)> {
                let (c, profile) = gpu.profile(|| matmul_forward(&a, b, None, opts))?;
                Ok((profile.total_ns() as f64 / 1e6, c.to_vec()?.into_iter().map(f32::to_bits).collect()))
            };
            let (_, want) = time(&plain)?; // compiles both pipelines before the clock matters
            let (_, got) = time(&textured)?;
            if got != want {
                return Err(Error::Internal { what: case, msg: "texels and buffer gave other bits".into() });
            }
            let (mut from_buffer, mut from_texels) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                from_buffer.push(time(&plain)?.0);
                from_texels.push(time(&textured)?.0);
            }
            let (b, x) = (median(&mut from_buffer), median(&mut from_texels));
            (buffer_total, texels_total) = (buffer_total + b, texels_total + x);
            let gflops = |ms: f64| 2.0 * (rows * out * inp) as f64 / (ms / 1e3) / 1e9;
            println!("{case:<8} buffer {b:8.1} ms ({:5.1} GFLOP/s)   texels {x:8.1} ms ({:5.1} GFLOP/s)   texels/buffer {:.3}", gflops(b), gflops(x), x / b);
        }
    }
    println!("all eight: buffer {buffer_total:.1} ms, texels {texels_total:.1} ms, texels/buffer {:.3}", texels_total / buffer_total);
    Ok(())
}

/// The weight stored as `precision` says, twice: alone, and with texels of the same values.
fn weight_twice(gpu: &Gpu, shape: &[usize], w: &[f32], precision: Precision) -> Result<(Tensor, Tensor)> {
    let store = || Tensor::from_slice_as(gpu, shape, w, precision.weights());
    Ok((store()?, store()?.with_texels()?))
}

/// Uniform values in [-1, 1), the same for the same seed.
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64).map(|i| vpt_wgsl::rng::next_unit(&mut (seed * 1_000_003 + i)) as f32 * 2.0 - 1.0).collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
