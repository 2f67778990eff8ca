//! The whole VPT forward and backward against PyTorch/timm: fixtures/vit/<case>/ hold a timm
//! checkpoint, a task, a batch and what PyTorch computed (fixtures/generate_vit.py). Each case
//! prints its errors; run with `-- --nocapture` to see them:
//!     cargo test --release --test vit_pytorch -- --nocapture
//!
//! Error = max|ours − torch| / max|torch| per tensor. Targets: logits and loss ≤ 1e-4, every
//! gradient ≤ 1e-3.

#[path = "kernels/common.rs"]
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};

use vpt_wgsl::graph::KeepAs;
use vpt_wgsl::io::TensorFile;
use vpt_wgsl::model::files;
use vpt_wgsl::model::plan::{AttentionChoice, BlockPlan, Recompute};
use vpt_wgsl::model::synthetic;
use vpt_wgsl::model::vit::{LoadOptions, Precision, StateDict, Vit, VitConfig};
use vpt_wgsl::model::vpt::{self, VptTask};
use vpt_wgsl::train::{Optimizer, Trainer, WarmupCosine};
use vpt_wgsl::{Gpu, Tensor};

const LOGITS_TOL: f64 = 1e-4;
const GRAD_TOL: f64 = 1e-3;
// With `--precision f16` each large frozen weight is rounded to f16 (relative error ≤ 2⁻¹¹ ≈ 4.9e-4
// per weight) while every activation and sum stays f32; those roundings add up over the blocks.
// The target for logits is 1e-2 relative; the gradients get the same. Measured: see the
// printed table (`-- --nocapture`) and docs/correctness.md.
// Under `--precision f16` the largest activations the backward reads are also kept as f16 (one
// rounding of ≤ 2⁻¹¹ relative each, in the gradients only): the gradients keep the same 1e-2.
const F16_LOGITS_TOL: f64 = 1e-2;
const F16_GRAD_TOL: f64 = 1e-2;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vit")
}

fn path(case: &Path, file: &str) -> String {
    case.join(file).to_string_lossy().into_owned()
}

/// max|a − b| / max|b|.
fn relative_error(ours: &[f32], theirs: &[f32]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let diff = ours.iter().zip(theirs).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    let scale = theirs.iter().fold(0.0f64, |m, &b| m.max((b as f64).abs()));
    if ours.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    diff / scale.max(f64::MIN_POSITIVE)
}

fn compare(gpu: &Gpu, case: &str, name: &str, ours: &Tensor, expected: &TensorFile, tol: f64) {
    let (shape, theirs) = expected.f32(name).unwrap();
    let numel: usize = shape.iter().product::<usize>().max(1);
    assert_eq!(ours.numel(), numel, "{case}/{name}: ours {:?}, torch {shape:?}", ours.shape());
    let err = relative_error(&ours.to_vec().unwrap(), theirs);
    println!("vit {case:<24} {name:<18} relative error {err:.2e} (tolerance {tol:.0e})  {}", gpu.describe());
    assert!(err <= tol, "{case}/{name} on {}: relative error {err:.3e} > {tol:.0e}", gpu.describe());
}

/// The backbone of a case: its model.safetensors, or the synthetic generator the metadata names.
fn backbone(gpu: &Gpu, case: &Path, expected: &TensorFile, img: (usize, usize), precision: Precision) -> Vit {
    let opts = LoadOptions { num_heads: None, img_size: Some(img), precision, ..LoadOptions::default() };
    match expected.metadata.get("synthetic") {
        Some(spec) => {
            let sd = synthetic_state_dict(spec);
            Vit::from_state_dict(gpu, &sd, &opts).unwrap()
        }
        None => Vit::load(gpu, &path(case, "model.safetensors"), &opts).unwrap(),
    }
}

/// "vit_base_patch16_224:1234" → that preset's weights (without a head) from the seeded generator.
fn synthetic_state_dict(spec: &str) -> StateDict {
    let (preset, seed) = spec.split_once(':').expect("synthetic = preset:seed");
    let cfg = VitConfig::from_preset(preset).unwrap();
    let tensors = synthetic::synthetic_vit_state_dict(&cfg, 0, seed.parse().unwrap());
    StateDict::from_tensors(spec, tensors, [("preset".to_string(), preset.to_string())].into())
}

