//! The autodiff graph under VPT: gradients reach only prompts and head, nothing is computed or
//! kept for the frozen backbone, and inference records nothing.

use vpt_wgsl::gpu::KernelChoices;
use vpt_wgsl::graph::{Graph, MlpRun};
use vpt_wgsl::kernels::matmul::{DxLayout, WeightSource};
use vpt_wgsl::model::plan::{AttentionChoice, BlockPlan, Recompute};
use vpt_wgsl::model::vit::{LoadOptions, Vit};
use vpt_wgsl::model::vpt::{vpt_logits, Pool, TaskVars, VptTask};
use vpt_wgsl::rng::next_unit;
use vpt_wgsl::{DType, Gpu, Labels, Tensor};

mod common;
use common::{tiny_state_dict, tiny_vit, D, DEPTH, IMG};

/// A device of this test's own: dispatch counts must not include other tests' work.
fn own_gpu() -> Gpu {
    Gpu::new().unwrap_or_else(|e| panic!("{e}"))
}

fn random(state: &mut u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (next_unit(state) as f32 * 2.0 - 1.0) * scale).collect()
}

fn task(gpu: &Gpu, depth_p: usize, prompts: usize, pool: Pool) -> VptTask {
    let mut s = 11u64;
    let classes = 5;
    VptTask {
        prompts: (depth_p > 0).then(|| Tensor::from_slice(gpu, &[depth_p, prompts, D], &random(&mut s, depth_p * prompts * D, 0.1)).unwrap()),
        head_weight: Tensor::from_slice(gpu, &[classes, D], &random(&mut s, classes * D, 0.2)).unwrap(),
        head_bias: Tensor::from_slice(gpu, &[classes], &random(&mut s, classes, 0.2)).unwrap(),
        pool,
        tuned: Default::default(),
    }
}

fn images(gpu: &Gpu, batch: usize) -> Tensor {
    let mut s = 3u64;
    Tensor::from_slice(gpu, &[batch, 3, IMG, IMG], &random(&mut s, batch * 3 * IMG * IMG, 1.0)).unwrap()
}

fn matmuls(gpu: &Gpu) -> u64 {
    // Every matmul kernel: `matmul::…`, and the other builds' (`matmul_subgroup::…`,
    // `matmul_texels::…`).
    gpu.dispatch_counts().iter().filter(|(k, _)| k.starts_with("matmul")).map(|(_, v)| v).sum()
}

/// One training step's backward dispatches only input-gradient matmuls in the backbone, plus the
/// head's dW and dX. A weight gradient of any backbone linear would add 4 per block.
#[test]
fn backward_computes_no_backbone_weight_gradients() {
    let gpu = own_gpu();
    let mut vit = tiny_vit(&gpu);
    // Per block, the backward's matmuls are the dX of qkv, proj, fc2 (with GELU's derivative) and
    // fc1, plus, on the unfused path, attention's four (dP, dV, dQ, dK); the fused attention's
    // backward runs its own kernels and one matmul, dQ. Where a block runs its prompts through
    // qkv apart from the images' rows (`block::block_forward`: VPT-deep, whose every block reads
    // no prompt row after it), qkv's dX is two products, the prompts' and the images', except in
    // block 0, whose image rows no gradient needs.
    for (attention, per_block) in [(AttentionChoice::Unfused, 8), (AttentionChoice::Fused, 5)] {
        vit.plan.attention = attention;
        for (depth_p, pool, expected_matmuls) in [
            (DEPTH, Pool::Cls, per_block * DEPTH as u64 + (DEPTH as u64 - 1) + 2), // VPT-deep
            (1, Pool::Cls, per_block * DEPTH as u64 + 2),                          // VPT-shallow: every block is after the prompts
            (2, Pool::Image, per_block * DEPTH as u64 + 2 + 1),                    // mean pooling adds one matmul (dX of the averager product)
            (0, Pool::Cls, 1),                                                     // linear probe: only the head's dW
        ] {
            let task = task(&gpu, depth_p, 4, pool);
            let g = Graph::new(&gpu);
            let vars = TaskVars::params(&g, &task);
            let logits = vpt_logits(&g, &vit, &task, &vars, &images(&gpu, 2), None).unwrap();
            let loss = g.cross_entropy(&logits, &Labels::new(&gpu, &[1, 3], 5).unwrap()).unwrap();
            let ops = g.tape_ops();
            assert!(!ops.contains(&"patch_embed"), "the frozen patch embedding must record nothing: {ops:?}");
            let before = matmuls(&gpu);
            let grads = g.backward(&loss).unwrap();
            let dispatched = matmuls(&gpu) - before;
            assert_eq!(dispatched, expected_matmuls, "{attention:?} attention, depth_p {depth_p}, pool {pool:?}: matmuls in backward");
            // Gradient buffers exist for the task's tensors only.
            let trained = 2 + usize::from(depth_p > 0);
            assert_eq!(grads.len(), trained, "depth_p {depth_p}: gradient tensors");
            assert!(grads.get(&vars.head_weight).is_some() && grads.get(&vars.head_bias).is_some());
            if let Some(p) = &vars.prompts {
                assert_eq!(grads.get(p).unwrap().shape(), &[depth_p, 4, D]);
            }
        }
    }
}

