//! What the engine holds stays bounded: uploads reuse pooled buffers without breaking the order of
//! commands, and the pool gives back what a training step no longer asks for.

use vpt_wgsl::kernels::elementwise::scale_forward;
use vpt_wgsl::{Gpu, Tensor};

/// A device of this test's own: byte counts must not include other tests' tensors.
fn own_gpu() -> Gpu {
    Gpu::new().unwrap_or_else(|e| panic!("{e}"))
}

/// An upload that takes a buffer freed while a kernel that reads it is still pending must not
/// change what that kernel reads: the new contents are written after it, in encoder order.
#[test]
fn an_upload_into_a_pooled_buffer_runs_after_the_kernels_before_it() {
    let gpu = own_gpu();
    let n = 1000;
    let ones: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let x = Tensor::from_slice(&gpu, &[n], &ones).unwrap();
    let y = scale_forward(&x, 2.0).unwrap(); // recorded, not yet run
    drop(x); // its buffer goes to the pool while y's kernel still has to read it
    let created = gpu.buffers_created();
    let z = Tensor::from_slice(&gpu, &[n], &vec![100.0; n]).unwrap();
    assert_eq!(gpu.buffers_created(), created, "the upload must take the pooled buffer");
    let want: Vec<f32> = ones.iter().map(|v| 2.0 * v).collect();
    assert_eq!(y.to_vec().unwrap(), want, "the pending kernel read the new upload");
    assert_eq!(z.to_vec().unwrap(), vec![100.0; n]);
}

/// A size nothing asks for again is given back once it has stayed idle through a whole trim
/// period; a size that is taken again in time stays.
#[test]
fn trim_gives_back_what_a_whole_step_left_idle() {
    let gpu = own_gpu();
    let before = gpu.pooled_bytes();
    drop(Tensor::zeros(&gpu, &[1234]).unwrap());
    drop(Tensor::zeros(&gpu, &[77]).unwrap());
    let both = gpu.pooled_bytes();
    assert_eq!(both, before + 4 * (1234 + 77));
    gpu.trim_pool(); // freed in the period that just ended: kept
    assert_eq!(gpu.pooled_bytes(), both);
    drop(Tensor::zeros(&gpu, &[77]).unwrap()); // taken and freed again: a size still in use
    gpu.trim_pool(); // the 1234 stayed idle a whole period: given back
    assert_eq!(gpu.pooled_bytes(), before + 4 * 77);
    gpu.trim_pool();
    assert_eq!(gpu.pooled_bytes(), before);
    gpu.wait_for_all().unwrap();
}

/// What the engine lets go of is freed soon, however far the host runs ahead: a long chain of
/// launches whose tensors are dropped (and evicted from the pool, here 16 MiB each, 100 of each
/// of two sizes) leaves the driver holding at most what `MAX_IN_FLIGHT` submissions and the
/// pending one may still use, each closed after `MAX_RELEASED_BEFORE_SUBMIT` bytes let go of.
/// Without that bound the 100 launches sit in one pending submission, and the driver holds some
/// 2.7 GiB it cannot free (measured on lavapipe). And never are more than `MAX_IN_FLIGHT`
/// submissions left queued and unfinished: that half can fail only on a GPU with a real queue,
/// since lavapipe's submit itself waits for the submission before (`gpu/in_flight.rs`).
#[test]
fn what_the_engine_lets_go_of_is_freed_however_far_the_host_runs_ahead() {
    use vpt_wgsl::gpu::{MAX_IN_FLIGHT, MAX_RELEASED_BEFORE_SUBMIT};
    let gpu = own_gpu();
    let Some(_) = gpu.driver_buffer_bytes() else {
        panic!("{} keeps no count of its buffer memory (wgpu counts on Vulkan and DX12); run this test with WGPU_BACKEND unset or set to vulkan", gpu.describe());
    };
    let chunk = 4 << 20; // f32 values: 16 MiB
    let mut most_held_for_nothing = 0;
    for round in 0..100 {
        // A size of its own each round, so the pool cannot hand the buffer back out.
        let x = Tensor::zeros(&gpu, &[chunk + 1024 * round]).unwrap();
        let y = scale_forward(&x, 2.0).unwrap();
        drop((x, y));
        let driver = gpu.driver_buffer_bytes().unwrap();
        most_held_for_nothing = most_held_for_nothing.max(driver.saturating_sub(gpu.held_bytes()));
    }
    let largest = 4 * (chunk as u64 + 1024 * 100);
    let bound = (MAX_IN_FLIGHT as u64 + 1) * (MAX_RELEASED_BEFORE_SUBMIT + 2 * largest) + (16 << 20);
    assert!(most_held_for_nothing <= bound, "the driver held {} MiB of buffers the engine had let go of (bound {} MiB) on {}", most_held_for_nothing >> 20, bound >> 20, gpu.describe());
    assert!(gpu.most_submissions_in_flight() <= MAX_IN_FLIGHT, "{} submissions were left unfinished (bound {MAX_IN_FLIGHT})", gpu.most_submissions_in_flight());
    // Waiting changes when work runs, never what it computes.
    let x = Tensor::from_slice(&gpu, &[3], &[1.0, -2.0, 0.5]).unwrap();
    assert_eq!(scale_forward(&x, 2.0).unwrap().to_vec().unwrap(), vec![2.0, -4.0, 1.0]);
}

