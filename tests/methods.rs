//! Weight gradients for the paper's baselines (`vpt grad --method`) against PyTorch/timm:
//! fixtures/vit/<case>/grad.<method>.safetensors hold what torch.autograd gives when a method trains
//! backbone tensors, adapters or LoRA pairs (fixtures/generate_methods.py). Per method, the backward must make exactly one
//! gradient tensor per trained tensor, and none for a frozen one. Run with `-- --nocapture` to see
//! the errors. Error = max|ours − torch| / max|torch| per tensor; targets: logits and loss 1e-4,
//! every gradient 1e-3.

#[path = "kernels/common.rs"]
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use vpt_wgsl::io::TensorFile;
use vpt_wgsl::model::files;
use vpt_wgsl::model::methods::method::Method;
use vpt_wgsl::model::plan::{BlockPlan, Recompute};
use vpt_wgsl::model::vit::{LoadOptions, Vit};
use vpt_wgsl::model::vpt::{self, VptTask};
use vpt_wgsl::{Gpu, Tensor};

const LOGITS_TOL: f64 = 1e-4;
const GRAD_TOL: f64 = 1e-3;

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vit").join(case)
}

fn file(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

fn relative_error(ours: &[f32], theirs: &[f32]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    if ours.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff = ours.iter().zip(theirs).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    let scale = theirs.iter().fold(0.0f64, |m, &b| m.max((b as f64).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

fn compare(what: &str, ours: &Tensor, expected: &TensorFile, name: &str, tol: f64) {
    let (shape, theirs) = expected.f32(name).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(ours.numel(), shape.iter().product::<usize>().max(1), "{what}/{name}: ours {:?}, torch {shape:?}", ours.shape());
    let err = relative_error(&ours.to_vec().unwrap(), theirs);
    println!("{what:<40} {name:<32} relative error {err:.2e} (tolerance {tol:.0e})");
    assert!(err <= tol, "{what}/{name}: relative error {err:.3e} > {tol:.0e}");
}

const CASES: [&str; 2] = ["odd_sizes", "shallow_cls"];
const METHODS: [&str; 12] = ["linear", "bias", "partial-1", "full", "prompt+bias", "adapter", "lora", "prompt+lora", "linear+ia3", "prompt+ia3", "linear+dora", "prompt+dora"];

/// The task a method's fixture used: with random adapters, LoRA pairs, IA³ vectors or DoRA
/// tensors for those methods.
fn task_file(method: &str) -> &'static str {
    if method.contains("adapter") {
        "task.adapter.safetensors"
    } else if method.contains("lora") {
        "task.lora.safetensors"
    } else if method.contains("ia3") {
        "task.ia3.safetensors"
    } else if method.contains("dora") {
        "task.dora.safetensors"
    } else {
        "task.safetensors"
    }
}

/// The fixture of a method: `grad.<method>.safetensors`, as PyTorch's script names it (`linear+`
/// dropped, `+` written as `_`).
fn grad_file(method: &str) -> String {
    let name: Method = method.parse().unwrap();
    format!("grad.{}.safetensors", name.name().replace('+', "_"))
}

/// Every case × method on every backend: logits, loss and every gradient as PyTorch has them,
/// the trained tensors exactly those the fixture's method trains, one gradient tensor each.
#[test]
fn method_gradients_match_pytorch() {
    for gpu in common::gpus() {
        for case in CASES {
            let dir = case_dir(case);
            let (images, labels) = files::read_batch(gpu, &file(&dir, "batch.safetensors")).unwrap();
            let img = (images.shape()[2], images.shape()[3]);
            let vit = Vit::load(gpu, &file(&dir, "model.safetensors"), &LoadOptions { img_size: Some(img), ..LoadOptions::default() }).unwrap();
            for method_name in METHODS {
                let task = VptTask::read(gpu, &file(&dir, task_file(method_name))).unwrap();
                let expected = TensorFile::read(file(&dir, &grad_file(method_name))).unwrap();
                let method: Method = method_name.parse().unwrap();
                let step = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &method).unwrap();
                let what = format!("{case} --method {method_name} ({})", if gpu.describe().contains("Gl") { "GL" } else { "Vulkan" });
                compare(&what, &step.logits, &expected, "logits", LOGITS_TOL);
                compare(&what, &step.loss, &expected, "loss", LOGITS_TOL);
                compare(&what, &step.grad_head_weight, &expected, "grad.head.weight", GRAD_TOL);
                compare(&what, &step.grad_head_bias, &expected, "grad.head.bias", GRAD_TOL);
                match &step.grad_prompts {
                    Some(g) => compare(&what, g, &expected, "grad.prompts", GRAD_TOL),
                    None => assert!(!expected.tensors.contains_key("grad.prompts"), "{what}: PyTorch trained the prompts, we did not"),
                }
                let trained: Vec<&str> = step.grad_backbone.iter().map(|(n, _)| n.as_str()).collect();
                let theirs: Vec<&str> = expected.metadata["trained"].split(',').filter(|s| !s.is_empty()).collect();
                assert_eq!(trained, theirs, "{what}: the tensors the method trains");
                for (name, g) in &step.grad_backbone {
                    compare(&what, g, &expected, &format!("grad.{name}"), GRAD_TOL);
                }
                // One gradient tensor per trainable leaf: head (2), prompts, the trained tensors
                // (backbone, adapters, LoRA).
                let prompts = usize::from(step.grad_prompts.is_some());
                assert_eq!(step.gradient_tensors, 2 + prompts + trained.len(), "{what}: a frozen tensor got a gradient buffer");
            }
        }
    }
}

/// A task file's adapters, LoRA pairs, IA³ vectors, DoRA tensors and tuned backbone tensors are used by inference too
/// (`vpt eval`, `vpt predict`, `vpt forward`): its logits are PyTorch's with them in place.
#[test]
fn inference_uses_what_the_task_methods_added() {
    let gpu = &common::gpus()[0];
    for case in CASES {
        let dir = case_dir(case);
        let (images, _) = files::read_batch(gpu, &file(&dir, "batch.safetensors")).unwrap();
        let img = (images.shape()[2], images.shape()[3]);
        let vit = Vit::load(gpu, &file(&dir, "model.safetensors"), &LoadOptions { img_size: Some(img), ..LoadOptions::default() }).unwrap();
        for method in ["adapter", "lora", "ia3", "dora"] {
            let task = VptTask::read(gpu, &file(&dir, task_file(method))).unwrap();
            assert!(!task.tuned.added.is_empty());
            let expected = TensorFile::read(file(&dir, &format!("grad.{method}.safetensors"))).unwrap();
            let logits = vpt::vpt_forward(gpu, &vit, &task, &images).unwrap();
            compare(&format!("{case} forward with its {method}"), &logits, &expected, "logits", LOGITS_TOL);
        }
    }
}

/// The methods' weight gradients do not depend on how the blocks run: the MLP recomputed, the
/// unfused attention, one image at a time give what the default plan gives; `--recompute block`,
/// which cannot hold trained weights, is refused by name.
#[test]
fn method_gradients_do_not_depend_on_the_plan() {
    let gpu = &common::gpus()[0];
    let dir = case_dir("odd_sizes");
    let (images, labels) = files::read_batch(gpu, &file(&dir, "batch.safetensors")).unwrap();
    let img = (images.shape()[2], images.shape()[3]);
    let mut vit = Vit::load(gpu, &file(&dir, "model.safetensors"), &LoadOptions { img_size: Some(img), ..LoadOptions::default() }).unwrap();
    let task = VptTask::read(gpu, &file(&dir, "task.safetensors")).unwrap();
    let method: Method = "full".parse().unwrap();
    let reference = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &method).unwrap();
    let plans = [
        BlockPlan { recompute: Recompute::Mlp, ..BlockPlan::default() },
        BlockPlan { attention: vpt_wgsl::model::plan::AttentionChoice::Unfused, ..BlockPlan::default() },
        BlockPlan { max_images: Some(1), ..BlockPlan::default() },
    ];
    for plan in plans {
        vit.plan = plan;
        let step = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &method).unwrap();
        for ((name, ours), (_, base)) in step.grad_backbone.iter().zip(&reference.grad_backbone) {
            let err = relative_error(&ours.to_vec().unwrap(), &base.to_vec().unwrap());
            assert!(err <= 1e-5, "{plan:?}: grad.{name} differs by {err:.2e}");
        }
    }
    vit.plan = BlockPlan { recompute: Recompute::Block, ..BlockPlan::default() };
    let err = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &method).err().expect("refused").to_string();
    assert!(err.contains("`recompute`") && err.contains("blocks.0"), "{err}");
    // Bias alone under --recompute block is refused too: blocks' biases train.
    assert!(vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &"bias".parse().unwrap()).is_err());
}

