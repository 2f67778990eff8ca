//! A frozen weight read from its texels (`Gpu::texels`, `wgsl/lib/matmul_b_texels.wgsl`) gives
//! the bits its buffer gives: every kernel, both layouts of B, f32 and f16 weights, quads that do
//! and do not line up with rows, the bias and both GELU epilogues, a texture of several rows.

use vpt_wgsl::gpu::{TraceOp, TEXELS_PER_ROW};
use vpt_wgsl::kernels::matmul::*;
use vpt_wgsl::{DType, Gpu, Tensor};

use crate::common::*;

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().into_iter().map(f32::to_bits).collect()
}

/// The weight stored as `dtype` from `data`, and the same with texels of it.
fn weight_twice(gpu: &Gpu, shape: &[usize], data: &[f32], dtype: DType) -> (Tensor, Tensor) {
    let store = || Tensor::from_slice_as(gpu, shape, data, dtype).unwrap();
    (store(), store().with_texels().unwrap())
}

/// Launches of the matmul builds that read texels, so far.
fn texel_launches(gpu: &Gpu) -> u64 {
    gpu.dispatch_counts().iter().filter(|(op, _)| op.starts_with("matmul_texels")).map(|(_, n)| n).sum()
}

/// Devices of their own, so that the launches counted and traced are these tests' alone.
fn own_gpus() -> Vec<Gpu> {
    find_gpus(std::env::var("WGPU_BACKEND").ok().as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

/// C = A·op(B) + bias, and both GELU epilogues where `epilogues`, with `kernel`, as bits.
fn products(kernel: MatmulKernel, a: &Tensor, b: &Tensor, bias: &Tensor, pre: &Tensor, trans_b: bool, epilogues: bool) -> Vec<Vec<u32>> {
    let opts = MatmulOptions { trans_a: false, trans_b };
    let mut out = vec![bits(&matmul_forward_with(kernel, a, b, Some(bias), opts).unwrap())];
    if epilogues {
        let gelu = matmul_gelu_forward_with(kernel, a, b, None, opts).unwrap();
        out.extend([bits(&gelu.pre), bits(&gelu.y), bits(&matmul_gelu_grad_with(kernel, a, b, opts, pre).unwrap())]);
    }
    out
}

/// Every kernel (on the first backend found) at K = 32, B stored [N, K] (quads along stored
/// rows: vec4 loads). The kernel the ViT's products take on this device (`sg16x8` where it has
/// subgroups, else `reg16x8`) also at K = 29 (quads that straddle rows: one value at a time),
/// with B stored [K, N], with both GELU epilogues, from a texture of several rows, and from f16
/// texels. The kernels are one text whatever they read (the f32 and f16 texel builds differ only
/// in the texture's declared format; `vpt check` holds every kernel of both against f64), so the
/// other kernels need no more than that: each case compiles two pipelines more on lavapipe,
/// which CI pays for cold.
#[test]
fn every_kernel_reads_a_weights_texels_bit_for_bit() {
    for (i, gpu) in own_gpus().iter().enumerate() {
        let nt = true;
        // Every kernel on the first backend; the next ones (llvmpipe's GL) prove the textures there.
        let every = if i == 0 { MatmulKernel::all_on(gpu) } else { vec![] };
        let mut cases: Vec<(MatmulKernel, usize, usize, bool, DType, bool)> = every.into_iter().map(|kernel| (kernel, 32, 48, nt, DType::F32, false)).collect();
        let focus = if MatmulKernel::Sg16x8.available(gpu) { MatmulKernel::Sg16x8 } else { MatmulKernel::Reg16x8 };
        let rows_apart = 2 * TEXELS_PER_ROW as usize / 24 + 5; // 96 × 175 values: 3 texture rows
        cases.extend([(focus, 29, 45, nt, DType::F32, false), (focus, 29, 45, !nt, DType::F32, false), (focus, 32, 48, !nt, DType::F32, false)]);
        cases.extend([(focus, 32, 48, nt, DType::F32, true), (focus, 96, rows_apart, nt, DType::F32, false)]);
        if gpu.features().contains(wgpu::Features::SHADER_F16) {
            cases.push((focus, 29, 45, !nt, DType::F16, false));
        }
        for (kernel, k, n, trans_b, values, epilogues) in cases {
            let m = 37;
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            let what = format!("{} on {}: {m}×{k}·B {b_shape:?} {values:?} trans_b={trans_b}", kernel.name(), gpu.describe());
            let (_, a) = random_tensor(gpu, &[2, m, k], 81, 1.0);
            let (_, bias) = random_tensor(gpu, &[n], 82, 1.0);
            let (_, pre) = random_tensor(gpu, &[2, m, n], 83, 1.0);
            let (plain, textured) = weight_twice(gpu, &b_shape, &as_f32(&random_vec(84, n * k, 1.0)), values);
            let before = texel_launches(gpu);
            let from_buffer = products(kernel, &a, &plain, &bias, &pre, trans_b, epilogues);
            assert_eq!(texel_launches(gpu), before, "{what}: a weight without texels reads its buffer");
            let from_texels = products(kernel, &a, &textured, &bias, &pre, trans_b, epilogues);
            assert!(from_texels == from_buffer, "{what}: texels and buffer differ");
            assert_eq!(texel_launches(gpu), before + if epilogues { 3 } else { 1 }, "{what}: every launch read the texels");
        }
    }
}

/// A trace holds buffers only: while one records, a weight with texels is read from its buffer,
/// and the replay's kernel is the one the trace names.
#[test]
fn a_trace_records_the_buffer_build() {
    let gpu = &own_gpus()[0];
    let (_, a) = random_tensor(gpu, &[5, 8], 91, 1.0);
    let (_, textured) = weight_twice(gpu, &[12, 8], &as_f32(&random_vec(92, 96, 1.0)), DType::F32);
    let opts = MatmulOptions { trans_a: false, trans_b: true };
    let untraced = bits(&matmul_forward_with(MatmulKernel::Tiled, &a, &textured, None, opts).unwrap());
    gpu.start_trace();
    let traced = bits(&matmul_forward_with(MatmulKernel::Tiled, &a, &textured, None, opts).unwrap());
    let trace = gpu.take_trace().unwrap().unwrap();
    assert_eq!(traced, untraced);
    let kernels: Vec<&str> = trace.ops.iter().filter_map(|op| if let TraceOp::Dispatch { kernel, .. } = op { Some(kernel.as_str()) } else { None }).collect();
    assert_eq!(kernels, ["matmul::matmul_tiled"]);
}

/// What fits one texture is the device's limit on rows, counted in rows of `TEXELS_PER_ROW`
/// texels of 4 values; past it `Gpu::texels` is an error that says to keep the buffer.
#[test]
fn texels_fit_the_devices_texture_rows() {
    let gpu = &gpus()[0];
    let max_rows = gpu.limits().max_texture_dimension_2d as usize;
    let per_row = 4 * TEXELS_PER_ROW as usize;
    assert!(gpu.texels_fit(1) && gpu.texels_fit(per_row * max_rows));
    assert!(!gpu.texels_fit(per_row * max_rows + 1) && !gpu.texels_fit(0));
    let one = Tensor::from_slice(gpu, &[1], &[1.5]).unwrap().with_texels().unwrap();
    assert_eq!(one.texels().unwrap().bytes(), 16 * TEXELS_PER_ROW as u64, "one row of rgba32float texels");
}

/// Where B is read from texels, A's quads are too, from texels made for the launch
/// (`Gpu::activation_texels`): the same bits as A's buffer, for an A of several texture rows (two
/// whole rows and part of a third; the whole rows go straight from A's buffer, the rest through a
/// row's buffer), and of exactly two; and the texels are counted while they live, then freed.
#[test]
fn a_reads_its_own_texels_across_texture_rows() {
    let gpu = &own_gpus()[0];
    let focus = if MatmulKernel::Sg16x8.available(gpu) { MatmulKernel::Sg16x8 } else { MatmulKernel::Reg16x8 };
    let (k, n) = (32, 48);
    let per_row = 4 * TEXELS_PER_ROW as usize;
    let (plain, textured) = weight_twice(gpu, &[n, k], &as_f32(&random_vec(95, n * k, 1.0)), DType::F32);
    let opts = MatmulOptions { trans_a: false, trans_b: true };
    for m in [300, 2 * per_row / (2 * k)] {
        let what = format!("{} on {}: A [2, {m}, {k}] ({} values)", focus.name(), gpu.describe(), 2 * m * k);
        let (_, a) = random_tensor(gpu, &[2, m, k], 96, 1.0);
        // What each product adds to the peak: C and stand-ins, and with B's texels A's too.
        let peak_of = |b: &Tensor| {
            gpu.wait_for_all().unwrap();
            let live = gpu.live_bytes();
            gpu.reset_peak_bytes();
            let c = matmul_forward_with(focus, &a, b, None, opts).unwrap();
            (c, gpu.peak_bytes() - live)
        };
        let (c, plain_peak) = peak_of(&plain);
        let from_buffer = bits(&c);
        drop(c);
        let live = gpu.live_bytes();
        let (c, textured_peak) = peak_of(&textured);
        let a_texel_bytes = (2 * m * k).div_ceil(per_row) as u64 * 16 * TEXELS_PER_ROW as u64;
        assert!(textured_peak >= plain_peak + a_texel_bytes, "{what}: A's texels ({a_texel_bytes} bytes) were made: {textured_peak} bytes at peak, {plain_peak} from A's buffer");
        assert!(bits(&c) == from_buffer, "{what}: A from its texels and from its buffer differ");
        drop(c);
        gpu.wait_for_all().unwrap();
        assert!(gpu.live_bytes() < live + a_texel_bytes, "{what}: A's texels freed after the launch");
    }
}