/// The same for a matmul's A texels (`Gpu::activation_texels`), made for one launch where B is
/// read from a weight's texels and let go of after it: they count toward the bounded queue's next
/// submit as buffers do. Without that, a ViT-B/16 step at batch 64 held 8.5 GiB resident for 5.1
/// GiB of tensors (lavapipe, 2026-12-07): A is up to 150 MB there, and nothing else closed the
/// submission.
#[test]
fn activation_texels_let_go_of_are_freed_however_far_the_host_runs_ahead() {
    use vpt_wgsl::gpu::{MAX_IN_FLIGHT, MAX_RELEASED_BEFORE_SUBMIT};
    use vpt_wgsl::kernels::matmul::{matmul_forward, MatmulOptions};
    let gpu = own_gpu();
    let (k, n, rows) = (64, 8, 1 << 16); // A [65536, 64]: 16 MiB of texels a launch
    let weight = Tensor::from_slice(&gpu, &[n, k], &vec![0.5; n * k]).unwrap().with_texels().unwrap();
    let a = Tensor::zeros(&gpu, &[rows, k]).unwrap();
    gpu.wait_for_all().unwrap();
    let Some(before) = gpu.driver_texture_bytes() else {
        panic!("{} keeps no count of its texture memory (wgpu counts on Vulkan and DX12); run this test with WGPU_BACKEND unset or set to vulkan", gpu.describe());
    };
    let mut most_held_for_nothing = 0;
    for _ in 0..40 {
        let c = matmul_forward(&a, &weight, None, MatmulOptions { trans_a: false, trans_b: true }).unwrap();
        drop(c);
        most_held_for_nothing = most_held_for_nothing.max(gpu.driver_texture_bytes().unwrap().saturating_sub(before));
    }
    let a_texels = 4 * (rows * k) as u64;
    let bound = (MAX_IN_FLIGHT as u64 + 1) * (MAX_RELEASED_BEFORE_SUBMIT + a_texels) + a_texels;
    assert!(most_held_for_nothing <= bound, "the driver held {} MiB of A texels let go of (bound {} MiB) on {}", most_held_for_nothing >> 20, bound >> 20, gpu.describe());
}