/// A tensor the fixture did not store but described: metadata `key` = "synthetic:<name>:<seed>"
/// and `<key>_shape` = "a,b,c" (the ViT-B/16 case keeps its prompts and image out of the repo).
fn synthetic_from_metadata(gpu: &Gpu, f: &TensorFile, key: &str) -> Option<Tensor> {
    let spec = f.metadata.get(key)?.strip_prefix("synthetic:")?;
    let (name, seed) = spec.rsplit_once(':')?;
    let shape: Vec<usize> = f.metadata.get(&format!("{key}_shape"))?.split(',').map(|d| d.trim().parse().unwrap()).collect();
    Some(Tensor::from_slice(gpu, &shape, &synthetic::synthetic_tensor(name, &shape, seed.parse().unwrap())).unwrap())
}

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures()).expect("fixtures/vit exists").map(|e| e.unwrap().path()).filter(|p| p.join("batch.safetensors").exists()).collect();
    dirs.sort();
    dirs
}

/// The plans the fixtures are checked under: each attention path, and the fused one with every
/// block recomputed in the backward.
const PLANS: [BlockPlan; 3] = [
    BlockPlan { attention: AttentionChoice::Unfused, recompute: Recompute::None, max_images: None },
    BlockPlan { attention: AttentionChoice::Fused, recompute: Recompute::None, max_images: None },
    BlockPlan { attention: AttentionChoice::Fused, recompute: Recompute::Block, max_images: None },
];

fn run_case(gpu: &Gpu, case: &Path, plan: BlockPlan, precision: Precision) {
    run_case_keeping(gpu, case, plan, precision, None);
}

/// `run_case`, with the kept activations stored as `keep` says where it is given (else as the
/// precision sets them: f16 with f16 weights).
fn run_case_keeping(gpu: &Gpu, case: &Path, plan: BlockPlan, precision: Precision, keep: Option<KeepAs>) {
    let kept = keep.map_or(String::new(), |k| format!(", {k:?} kept"));
    let name = format!("{} ({} attention, recompute {}, {} weights{kept})", case.file_name().unwrap().to_string_lossy(), plan.attention.name(), plan.recompute.name(), precision.name());
    let (logits_tol, grad_tol) = match (precision, keep) {
        (Precision::F32, None | Some(KeepAs::F32)) => (LOGITS_TOL, GRAD_TOL),
        // Kept activations in f16 leave the forward as it was (f32 weights: the f32 tolerance).
        (Precision::F32, Some(KeepAs::F16)) => (LOGITS_TOL, F16_GRAD_TOL),
        (Precision::F16, _) => (F16_LOGITS_TOL, F16_GRAD_TOL),
    };
    let expected = TensorFile::read(path(case, "expected.safetensors")).unwrap();
    let batch_file = TensorFile::read(path(case, "batch.safetensors")).unwrap();
    let (images, labels) = match synthetic_from_metadata(gpu, &batch_file, "images") {
        Some(images) => (images, batch_file.i64("labels").unwrap().1.iter().map(|&l| l as u32).collect()),
        None => files::read_batch(gpu, &path(case, "batch.safetensors")).unwrap(),
    };
    let mut vit = backbone(gpu, case, &expected, (images.shape()[2], images.shape()[3]), precision);
    vit.plan = plan;
    if let Some(keep) = keep {
        vit.keep = keep;
    }
    let task_file = TensorFile::read(path(case, "task.safetensors")).unwrap();
    let mut task = VptTask::from_file(gpu, &task_file).unwrap();
    if task.prompts.is_none() {
        task.prompts = synthetic_from_metadata(gpu, &task_file, "prompts");
    }
    let out = vpt::vpt_grad(gpu, &vit, &task, &images, &labels).unwrap();
    compare(gpu, &name, "logits", &out.logits, &expected, logits_tol);
    compare(gpu, &name, "loss", &out.loss, &expected, logits_tol);
    compare(gpu, &name, "grad.head.weight", &out.grad_head_weight, &expected, grad_tol);
    compare(gpu, &name, "grad.head.bias", &out.grad_head_bias, &expected, grad_tol);
    match (&out.grad_prompts, expected.tensors.contains_key("grad.prompts")) {
        (Some(g), true) => compare(gpu, &name, "grad.prompts", g, &expected, grad_tol),
        (None, false) => {}
        (ours, theirs) => panic!("{name}: prompts gradient present in ours: {}, in torch's: {theirs}", ours.is_some()),
    }
    // Inference gives the same logits as the training forward.
    let logits = vpt::vpt_forward(gpu, &vit, &task, &images).unwrap();
    assert_eq!(logits.to_vec().unwrap(), out.logits.to_vec().unwrap(), "{name}: inference vs training forward");
}

