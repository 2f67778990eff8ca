//! Structure-aware fuzzing of everything `vpt` reads from a file: valid model, task, batch and
//! resume files are mutated the ways a damaged or hostile file differs (header JSON: dtypes,
//! shapes, offsets, names, metadata; the header's length; the values: NaN, infinities; the bytes:
//! cut short, flipped, padded), and each loader must answer every case with a result, never a
//! panic. Image files get the same treatment through the folder scan and the image loader.
//!
//! Bounded and seeded so that it runs in the suite: `FUZZ_CASES` per loader (default 120).
//! For open-ended fuzzing with coverage guidance, see `tests/fuzz/` (cargo fuzz).

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde_json::Value;
use vpt_wgsl::model::files::read_batch;
use vpt_wgsl::model::vit::{LoadOptions, StateDict, Vit};
use vpt_wgsl::model::vpt::VptTask;
use vpt_wgsl::rng::{next_u64, next_unit};
use vpt_wgsl::train::config::{Depth, TrainConfig};
use vpt_wgsl::train::data::{load_image, ImageFolder, Normalization, Transform};
use vpt_wgsl::train::outputs::RunFiles;
use vpt_wgsl::train::resume::{restore, run_settings};
use vpt_wgsl::train::task::{new_task, TaskFile};
use vpt_wgsl::train::{Optimizer, Trainer, WarmupCosine};
use vpt_wgsl::Gpu;

fn cases() -> usize {
    std::env::var("FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(120)
}

/// A safetensors file taken apart: its header as JSON, and the data after it.
struct Parts {
    header: BTreeMap<String, Value>,
    data: Vec<u8>,
}

fn split(bytes: &[u8]) -> Parts {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    Parts { header: serde_json::from_slice(&bytes[8..8 + n]).unwrap(), data: bytes[8 + n..].to_vec() }
}

fn join(parts: &Parts) -> Vec<u8> {
    let header = serde_json::to_vec(&parts.header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(&parts.data);
    out
}

fn pick<'a, T>(items: &'a [T], rng: &mut u64) -> &'a T {
    &items[(next_unit(rng) * items.len() as f64) as usize % items.len()]
}

/// A number a mutated header might hold: small, edge, or absurd.
fn odd_number(rng: &mut u64) -> Value {
    let n: i64 = *pick(&[0, 1, 2, 3, 7, 16, 255, 1 << 20, 1 << 31, (1 << 40) + 1, i64::MAX, -1], rng);
    Value::from(n)
}