/// Loss, prompt gradient and head gradient of one step: their f32 bits.
fn step_bits(gpu: &Gpu, vit: &Vit, task: &VptTask) -> Vec<u32> {
    let g = Graph::new(gpu);
    let vars = TaskVars::params(&g, task);
    let logits = vpt_logits(&g, vit, task, &vars, &images(gpu, 3), None).unwrap();
    let loss = g.cross_entropy(&logits, &Labels::new(gpu, &[1, 3, 0], 5).unwrap()).unwrap();
    let grads = g.backward(&loss).unwrap();
    let mut values = loss.value().to_vec().unwrap();
    for v in vars.prompts.iter().chain([&vars.head_weight, &vars.head_bias]) {
        values.extend(grads.get(v).unwrap().to_vec().unwrap());
    }
    values.iter().map(|v| v.to_bits()).collect()
}

/// Recomputing the MLP's fc1 or a whole block in the backward runs the same kernels on the same
/// inputs in the same order: loss and gradients are bit-identical to keeping everything, for
/// both attention paths and for deep, shallow and image-pooled prompts.
#[test]
fn recomputation_is_bit_identical() {
    let gpu = own_gpu();
    let mut vit = tiny_vit(&gpu);
    for attention in [AttentionChoice::Fused, AttentionChoice::Unfused] {
        for (depth_p, pool) in [(DEPTH, Pool::Cls), (1, Pool::Image), (0, Pool::Cls)] {
            let task = task(&gpu, depth_p, 4, pool);
            vit.plan = BlockPlan { attention, recompute: Recompute::None, max_images: None };
            let kept = step_bits(&gpu, &vit, &task);
            for recompute in [Recompute::Mlp, Recompute::Block] {
                vit.plan.recompute = recompute;
                assert!(step_bits(&gpu, &vit, &task) == kept, "{attention:?} attention, {recompute:?} recomputation, depth_p {depth_p}: results differ");
            }
        }
    }
}

/// A batch run through each block a few images at a time (what happens when a block's tensors
/// for the whole batch would not fit one storage binding) gives the same step, to f32 rounding
/// (the matmuls' kernel may change with the number of rows), with either attention and with
/// every block recomputed.
#[test]
fn blocks_run_a_few_images_at_a_time_give_the_same_step() {
    let gpu = own_gpu();
    let mut vit = tiny_vit(&gpu);
    for (depth_p, pool) in [(DEPTH, Pool::Cls), (1, Pool::Image)] {
        let task = task(&gpu, depth_p, 4, pool);
        for (attention, recompute) in [(AttentionChoice::Unfused, Recompute::None), (AttentionChoice::Fused, Recompute::Block)] {
            vit.plan = BlockPlan { attention, recompute, max_images: None };
            let whole: Vec<f32> = step_bits(&gpu, &vit, &task).into_iter().map(f32::from_bits).collect();
            assert_eq!(vit.images_per_run(3, 30, true), 3);
            vit.plan.max_images = Some(2); // 3 images: runs of 2 and 1
            assert_eq!(vit.images_per_run(3, 30, true), 2);
            let runs: Vec<f32> = step_bits(&gpu, &vit, &task).into_iter().map(f32::from_bits).collect();
            let scale = whole.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = whole.iter().zip(&runs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst <= 1e-5 * scale, "{attention:?}, {recompute:?}, depth_p {depth_p}: worst difference {worst:e} (scale {scale:e})");
        }
    }
}