/// `vpt grad --method bias` writes grad.<timm name> for every bias, matching PyTorch; a bad
/// method is refused by name before anything is written.
#[test]
fn grad_cli_writes_every_trained_tensor() {
    let dir = case_dir("odd_sizes");
    let out = std::env::temp_dir().join(format!("vpt-methods-{}.safetensors", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let run = |method: &str| {
        Command::new(env!("CARGO_BIN_EXE_vpt"))
            .args(["grad", "--model", &file(&dir, "model.safetensors"), "--task", &file(&dir, "task.safetensors"), "--batch", &file(&dir, "batch.safetensors"), "--method", method, "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let bad = run("partial-0");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--method"), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(!out.exists());
    let ok = run("bias");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let ours = TensorFile::read(out.to_str().unwrap()).unwrap();
    let theirs = TensorFile::read(file(&dir, "grad.bias.safetensors")).unwrap();
    let mut names: Vec<&String> = ours.tensors.keys().collect();
    names.sort();
    let mut expected: Vec<&String> = theirs.tensors.keys().collect();
    expected.sort();
    assert_eq!(names, expected, "the same tensors as PyTorch's");
    for name in names {
        let (_, a) = ours.f32(name).unwrap();
        let (_, b) = theirs.f32(name).unwrap();
        let tol = if name.starts_with("grad.") { GRAD_TOL } else { LOGITS_TOL };
        assert!(relative_error(a, b) <= tol, "{name}: {:.2e}", relative_error(a, b));
    }
    std::fs::remove_file(&out).ok();
}

/// 20 SGD steps (momentum, weight decay, warm-up + cosine) training the head and what `bias`,
/// `adapter`, `ia3` or `dora` trains, on fixtures/vit/train's batches: the loss at every step and every trained
/// tensor at the end match PyTorch doing the same (fixtures/generate_methods.py).
#[test]
fn twenty_steps_of_bias_adapter_ia3_and_dora_match_pytorch() {
    use vpt_wgsl::train::{Optimizer, Trainer, WarmupCosine};
    let dir = case_dir("train");
    let batches = TensorFile::read(file(&dir, "batches.safetensors")).unwrap();
    let (img_shape, images) = batches.f32("images").unwrap();
    let (_, labels) = batches.i64("labels").unwrap();
    let (steps, batch) = (img_shape[0], img_shape[1]);
    let per_batch: usize = img_shape[1..].iter().product();
    for gpu in common::gpus() {
        let vit = Vit::load(gpu, &file(&dir, "model.safetensors"), &LoadOptions { img_size: Some((img_shape[3], img_shape[4])), ..LoadOptions::default() }).unwrap();
        for (method_name, task_name) in [("bias", "task.safetensors"), ("adapter", "task.adapter.safetensors"), ("ia3", "task.ia3.safetensors"), ("dora", "task.dora.safetensors")] {
            let expected = TensorFile::read(file(&dir, &format!("expected.{method_name}.safetensors"))).unwrap();
            let meta = |k: &str| -> f64 { expected.meta(k).unwrap() };
            let schedule = WarmupCosine { base_lr: meta("base_lr"), warmup_steps: meta("warmup_steps") as usize, total_steps: meta("total_steps") as usize };
            let optimizer = Optimizer::Sgd { momentum: meta("momentum") as f32, weight_decay: meta("weight_decay") as f32 };
            let method: Method = method_name.parse().unwrap();
            let mut task = VptTask::read(gpu, &file(&dir, task_name)).unwrap();
            if method_name == "bias" {
                // A fresh run's starting point: copies of the biases (the backbone stays as it is).
                task.tuned = vit.fresh_tuned(&method, 0).unwrap();
            }
            let mut trainer = Trainer::with_method(gpu, &task, method, optimizer, schedule).unwrap();
            let (_, torch_losses) = expected.f32("losses").unwrap();
            let what = format!("train --method {method_name} ({})", gpu.describe());
            for s in 0..steps {
                let imgs = Tensor::from_slice(gpu, &img_shape[1..], &images[s * per_batch..(s + 1) * per_batch]).unwrap();
                let labs: Vec<u32> = labels[s * batch..(s + 1) * batch].iter().map(|&l| l as u32).collect();
                let loss = trainer.train_step(gpu, &vit, &task, &imgs, &labs, None).unwrap();
                let err = (loss as f64 - torch_losses[s] as f64).abs() / (torch_losses[s] as f64).abs();
                println!("{what} step {s:>2}: loss {loss:.6} torch {:.6} relative error {err:.2e}", torch_losses[s]);
                assert!(err <= 1e-4, "{what} step {s}: loss {loss} vs torch {} (relative {err:.2e} > 1e-4)", torch_losses[s]);
            }
            compare(&what, &task.head_weight, &expected, "head.weight", GRAD_TOL);
            compare(&what, &task.head_bias, &expected, "head.bias", GRAD_TOL);
            let trained: Vec<String> = expected.metadata["trained"].split(',').map(str::to_string).collect();
            let ours = task.tuned.named();
            assert_eq!(ours.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), trained, "{what}: the trained tensors");
            for (name, t) in ours {
                compare(&what, t, &expected, &name, GRAD_TOL);
            }
        }
    }
}

/// A weight the method does not train gets no dW product, and a tensor no gradient reaches no dX
/// product: on a VPT-deep task, `prompt+partial-1` launches exactly 5 products more than `prompt`
/// (dW of the last block's qkv, proj, fc1 and fc2; qkv's twice, as the block runs its prompts
/// through qkv apart from the images' rows, `block::block_forward`), and `prompt+bias` 1 more: the
/// images' rows of block 0 then carry the patch embedding's bias, so their qkv needs dX (a bias
/// gradient itself is a row sum, a LayerNorm's its own kernel). Under `prompt` alone nothing
/// before block 0 trains and only the prompts' rows of block 0 get a dX.
#[test]
fn only_trained_weights_get_a_weight_gradient_product() {
    // A device of its own: the shared ones count the launches of the tests running beside this one.
    let gpu = &Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let dir = case_dir("odd_sizes"); // prompts in both blocks: the backward runs through all of them
    let (images, labels) = files::read_batch(gpu, &file(&dir, "batch.safetensors")).unwrap();
    let img = (images.shape()[2], images.shape()[3]);
    let vit = Vit::load(gpu, &file(&dir, "model.safetensors"), &LoadOptions { img_size: Some(img), ..LoadOptions::default() }).unwrap();
    let task = VptTask::read(gpu, &file(&dir, "task.safetensors")).unwrap();
    let products = |method: &str| -> u64 {
        let count = || gpu.dispatch_counts().iter().filter(|(k, _)| k.starts_with("matmul")).map(|(_, n)| n).sum::<u64>();
        let before = count();
        let step = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &method.parse().unwrap()).unwrap();
        step.loss.to_scalar().unwrap();
        count() - before
    };
    let prompt = products("prompt");
    assert_eq!(products("prompt+partial-1"), prompt + 5);
    assert_eq!(products("prompt+bias"), prompt + 1);
    // IA³ rescales fc2's weight columns (`methods/ia3.rs`): one dW product more per block (2 here);
    // its qkv rescaling is a product and a row sum, no matmul.
    assert_eq!(products("prompt+ia3"), prompt + 2);
}

/// A fresh run's IA³ vectors are ones and its DoRA has B = 0 and m = ‖W‖, so each starts from the
/// backbone as it is: the logits of `ia3` and `dora` on a task without their tensors are those of
/// `linear`, and every tensor they add gets a gradient.
#[test]
fn fresh_ia3_and_dora_start_from_the_backbone_unchanged() {
    let gpu = &common::gpus()[0];
    let dir = case_dir("shallow_cls");
    let (images, labels) = files::read_batch(gpu, &file(&dir, "batch.safetensors")).unwrap();
    let img = (images.shape()[2], images.shape()[3]);
    let vit = Vit::load(gpu, &file(&dir, "model.safetensors"), &LoadOptions { img_size: Some(img), ..LoadOptions::default() }).unwrap();
    let task = VptTask::read(gpu, &file(&dir, "task.safetensors")).unwrap();
    let linear = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &"linear".parse().unwrap()).unwrap();
    let ia3 = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &"ia3".parse().unwrap()).unwrap();
    let err = relative_error(&ia3.logits.to_vec().unwrap(), &linear.logits.to_vec().unwrap());
    assert!(err <= 1e-6, "ones change the logits by {err:.2e}");
    let names: Vec<&str> = ia3.grad_backbone.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ia3.0.k", "ia3.0.v", "ia3.0.mlp", "ia3.1.k", "ia3.1.v", "ia3.1.mlp", "ia3.2.k", "ia3.2.v", "ia3.2.mlp"]);
    let dora = vpt::vpt_grad_for(gpu, &vit, &task, &images, &labels, &"dora".parse().unwrap()).unwrap();
    let err = relative_error(&dora.logits.to_vec().unwrap(), &linear.logits.to_vec().unwrap());
    // m / ‖W‖ is 1 up to the rounding of two f32 norms (ours summed on the GPU, m's on the host).
    assert!(err <= 1e-5, "DoRA's start changes the logits by {err:.2e}");
    assert_eq!(dora.grad_backbone.len(), 9, "A, B and m of three blocks");
}