fn is_full_size(case: &Path) -> bool {
    case.file_name().unwrap().to_string_lossy().starts_with("vit_base")
}

/// Every small case, on every backend.
#[test]
fn small_vit_cases_match_pytorch() {
    let cases: Vec<PathBuf> = case_dirs().into_iter().filter(|c| !is_full_size(c)).collect();
    let names: Vec<String> = cases.iter().map(|c| c.file_name().unwrap().to_string_lossy().into_owned()).collect();
    // The cases fixtures/generate_vit.py writes: shallow, deep, partial depth, linear probe, each
    // pooling, odd sizes, non-square images, and a checkpoint run at another image size.
    let expected = ["deep_image", "linear_probe", "nonsquare", "odd_sizes", "partial_prompt", "resampled", "shallow_cls"];
    assert_eq!(names, expected, "fixture cases");
    for gpu in common::gpus() {
        for case in &cases {
            for plan in PLANS {
                run_case(gpu, case, plan, Precision::F32);
            }
        }
    }
}

/// Every small case with f16 weights, on each backend that has SHADER_F16 (lavapipe's Vulkan);
/// where none has it, the clear error instead.
#[test]
fn small_vit_cases_with_f16_weights_match_pytorch() {
    let with_f16: Vec<&Gpu> = common::gpus().iter().filter(|g| g.features().contains(wgpu::Features::SHADER_F16)).collect();
    for gpu in &with_f16 {
        for case in case_dirs().into_iter().filter(|c| !is_full_size(c)) {
            run_case(gpu, &case, PLANS[1], Precision::F16);
        }
    }
    for gpu in common::gpus().iter().filter(|g| !g.features().contains(wgpu::Features::SHADER_F16)) {
        let sd = synthetic_state_dict("vit_tiny_patch16_224:1");
        let err = Vit::from_state_dict(gpu, &sd, &LoadOptions { precision: Precision::F16, ..LoadOptions::default() }).err().expect("f16 without SHADER_F16");
        assert!(err.to_string().contains("SHADER_F16") && err.to_string().contains("`precision` f32"), "{err}");
    }
}

/// Every small case with f32 weights and the kept activations in f16 (what `--precision f16`
/// adds to f16 weights), on every backend: they need no SHADER_F16, so GL runs them too. The
/// forward is untouched, so logits and loss stay within the f32 tolerance; the gradients get
/// f16's.
#[test]
fn small_vit_cases_with_f16_kept_activations_match_pytorch() {
    for gpu in common::gpus() {
        for case in case_dirs().into_iter().filter(|c| !is_full_size(c)) {
            for plan in [PLANS[1], PLANS[2]] {
                run_case_keeping(gpu, &case, plan, Precision::F32, Some(KeepAs::F16));
            }
        }
    }
}

/// The full-size ViT-B/16 at 224 with 50 deep prompts on the default adapter, with each
/// attention path: about 90 GFLOP each.
#[test]
fn vit_base_16_deep_prompts_match_pytorch() {
    let case = case_dirs().into_iter().find(|c| is_full_size(c)).expect("the vit_base case of fixtures/generate_vit.py");
    for plan in &PLANS[..2] {
        run_case(&common::gpus()[0], &case, *plan, Precision::F32);
    }
}