/// The fused and unfused attention give the same step to f32 rounding.
#[test]
fn fused_and_unfused_attention_agree() {
    let gpu = own_gpu();
    let mut vit = tiny_vit(&gpu);
    let task = task(&gpu, DEPTH, 4, Pool::Cls);
    let mut steps = [AttentionChoice::Fused, AttentionChoice::Unfused].map(|attention| {
        vit.plan.attention = attention;
        step_bits(&gpu, &vit, &task).into_iter().map(f32::from_bits).collect::<Vec<_>>()
    });
    let unfused = steps[1].clone();
    let scale = unfused.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let worst = steps[0].iter_mut().zip(&unfused).map(|(a, b)| (*a - b).abs()).fold(0.0, f32::max);
    assert!(worst <= 1e-5 * scale, "fused vs unfused: worst difference {worst:e} (scale {scale:e})");
}

/// Make `value` the tune cache's choice for each of a block's four linear weights (f32), under
/// the key `key` gives.
fn choose_per_weight(gpu: &Gpu, key: fn(usize, usize, DType) -> String, value: &str) {
    let mut choices = KernelChoices::for_gpu(gpu, "test");
    let weights = [(3 * D, D), (D, D), (4 * D, D), (D, 4 * D)];
    choices.choices = weights.iter().map(|&(out, inp)| (key(out, inp, DType::F32), value.to_string())).collect();
    gpu.use_choices(choices);
}

/// The transposed weight copies a training load makes (`LoadOptions::dx_copies`) give the same
/// step to f32 rounding, with the same launches: the backward's dX products only read W from its
/// copy. Where the adapter's choice is the weight as stored, the load makes none; a trained leaf
/// drops its copy, which an optimizer's update would leave behind.
#[test]
fn transposed_weight_copies_give_the_same_step() {
    let gpu = own_gpu();
    let shapes = [(3 * D, D), (D, D), (4 * D, D), (D, 4 * D)];
    let choose = |layout: DxLayout| choose_per_weight(&gpu, DxLayout::tune_key, layout.name());
    let load = |dx_copies: bool| Vit::from_state_dict(&gpu, &tiny_state_dict(), &LoadOptions { dx_copies, ..LoadOptions::default() }).unwrap();
    choose(DxLayout::Stored);
    assert_eq!(load(true).transposed_copy_bytes(), 0, "the choice says stored: no copies");
    let plain = load(false);
    choose(DxLayout::Transposed);
    let copies = load(true);
    assert_eq!(load(false).transposed_copy_bytes(), 0, "an inference load makes none");
    let weights: usize = shapes.iter().map(|(o, i)| o * i).sum();
    assert_eq!(copies.transposed_copy_bytes(), (4 * DEPTH * weights) as u64);

    let task = task(&gpu, DEPTH, 4, Pool::Cls);
    let step = |vit: &Vit| {
        let before = matmuls(&gpu);
        let bits = step_bits(&gpu, vit, &task);
        (bits.into_iter().map(f32::from_bits).collect::<Vec<_>>(), matmuls(&gpu) - before)
    };
    let ((stored, stored_launches), (copied, copied_launches)) = (step(&plain), step(&copies));
    assert_eq!(stored_launches, copied_launches);
    let scale = stored.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let worst = stored.iter().zip(&copied).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst <= 1e-5 * scale, "stored vs transposed copies: worst difference {worst:e} (scale {scale:e})");

    let w = Tensor::zeros(&gpu, &[2, 3]).unwrap().with_transposed(Tensor::zeros(&gpu, &[3, 2]).unwrap()).unwrap();
    assert!(w.transposed().is_some() && Graph::new(&gpu).param(w.clone()).value().transposed().is_none());
    assert!(Tensor::zeros(&gpu, &[2, 3]).unwrap().with_transposed(Tensor::zeros(&gpu, &[2, 3]).unwrap()).is_err(), "not a transpose");
    assert!(w.copy_from(&Tensor::zeros(&gpu, &[2, 3]).unwrap()).is_err(), "a write would leave the copy behind");
}