/// With the kept activations in f16 (`--precision f16`, `Vit::keep`), what a training forward
/// leaves for the backward shrinks by exactly half of the MLP pre-activations [B, T', hidden] and
/// the fused attention's q, o [B, H, T', hd] and k, v [B, H, T, hd] of every block, and the loss
/// is the same bits (the forward computes in f32 either way). T' is the rows read after a block
/// (`RowsRead`), which alone ask the attention and run past it: T − P under VPT-deep where the
/// next block replaces the prompts, CLS alone in the last block.
#[test]
fn f16_kept_activations_halve_what_the_forward_keeps_and_leave_the_loss_alone() {
    use vpt_wgsl::bench::{StepSetup, StepShape};
    use vpt_wgsl::graph::KeepAs;
    use vpt_wgsl::model::plan::BlockPlan;
    use vpt_wgsl::model::vit::Precision;
    use vpt_wgsl::model::vpt::VptForward;

    let gpu = own_gpu();
    let shape = StepShape::tiny();
    let mut setup = StepSetup::new(&gpu, &shape, BlockPlan::default(), Precision::F32, 1).unwrap();
    let mut kept_and_loss = |keep: KeepAs| {
        setup.vit.keep = keep;
        gpu.flush().unwrap();
        let before = gpu.live_bytes();
        let forward = VptForward::new(&gpu, &setup.vit, &setup.task, &setup.images, &setup.labels, None).unwrap();
        let loss = forward.loss().to_scalar().unwrap();
        (gpu.live_bytes() - before, loss)
    };
    let (kept32, loss32) = kept_and_loss(KeepAs::F32);
    let (kept16, loss16) = kept_and_loss(KeepAs::F16);
    assert_eq!(loss16.to_bits(), loss32.to_bits(), "keeping activations in f16 changed the forward");
    let cfg = &shape.vit;
    let (b, t, p) = (shape.batch as u64, shape.tokens() as u64, shape.prompts as u64);
    let f16_bytes = |elements: u64| (elements * 2).next_multiple_of(4);
    let halved: u64 = (0..cfg.depth)
        .map(|i| {
            let rows = if i + 1 == cfg.depth { 1 } else { t - p }; // the task pools CLS
            let pre = b * rows * cfg.mlp_hidden as u64;
            let query_part = b * rows * cfg.embed_dim as u64; // q or o, [B, H, T', hd]: the rows read ask
            let key_part = b * t * cfg.embed_dim as u64; // k or v, [B, H, T, hd]: every row answers
            let f32_bytes = 4 * (pre + 2 * query_part + 2 * key_part);
            f32_bytes - f16_bytes(pre) - 2 * f16_bytes(query_part) - 2 * f16_bytes(key_part)
        })
        .sum();
    assert_eq!(kept32 - kept16, halved, "kept {kept32} B with f32, {kept16} B with f16");
}

/// wgpu's allocator shares small blocks between buffers (`gpu::MEMORY_HINTS`): a block is given
/// back only when every buffer in it is gone, so a tensor freed beside one still alive holds at
/// most a block's worth, not the 64–256 MiB of wgpu's default blocks, which left a ViT-B batch-64
/// step with `--recompute block` 620 MiB more resident on lavapipe (docs/benchmarks.md).
#[test]
fn buffers_share_only_small_driver_blocks() {
    use vpt_wgsl::gpu::LARGEST_SHARED_BLOCK_BYTES;
    let gpu = own_gpu();
    // 1 MiB each, 80 MiB in all: more than one block's worth, and each block after the first is
    // larger (wgpu's default doubles 64 MiB to 128 on lavapipe, 128 to 256 on a GPU).
    let kept: Vec<Tensor> = (0..80).map(|i| Tensor::zeros(&gpu, &[(1 << 18) + 256 * i]).unwrap()).collect();
    let doubled = scale_forward(&kept[0], 2.0).unwrap();
    gpu.flush().unwrap();
    let Some(blocks) = gpu.driver_blocks() else {
        panic!("{} keeps no report of its memory blocks (wgpu keeps one on Vulkan and DX12); run this test with WGPU_BACKEND unset or set to vulkan", gpu.describe());
    };
    assert!(blocks.blocks > 1 && blocks.allocated_bytes >= 80 << 20, "{blocks:?}: the 80 tensors of 1 MiB are not in the report");
    assert!(
        blocks.largest_block_bytes <= LARGEST_SHARED_BLOCK_BYTES,
        "wgpu's allocator made a block of {} MiB for tensors of 1 MiB (at most {} MiB wanted): {blocks:?}",
        blocks.largest_block_bytes >> 20,
        LARGEST_SHARED_BLOCK_BYTES >> 20
    );
    assert_eq!(doubled.to_vec().unwrap().len(), kept[0].numel());
}