/// One structure-aware mutation of a valid file.
fn mutate(valid: &[u8], rng: &mut u64) -> Vec<u8> {
    let mut p = split(valid);
    let names: Vec<String> = p.header.keys().filter(|k| *k != "__metadata__").cloned().collect();
    // Half the time, one of the tensors whose shapes the loaders reason about (config inference,
    // the task's widths, the batch), rather than one of the many block weights.
    const KEY_TENSORS: [&str; 10] =
        ["cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight", "blocks.0.norm1.weight", "prompts", "head.weight", "head.bias", "images", "labels"];
    let keys: Vec<String> = names.iter().filter(|n| KEY_TENSORS.contains(&n.as_str())).cloned().collect();
    let name = if !keys.is_empty() && next_unit(rng) < 0.5 { pick(&keys, rng).clone() } else { pick(&names, rng).clone() };
    match next_u64(rng) % 14 {
        0 => p.header.get_mut(&name).unwrap()["dtype"] = Value::from(*pick(&["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "X"], rng)),
        1 => {
            let shape = p.header[&name]["shape"].as_array().unwrap().clone();
            let mut shape: Vec<Value> = shape;
            match next_u64(rng) % 4 {
                0 if !shape.is_empty() => {
                    let i = next_u64(rng) as usize % shape.len();
                    shape[i] = odd_number(rng);
                }
                1 => shape.clear(), // a scalar
                2 => shape.push(Value::from(1)),
                _ => shape.truncate(shape.len().saturating_sub(1)),
            }
            p.header.get_mut(&name).unwrap()["shape"] = Value::from(shape);
        }
        2 => {
            let i = next_u64(rng) as usize % 2;
            p.header.get_mut(&name).unwrap()["data_offsets"][i] = odd_number(rng);
        }
        3 => {
            let offsets = p.header[&name]["data_offsets"].clone();
            p.header.get_mut(&name).unwrap()["data_offsets"] = Value::from(vec![offsets[1].clone(), offsets[0].clone()]);
        }
        4 => drop(p.header.remove(&name)),
        5 => {
            let info = p.header.remove(&name).unwrap();
            p.header.insert(format!("{name}.renamed"), info);
        }
        6 => {
            let meta = p.header.entry("__metadata__".into()).or_insert_with(|| Value::from(serde_json::Map::new()));
            let keys: Vec<String> = meta.as_object().unwrap().keys().cloned().collect();
            if let Some(key) = keys.get(next_u64(rng) as usize % keys.len().max(1)) {
                let value = pick(&["", "0", "-1", "1e400", "NaN", "x,y", "[\"a\",\"a\"]", "[]", "18446744073709551616", "0,0", "fnv1a64:0"], rng);
                meta[key] = Value::from(*value);
            }
        }
        7 => {
            if let Some(meta) = p.header.get_mut("__metadata__") {
                let keys: Vec<String> = meta.as_object().unwrap().keys().cloned().collect();
                if let Some(key) = keys.first() {
                    meta.as_object_mut().unwrap().remove(key);
                }
            }
        }
        8 => {
            // A value that is not finite, in place.
            let start = p.header[&name]["data_offsets"][0].as_u64().unwrap() as usize;
            let end = p.header[&name]["data_offsets"][1].as_u64().unwrap() as usize;
            if end >= start + 4 && p.header[&name]["dtype"] == "F32" {
                let at = start + 4 * (next_u64(rng) as usize % ((end - start) / 4));
                let v = *pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, 0.0], rng);
                p.data[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        9 => {
            let cut = next_u64(rng) as usize % valid.len();
            return valid[..cut].to_vec();
        }
        10 => {
            let mut bytes = join(&p);
            let at = next_u64(rng) as usize % bytes.len();
            bytes[at] ^= 1 << (next_u64(rng) % 8);
            return bytes;
        }
        11 => {
            let mut bytes = join(&p);
            let claimed: u64 = *pick(&[0, 1, 7, 9, u64::MAX, 1 << 40, (bytes.len() - 8) as u64 + 1], rng);
            bytes[..8].copy_from_slice(&claimed.to_le_bytes());
            return bytes;
        }
        12 => p.data.extend(std::iter::repeat_n(0xAB, next_u64(rng) as usize % 64)),
        _ => {
            p.header.insert("__metadata__".into(), Value::from(vec![1, 2, 3])); // metadata of the wrong kind
        }
    }
    join(&p)
}

/// Run `load` on `cases()` mutations of `valid` (written to `path`) and fail, naming the first
/// few, if any case panicked.
fn fuzz(name: &str, valid: &[u8], path: &Path, seed: u64, mut load: impl FnMut(&Path)) {
    let mut rng = seed;
    let mut panics = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // count panics here instead of printing each
    for case in 0..cases() {
        let bytes = mutate(valid, &mut rng);
        std::fs::write(path, &bytes).unwrap();
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| load(path))) {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panics.push(format!("case {case}: {msg}"));
        }
    }
    std::panic::set_hook(hook);
    assert!(panics.is_empty(), "{name}: {} of {} mutated files made a loader panic:\n{}", panics.len(), cases(), panics.iter().take(5).cloned().collect::<Vec<_>>().join("\n"));
}

fn gpu() -> Gpu {
    Gpu::new().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn model_loader_never_panics() {
    let dir = common::workdir("model");
    let valid = std::fs::read(common::write_tiny_backbone(&dir)).unwrap();
    let gpu = gpu();
    fuzz("model", &valid, &dir.join("m.safetensors"), 1, |path| {
        if let Ok(sd) = StateDict::read(&path.to_string_lossy()) {
            let _ = Vit::from_state_dict(&gpu, &sd, &LoadOptions::default());
        }
    });
}

/// A task file as `vpt train` writes it, for the tiny ViT.
fn valid_task(gpu: &Gpu, dir: &Path) -> PathBuf {
    let task = TaskFile {
        task: new_task(gpu, &common::tiny_config(), 2, 3, 4, vpt_wgsl::model::vpt::Pool::Cls, 1).unwrap(),
        classes: ["a", "b", "c", "d"].map(String::from).to_vec(),
        norm: Normalization::IMAGENET,
        img_size: (common::IMG, common::IMG),
        backbone: "fnv1a64:0000000000000000".into(),
    };
    let path = dir.join("task.safetensors");
    task.write(&path.to_string_lossy(), &[], &[]).unwrap();
    path
}

#[test]
fn task_loader_never_panics() {
    let dir = common::workdir("task");
    let gpu = gpu();
    let valid = std::fs::read(valid_task(&gpu, &dir)).unwrap();
    fuzz("task", &valid, &dir.join("t.safetensors"), 2, |path| {
        let _ = TaskFile::read(&gpu, &path.to_string_lossy());
        let _ = VptTask::read(&gpu, &path.to_string_lossy());
    });
}

#[test]
fn batch_loader_never_panics() {
    let dir = common::workdir("batch");
    // images f32 [2, 3, 16, 16] and labels i64 [2], as fixtures/generate_vit.py writes them.
    let images: Vec<f32> = (0..2 * 3 * 16 * 16).map(|i| (i % 11) as f32 / 11.0).collect();
    let valid_path = dir.join("valid.safetensors");
    common::write_batch(&valid_path, &images, &[2, 3, 16, 16], &[1, 3]);
    let valid = std::fs::read(&valid_path).unwrap();
    let gpu = gpu();
    fuzz("batch", &valid, &dir.join("b.safetensors"), 3, |path| {
        let _ = read_batch(&gpu, &path.to_string_lossy());
    });
}

#[test]
fn resume_loader_never_panics() {
    let dir = common::workdir("resume");
    let gpu = gpu();
    let model = common::write_tiny_backbone(&dir);
    let out = dir.join("run.safetensors").to_string_lossy().into_owned();
    let cfg = TrainConfig {
        model,
        data: dir.clone(),
        val: None,
        root: None,
        train_on_val: false,
        out: out.clone(),
        num_prompts: 3,
        depth: Depth::Layers(2),
        pool: vpt_wgsl::model::vpt::Pool::Cls,
        epochs: 2,
        batch: 4,
        base_lr: 1.0,
        warmup_epochs: 0,
        optimizer: Optimizer::adamw(0.0),
        seed: 0,
        img_size: None,
        flip: false,
        prompt_dropout: 0.0,
        norm: None,
        num_heads: None,
        resume: true,
        force: false,
        plan: Default::default(),
        precision: Default::default(),
        method: vpt_wgsl::model::methods::method::Method::prompt(),
    };
    let settings = run_settings(&cfg, "backbone", "data");
    let task_file = TaskFile { task: new_task(&gpu, &common::tiny_config(), 2, 3, 4, cfg.pool, 1).unwrap(), ..TaskFile::read(&gpu, &valid_task(&gpu, &dir).to_string_lossy()).unwrap() };
    let schedule = WarmupCosine { base_lr: 0.1, warmup_steps: 0, total_steps: 10 };
    let new_trainer = || Trainer::new(&gpu, &task_file.task, cfg.optimizer, schedule).unwrap();
    // A valid resume state, as `vpt train` leaves it after an epoch.
    let state: Vec<(String, vpt_wgsl::Tensor)> = new_trainer().state_tensors().into_iter().enumerate().map(|(i, t)| (format!("optimizer.{i}"), t)).collect();
    let meta = [("epochs_done", "1"), ("step", "3"), ("settings", &serde_json::to_string(&settings).unwrap())].map(|(k, v)| (k.to_string(), v.to_string()));
    let resume = vpt_wgsl::train::outputs::resume_path(&out);
    task_file.write(&resume, &state, &meta).unwrap();
    let valid = std::fs::read(&resume).unwrap();
    // The valid file itself restores: the harness does not refuse everything.
    let files = RunFiles::claim(&out, &[], true, false).unwrap();
    assert_eq!(restore(&files, &settings, &task_file, &mut new_trainer()).unwrap(), 1, "the unmutated resume state must restore");
    drop(files);
    fuzz("resume", &valid, Path::new(&resume), 4, |_| {
        let files = RunFiles::claim(&out, &[], true, false).unwrap();
        let _ = restore(&files, &settings, &task_file, &mut new_trainer());
    });
}

/// One mutation of an image file's bytes: cut short, bits flipped, a run zeroed, bytes appended.
fn mutate_image(valid: &[u8], rng: &mut u64) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    match next_u64(rng) % 4 {
        0 => bytes.truncate(next_u64(rng) as usize % valid.len()),
        1 => {
            for _ in 0..1 + next_u64(rng) % 4 {
                let at = next_u64(rng) as usize % bytes.len();
                bytes[at] ^= 1 << (next_u64(rng) % 8);
            }
        }
        2 => {
            let at = next_u64(rng) as usize % bytes.len();
            let end = (at + 1 + next_u64(rng) as usize % 32).min(bytes.len());
            bytes[at..end].fill(0);
        }
        _ => bytes.extend(std::iter::repeat_n(0x5A, 1 + next_u64(rng) as usize % 64)),
    }
    bytes
}

#[test]
fn image_decoding_never_panics_and_scan_and_load_agree() {
    let dir = common::workdir("images");
    let img = image::RgbImage::from_fn(24, 20, |x, y| image::Rgb([(x * 10) as u8, (y * 12) as u8, ((x + y) * 5) as u8]));
    let class = dir.join("data").join("c");
    std::fs::create_dir_all(&class).unwrap();
    let mut rng = 5u64;
    let mut panics = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (ext, format) in [("png", image::ImageFormat::Png), ("jpg", image::ImageFormat::Jpeg)] {
        let mut valid = std::io::Cursor::new(Vec::new());
        img.write_to(&mut valid, format).unwrap();
        let valid = valid.into_inner();
        for case in 0..cases() {
            let path = class.join(format!("x.{ext}"));
            std::fs::write(&path, mutate_image(&valid, &mut rng)).unwrap();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                // What the scan accepts, the loader must load: no file may pass the scan and
                // then fail in the middle of an epoch.
                let scanned = ImageFolder::scan(&dir.join("data")).map(|f| f.samples.len()).unwrap_or(0);
                let loaded = load_image(&path, Transform::Eval { size: 16, resize: 18 }, Normalization::IMAGENET, &mut 0);
                if scanned == 1 {
                    if let Err(e) = loaded {
                        panic!("passed the scan, failed to load: {e}");
                    }
                }
            }));
            if let Err(e) = outcome {
                let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                panics.push(format!("{ext} case {case}: {msg}"));
            }
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::panic::set_hook(hook);
    assert!(panics.is_empty(), "{} mutated images broke the scan or the loader:\n{}", panics.len(), panics.iter().take(5).cloned().collect::<Vec<_>>().join("\n"));
}

/// `bytes` with a few bytes flipped, cut short, or with bytes inserted.
fn mutate_bytes(valid: &[u8], rng: &mut u64) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for _ in 0..1 + (next_u64(rng) % 4) {
        let at = (next_u64(rng) as usize) % bytes.len().max(1);
        match next_u64(rng) % 4 {
            0 => bytes.truncate(at),
            1 if !bytes.is_empty() => bytes[at] ^= 1 << (next_u64(rng) % 8),
            2 if !bytes.is_empty() => bytes[at] = *pick(&[0u8, 0x7f, 0x80, 0xff, b'(', b'R', b'Q', b'c', b'.'], rng),
            _ => bytes.insert(at.min(bytes.len()), (next_u64(rng) % 256) as u8),
        }
    }
    bytes
}