/// Texels of the frozen linear weights (`LoadOptions::texel_copies`, chosen per weight by
/// `WeightSource`) give the same bits in the same launches, only from the texel builds; a
/// trained leaf drops them, and a write into a weight that has them is refused.
#[test]
fn weight_texels_give_the_same_bits() {
    let gpu = own_gpu();
    let choose = |source: WeightSource| choose_per_weight(&gpu, WeightSource::tune_key, source.name());
    let load = |texel_copies: bool| Vit::from_state_dict(&gpu, &tiny_state_dict(), &LoadOptions { texel_copies, ..LoadOptions::default() }).unwrap();
    choose(WeightSource::Buffer);
    assert_eq!(load(true).texel_bytes(), 0, "the choice says buffer: no texels");
    let plain = load(true);
    choose(WeightSource::Texels);
    assert_eq!(load(false).texel_bytes(), 0, "not asked for: none");
    let textured = load(true);
    assert!(textured.texel_bytes() > 0);
    let task = task(&gpu, DEPTH, 4, Pool::Cls);
    let texel_launches = || gpu.dispatch_counts().iter().filter(|(op, _)| op.starts_with("matmul_texels")).map(|(_, n)| n).sum::<u64>();
    let (before, plain_bits) = (matmuls(&gpu), step_bits(&gpu, &plain, &task));
    let (launches, texels_before) = (matmuls(&gpu) - before, texel_launches());
    assert_eq!(texels_before, 0, "the buffer load reads no texels");
    assert!(step_bits(&gpu, &textured, &task) == plain_bits, "texels and buffers give other bits");
    assert_eq!(matmuls(&gpu) - before - launches, launches, "the same launches");
    assert!(texel_launches() >= (4 * DEPTH) as u64, "every block's linear layers read texels");

    let w = Tensor::zeros(&gpu, &[2, 3]).unwrap().with_texels().unwrap();
    assert!(w.texels().is_some() && Graph::new(&gpu).param(w.clone()).value().texels().is_none());
    assert!(w.copy_from(&Tensor::zeros(&gpu, &[2, 3]).unwrap()).is_err(), "a write would leave the texels behind");
}

/// An inference graph records nothing, so it keeps no activation alive.
#[test]
fn inference_records_nothing_and_frees_activations() {
    let gpu = own_gpu();
    let vit = tiny_vit(&gpu);
    let task = task(&gpu, DEPTH, 4, Pool::Cls);
    let imgs = images(&gpu, 2);
    let live_before = gpu.live_bytes();
    let g = Graph::inference(&gpu);
    let vars = TaskVars::constants(&g, &task);
    let logits = vpt_logits(&g, &vit, &task, &vars, &imgs, None).unwrap();
    assert!(g.tape_ops().is_empty());
    let logits_bytes = (logits.value().numel() * 4) as u64;
    drop(vars);
    assert_eq!(gpu.live_bytes(), live_before + logits_bytes.max(4), "only the logits outlive the forward");
}

/// After backward the tape is consumed: what stays alive is the gradients, not the activations.
#[test]
fn backward_frees_saved_activations() {
    let gpu = own_gpu();
    let vit = tiny_vit(&gpu);
    let task = task(&gpu, DEPTH, 4, Pool::Cls);
    let imgs = images(&gpu, 2);
    let live_before = gpu.live_bytes();
    let g = Graph::new(&gpu);
    let vars = TaskVars::params(&g, &task);
    let logits = vpt_logits(&g, &vit, &task, &vars, &imgs, None).unwrap();
    let loss = g.cross_entropy(&logits, &Labels::new(&gpu, &[0, 4], 5).unwrap()).unwrap();
    let during = gpu.live_bytes();
    let grads = g.backward(&loss).unwrap();
    assert!(g.tape_ops().is_empty());
    drop((logits, loss, vars));
    let grad_bytes: u64 = [DEPTH * 4 * D, 5 * D, 5].iter().map(|&n| (n * 4) as u64).sum();
    assert!(during > live_before + 10 * grad_bytes, "the forward should hold activations ({during} vs {live_before})");
    assert_eq!(gpu.live_bytes(), live_before + grad_bytes, "after backward only the 3 gradients remain");
    drop(grads);
}