/// ViT-B/16 with f16 weights (the target: logits within 1e-2 relative of timm's f32),
/// on the first adapter with SHADER_F16.
#[test]
fn vit_base_16_with_f16_weights_matches_pytorch() {
    let case = case_dirs().into_iter().find(|c| is_full_size(c)).expect("the vit_base case of fixtures/generate_vit.py");
    let gpu = common::gpus().iter().find(|g| g.features().contains(wgpu::Features::SHADER_F16));
    match gpu {
        Some(gpu) => run_case(gpu, &case, PLANS[1], Precision::F16),
        None => eprintln!("no adapter here has SHADER_F16: f16 weights are checked as an error in small_vit_cases_with_f16_weights_match_pytorch"),
    }
}

/// 20 SGD steps with warm-up + cosine on a fixed batch sequence: the loss at every step and the
/// final prompts and head match PyTorch doing the same.
#[test]
fn twenty_training_steps_match_pytorch() {
    let dir = fixtures().join("train");
    let expected = TensorFile::read(path(&dir, "expected.safetensors")).unwrap();
    let batches = TensorFile::read(path(&dir, "batches.safetensors")).unwrap();
    let (img_shape, images) = batches.f32("images").unwrap();
    let (_, labels) = batches.i64("labels").unwrap();
    let (steps, batch) = (img_shape[0], img_shape[1]);
    let per_batch: usize = img_shape[1..].iter().product();
    let meta = |k: &str| -> f64 { expected.meta(k).unwrap() };
    let schedule = WarmupCosine { base_lr: meta("base_lr"), warmup_steps: meta("warmup_steps") as usize, total_steps: meta("total_steps") as usize };
    let (_, torch_lr) = expected.f32("lr").unwrap();
    let (_, torch_losses) = expected.f32("losses").unwrap();
    for gpu in common::gpus() {
        let vit = Vit::load(gpu, &path(&dir, "model.safetensors"), &LoadOptions { num_heads: None, img_size: Some((img_shape[3], img_shape[4])), ..LoadOptions::default() }).unwrap();
        let task = VptTask::read(gpu, &path(&dir, "task.safetensors")).unwrap();
        let optimizer = Optimizer::Sgd { momentum: meta("momentum") as f32, weight_decay: meta("weight_decay") as f32 };
        let mut trainer = Trainer::new(gpu, &task, optimizer, schedule).unwrap();
        let mut worst: f64 = 0.0;
        for s in 0..steps {
            assert!((schedule.lr(s) - torch_lr[s] as f64).abs() <= 1e-6 * schedule.base_lr, "lr at step {s}: {} vs torch {}", schedule.lr(s), torch_lr[s]);
            let imgs = Tensor::from_slice(gpu, &img_shape[1..], &images[s * per_batch..(s + 1) * per_batch]).unwrap();
            let labs: Vec<u32> = labels[s * batch..(s + 1) * batch].iter().map(|&l| l as u32).collect();
            let loss = trainer.train_step(gpu, &vit, &task, &imgs, &labs, None).unwrap();
            let err = (loss as f64 - torch_losses[s] as f64).abs() / (torch_losses[s] as f64).abs();
            println!("train step {s:>2}: lr {:.5} loss {loss:.6} torch {:.6} relative error {err:.2e}  {}", schedule.lr(s), torch_losses[s], gpu.describe());
            worst = worst.max(err);
            assert!(err <= 1e-4, "step {s} on {}: loss {loss} vs torch {} (relative {err:.2e} > 1e-4)", gpu.describe(), torch_losses[s]);
        }
        compare(gpu, "train", "prompts", task.prompts.as_ref().unwrap(), &expected, GRAD_TOL);
        compare(gpu, "train", "head.weight", &task.head_weight, &expected, GRAD_TOL);
        compare(gpu, "train", "head.bias", &task.head_bias, &expected, GRAD_TOL);
        println!("train: worst loss error over {steps} steps {worst:.2e}");
    }
}