/// The parts of a published checkpoint a damaged file reaches: the pickle of a `.pth` (and the
/// tensors it describes, views of its storages) and an `.npz`'s `.npy` arrays. Inside their zip
/// archives a flipped byte fails the entry's CRC, so the parsers get mutated bytes directly.
#[test]
fn published_layouts_never_panic() {
    use std::io::Read;
    use vpt_wgsl::io::npz::parse_npy;
    use vpt_wgsl::io::pickle::{read_torch_zip, unpickle, TorchFile};
    use vpt_wgsl::model::layouts::from_torch_checkpoint;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/checkpoints");
    let entry = |file: &str, suffix: &str| -> Vec<u8> {
        let bytes = std::fs::read(fixtures.join(file)).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let name = (0..archive.len()).map(|i| archive.by_index(i).unwrap().name().unwrap().to_string()).find(|n| n.ends_with(suffix)).unwrap();
        let mut out = Vec::new();
        archive.by_name(&name).unwrap().read_to_end(&mut out).unwrap();
        out
    };
    let valid = std::fs::read(fixtures.join("mae.pth")).unwrap();
    let storages = read_torch_zip("mae.pth", &valid).unwrap().storages;
    let pickle = entry("mae.pth", "data.pkl");
    let npy = entry("google.npz", "MultiHeadDotProductAttention_1/out/kernel.npy");
    let mut rng = 17u64;
    let mut panics = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..cases() {
        let (p, n) = (mutate_bytes(&pickle, &mut rng), mutate_bytes(&npy, &mut rng));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(object) = unpickle(&p) {
                let _ = from_torch_checkpoint("mutated.pth", TorchFile { object, storages: storages.clone() });
            }
            let _ = parse_npy(&n);
        }));
        if let Err(e) = outcome {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panics.push(format!("case {case}: {msg}"));
        }
    }
    std::panic::set_hook(hook);
    assert!(panics.is_empty(), "{} of {} mutated pickles or arrays made a parser panic:\n{}", panics.len(), cases(), panics.iter().take(5).cloned().collect::<Vec<_>>().join("\n"));
}