/// The fused MLP op (GELU inside fc1's matmul, its derivative inside the matmul back through
/// fc2) computes what linear → gelu → linear computes: the same loss and the same gradient for
/// the input and, when they train, for every weight and bias, with 2 fewer launches (one in the
/// forward, one in the backward).
#[test]
fn fused_mlp_matches_linear_gelu_linear() {
    let gpu = own_gpu();
    let (batch, tokens, width, hidden) = (2, 7, 12, 48);
    let mut s = 5u64;
    let mut tensor = |shape: &[usize], scale: f32| Tensor::from_slice(&gpu, shape, &random(&mut s, shape.iter().product(), scale)).unwrap();
    let x = tensor(&[batch, tokens, width], 1.0);
    let (w1, b1) = (tensor(&[hidden, width], 0.5), tensor(&[hidden], 0.5));
    let (w2, b2) = (tensor(&[width, hidden], 0.3), tensor(&[width], 0.3));
    let labels = Labels::new(&gpu, &(0..batch * tokens).map(|i| (i % width) as u32).collect::<Vec<_>>(), width).unwrap();

    for weights_train in [false, true] {
        // (loss, gradients [x, w1, b1, w2, b2] where they exist, launches)
        let run = |fused: bool| {
            let g = Graph::new(&gpu);
            let leaf = |t: &Tensor| if weights_train { g.param(t.clone()) } else { g.constant(t.clone()) };
            let xv = g.param(x.clone());
            let (w1, b1, w2, b2) = (leaf(&w1), leaf(&b1), leaf(&w2), leaf(&b2));
            let before = gpu.dispatch_count();
            let y = if fused {
                g.mlp(&xv, (&w1, &b1), (&w2, &b2), MlpRun::default()).unwrap()
            } else {
                let h = g.linear(&xv, &w1, Some(&b1)).unwrap();
                let h = g.gelu(&h).unwrap();
                g.linear(&h, &w2, Some(&b2)).unwrap()
            };
            let logits = g.reshape(&y, &[batch * tokens, width]).unwrap();
            let loss = g.cross_entropy(&logits, &labels).unwrap();
            let grads = g.backward(&loss).unwrap();
            let launches = gpu.dispatch_count() - before;
            let got: Vec<Vec<f32>> = [&xv, &w1, &b1, &w2, &b2].iter().filter_map(|v| grads.get(v)).map(|t| t.to_vec().unwrap()).collect();
            (loss.value().to_vec().unwrap()[0], got, launches)
        };
        let (fused_loss, fused_grads, fused_launches) = run(true);
        let (loss, grads, launches) = run(false);
        assert!((fused_loss - loss).abs() <= 1e-6 * loss.abs().max(1.0), "weights train: {weights_train}: loss {fused_loss} vs {loss}");
        assert_eq!(fused_grads.len(), if weights_train { 5 } else { 1 }, "weights train: {weights_train}");
        assert_eq!(fused_grads.len(), grads.len());
        for (i, (f, u)) in fused_grads.iter().zip(&grads).enumerate() {
            let scale = u.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = f.iter().zip(u).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= 1e-5 * scale, "weights train: {weights_train}: gradient {i} differs by {worst} (scale {scale})");
        }
        assert_eq!(fused_launches + 2, launches, "weights train: {weights_train}: launches");
    }
}

/// `Graph::add_layernorm` against `add` then `layernorm`: the same gradients for x, r, w and b
/// whether the loss reaches both s and y (the fused backward kernel), y only (plain LayerNorm
/// backward) or s only (ds itself; w and b get none).
#[test]
fn add_layernorm_op_matches_add_then_layernorm() {
    let gpu = own_gpu();
    let (shape, d, n) = ([2, 3, 8], 8, 48);
    let mut state = 5u64;
    let [x, r, w, b, mask] = [(n, 1.0), (n, 1.0), (d, 1.0), (d, 0.5), (n, 1.0)].map(|(len, scale)| random(&mut state, len, scale));
    let labels = Labels::new(&gpu, &[1, 5], 24).unwrap();
    for (use_s, use_y) in [(true, true), (false, true), (true, false)] {
        let grads_of = |fused: bool| -> Vec<Option<Vec<f32>>> {
            let g = Graph::new(&gpu);
            let up = |v: &[f32], shape: &[usize]| Tensor::from_slice(&gpu, shape, v).unwrap();
            let (xv, rv, wv, bv) = (g.param(up(&x, &shape)), g.param(up(&r, &shape)), g.param(up(&w, &[d])), g.param(up(&b, &[d])));
            let (s, y) = if fused {
                g.add_layernorm(&xv, &rv, &wv, &bv, 1e-6).unwrap()
            } else {
                let s = g.add(&xv, &rv).unwrap();
                let y = g.layernorm(&s, &wv, &bv, 1e-6).unwrap();
                (s, y)
            };
            // A mask on s, so that its gradient differs from y's.
            let masked = || g.mul(&s, &g.constant(up(&mask, &shape))).unwrap();
            let z = match (use_s, use_y) {
                (true, true) => g.add(&masked(), &y).unwrap(),
                (false, true) => y,
                _ => masked(),
            };
            let loss = g.cross_entropy(&g.reshape(&z, &[2, 24]).unwrap(), &labels).unwrap();
            let grads = g.backward(&loss).unwrap();
            [&xv, &rv, &wv, &bv].iter().map(|v| grads.get(v).map(|t| t.to_vec().unwrap())).collect()
        };
        let (fused, unfused) = (grads_of(true), grads_of(false));
        for (name, (got, want)) in ["x", "r", "w", "b"].iter().zip(fused.iter().zip(&unfused)) {
            let case = format!("d{name} with the loss on s: {use_s}, on y: {use_y}");
            match (got, want) {
                (Some(got), Some(want)) => {
                    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                    let err = got.iter().zip(want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
                    assert!(err <= 1e-5, "{case}: fused and unfused differ by {err:.2e} of the gradient's scale");
                }
                (None, None) => assert!(!use_y && (*name == "w" || *name == "b"), "{case}: no gradient"),
                _ => panic!("{case}: fused {:?}, unfused {:?}", got.is_some(), want.is_some()),
            }
        }
    }
}

/// The loss must be a single value that depends on something trainable.
#[test]
fn backward_rejects_a_loss_without_trainable_inputs() {
    let gpu = own_gpu();
    let g = Graph::new(&gpu);
    let x = g.constant(Tensor::full(&gpu, &[1], 2.0).unwrap());
    let y = g.scale(&x, 3.0).unwrap();
    let msg = g.backward(&y).err().unwrap().to_string();
    assert!(msg.contains("does not depend on any trainable"), "{msg}");
}

/// Checkpoint problems are errors naming the tensor and the shapes, never panics.
#[test]
fn bad_checkpoints_are_clear_errors() {
    let gpu = own_gpu();
    let dir = std::env::temp_dir().join(format!("vpt-bad-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let write = |name: &str, tensors: &[(&str, &[usize])], meta: &[(&str, &str)]| {
        let data: Vec<Vec<f32>> = tensors.iter().map(|(_, s)| vec![0.5; s.iter().product()]).collect();
        let list: Vec<(&str, &[usize], &[f32])> = tensors.iter().zip(&data).map(|((n, s), d)| (*n, *s, &d[..])).collect();
        let meta = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vpt_wgsl::io::write_f32_tensors(path(name), &list, meta).unwrap();
        path(name)
    };
    let load = |p: &str| Vit::load(&gpu, p, &LoadOptions::default()).err().expect("should fail").to_string();

    // Not a ViT at all.
    let msg = load(&write("resnet.safetensors", &[("conv1.weight", &[8, 3, 7, 7])], &[]));
    assert!(msg.contains("missing tensor \"cls_token\"") && msg.contains("VisionTransformer"), "{msg}");
    // A ViT with one tensor of the wrong shape.
    let good = [
        ("cls_token", &[1, 1, 8][..]),
        ("pos_embed", &[1, 5, 8]),
        ("patch_embed.proj.weight", &[8, 3, 4, 4]),
        ("patch_embed.proj.bias", &[8]),
        ("blocks.0.norm1.weight", &[8]),
        ("blocks.0.norm1.bias", &[8]),
        ("blocks.0.attn.qkv.weight", &[24, 8]),
        ("blocks.0.attn.qkv.bias", &[24]),
        ("blocks.0.attn.proj.weight", &[8, 8]),
        ("blocks.0.attn.proj.bias", &[8]),
        ("blocks.0.norm2.weight", &[8]),
        ("blocks.0.norm2.bias", &[8]),
        ("blocks.0.mlp.fc1.weight", &[32, 8]),
        ("blocks.0.mlp.fc1.bias", &[32]),
        ("blocks.0.mlp.fc2.weight", &[8, 32]),
        ("blocks.0.mlp.fc2.bias", &[8]),
        ("norm.weight", &[8]),
        ("norm.bias", &[8]),
    ];
    let vit = Vit::load(&gpu, &write("good.safetensors", &good, &[("num_heads", "2")]), &LoadOptions::default()).unwrap();
    assert_eq!((vit.cfg.embed_dim, vit.cfg.depth, vit.cfg.num_heads, vit.cfg.patch_size, vit.cfg.img_size, vit.cfg.mlp_hidden), (8, 1, 2, 4, (8, 8), 32));
    let mut bad = good.to_vec();
    bad[6] = ("blocks.0.attn.qkv.weight", &[24, 9]);
    let msg = load(&write("bad_shape.safetensors", &bad, &[("num_heads", "2")]));
    assert!(msg.contains("blocks.0.attn.qkv.weight") && msg.contains("[24, 9]") && msg.contains("[24, 8]"), "{msg}");
    // The head count cannot be guessed.
    let msg = load(&write("no_heads.safetensors", &good, &[]));
    assert!(msg.contains("num_heads"), "{msg}");
    let msg = load(&write("bad_heads.safetensors", &good, &[("num_heads", "3")]));
    assert!(msg.contains("num_heads = 3") && msg.contains("8"), "{msg}");
    // Not a safetensors file.
    std::fs::write(path("garbage.safetensors"), b"hello").unwrap();
    let msg = load(&path("garbage.safetensors"));
    assert!(msg.contains("not a safetensors file"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn presets_follow_timm() {
    use vpt_wgsl::model::vit::preset;
    let b = preset("vit_base_patch16_224").unwrap();
    assert_eq!((b.embed_dim, b.depth, b.num_heads, b.patch_size, b.img_size, b.mlp_hidden, b.num_patches()), (768, 12, 12, 16, (224, 224), 3072, 196));
    let h = preset("vit_huge_patch14_224").unwrap();
    assert_eq!((h.embed_dim, h.depth, h.num_heads, h.head_dim()), (1280, 32, 16, 80));
    assert_eq!(preset("vit_small_patch32_384").unwrap().grid(), (12, 12));
    assert_eq!(preset("vit_base_patch8_224").unwrap().num_patches(), 784);
    assert!(preset("vit_base_patch15_224").is_none() && preset("resnet50").is_none());
}

/// Training steps reuse freed buffers through the pool: once the shapes of a step have been
/// seen, later steps create no new buffer, for op outputs and uploads (here the labels) alike,
/// and the memory in use does not grow.
#[test]
fn training_steps_reuse_buffers_instead_of_growing() {
    use vpt_wgsl::train::{Optimizer, Trainer, WarmupCosine};
    let gpu = own_gpu();
    let vit = tiny_vit(&gpu);
    let task = task(&gpu, DEPTH, 4, Pool::Cls);
    let host_images = images(&gpu, 2).to_vec().unwrap();
    let schedule = WarmupCosine { base_lr: 0.1, warmup_steps: 0, total_steps: 10 };
    let mut trainer = Trainer::new(&gpu, &task, Optimizer::Sgd { momentum: 0.9, weight_decay: 0.0 }, schedule).unwrap();
    // As `vpt train` does: upload the batch, step, trim the pool.
    let mut step = || {
        let imgs = Tensor::from_slice(&gpu, &[2, 3, IMG, IMG], &host_images).unwrap();
        let loss = trainer.train_step(&gpu, &vit, &task, &imgs, &[1, 3], None).unwrap();
        gpu.trim_pool();
        loss
    };
    let first_loss = step();
    step();
    let (created, live, held) = (gpu.buffers_created(), gpu.live_bytes(), gpu.held_bytes());
    let mut last_loss = first_loss;
    for _ in 0..5 {
        last_loss = step();
    }
    assert_eq!(gpu.buffers_created(), created, "steps after the first two must take every buffer from the pool");
    assert_eq!(gpu.live_bytes(), live, "memory in use must not grow from step to step");
    assert_eq!(gpu.held_bytes(), held, "memory held (in use and pooled) must not grow from step to step");
    assert!(gpu.pooled_bytes() > 0);
    // Reused buffers are cleared and the results stay right: the loss keeps falling on a fixed batch.
    assert!(last_loss < first_loss, "loss {first_loss} → {last_loss}");
}
