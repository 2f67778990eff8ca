//! `vpt train` in a page: the same steps as the native run (`src/train/fit.rs`), from the core's
//! pieces, on files the page read instead of a folder on disk. Same settings, same seed, same
//! code, so the same split, order, crops, initialisation and kernels: the task matches native
//! `vpt train`'s to the rounding of the adapter.
//!
//! What the native run has and a page does not: resume, the files of a run (the page offers the
//! task for download instead), Ctrl-C (closing the tab ends it).

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Function, Uint8Array};
use serde_json::json;
use vpt_wgsl::graph::Dropout;
use vpt_wgsl::io::TensorFile;
use vpt_wgsl::model::layouts::state_dict_from_bytes;
use vpt_wgsl::model::vit::{LoadOptions, Vit};
use vpt_wgsl::train::config::TrainConfig;
use vpt_wgsl::train::data::{
    augment_seed, decode_bytes, default_resize, epoch_order, is_named_as_image, list_folder, skipped_warning, split_train_val, transform_image, Normalization, Sample, Transform,
};
use vpt_wgsl::train::recipe::config_from_settings;
use vpt_wgsl::train::start::{backbone_from_state_dict, check_classes, load_options, start_run_async, RunStart};
use vpt_wgsl::train::step::{predict_batch, train_batch, EpochTally};
use vpt_wgsl::train::task::TaskFile;
use vpt_wgsl::{Error, Gpu, Result, Tensor};
use wasm_bindgen::JsValue;

use crate::page::{in_page_words, report, yield_to_page};

thread_local! {
    /// The backbone and task of the page's last finished run, for [`classify`].
    static LAST_RUN: RefCell<Option<(Vit, TaskFile)>> = const { RefCell::new(None) };
}

/// What the page gives a run.
pub struct Input {
    settings: Vec<(String, String)>,
    backbone_name: String,
    backbone: Vec<u8>,
    root: String,
    /// Path under `root` → the file's bytes.
    files: HashMap<String, Vec<u8>>,
    /// The paths, in the page's order.
    paths: Vec<String>,
}

impl Input {
    /// The page's arguments (see `lib.rs`'s `train`), checked.
    pub fn from_js(settings: &str, backbone_name: String, backbone: Vec<u8>, root: String, paths: &str, files: &js_sys::Array) -> Result<Input> {
        let settings: Vec<(String, String)> = serde_json::from_str(settings).map_err(|e| Error::invalid("recipe", format!("the page's settings are not a JSON list of [name, value] pairs: {e}")))?;
        let paths: Vec<String> = serde_json::from_str(paths).map_err(|e| Error::invalid("data", format!("the page's file list is not a JSON list of paths: {e}")))?;
        if paths.len() != files.length() as usize {
            return Err(Error::invalid("data", format!("{} paths for {} files", paths.len(), files.length())));
        }
        if paths.is_empty() {
            return Err(Error::invalid("data", format!("{root} holds no files; drop a folder with one sub-folder of images per class")));
        }
        let files = paths.iter().cloned().zip(files.iter().map(|f| Uint8Array::new(&f).to_vec())).collect();
        Ok(Input { settings, backbone_name, backbone, root, files, paths })
    }

    fn bytes_of(&self, sample: &Sample) -> &[u8] {
        let relative = sample.path.strip_prefix(&self.root).unwrap_or(&sample.path);
        self.files.get(&relative.to_string_lossy().replace('\\', "/")).map_or(&[], Vec::as_slice)
    }
}

/// The data of a run, as the native run makes it from a folder.
struct Data {
    classes: Vec<String>,
    train: Vec<Sample>,
    val: Vec<Sample>,
}

/// Decode every file once (a file that is not a complete JPEG or PNG is skipped, as natively),
/// then the classes and the seeded split.
async fn list_data(input: &Input, cfg: &TrainConfig, progress: &Function) -> Result<Data> {
    let mut verdicts = Vec::with_capacity(input.paths.len());
    for (i, path) in input.paths.iter().enumerate() {
        verdicts.push(decode_bytes(&input.files[path], is_named_as_image(path)).map(drop));
        if i % 64 == 63 {
            report(progress, &json!({"stage": "reading", "done": i + 1, "of": input.paths.len()}));
            yield_to_page().await;
        }
    }
    let listed = list_folder(&input.root, &input.paths, |i| verdicts[i].clone())?;
    check_classes(&input.root, &listed.classes)?;
    if !listed.skipped.is_empty() {
        report(progress, &json!({ "warning": in_page_words(&skipped_warning(&listed.skipped)) }));
    }
    let (train, val) = split_train_val(&listed.samples, 0.1, cfg.seed);
    if train.is_empty() {
        return Err(Error::Format { path: input.root.clone(), msg: "no training images left".into() });
    }
    Ok(Data { classes: listed.classes, train, val })
}

/// The images of `indices` (into `samples`) as one batch [B, 3, size, size], each transformed
/// with its own seed (seed, epoch, index), as the native loader does.
#[allow(clippy::too_many_arguments)]
async fn batch(gpu: &Gpu, input: &Input, samples: &[Sample], indices: &[usize], transform: Transform, norm: Normalization, seed: u64, epoch: usize) -> Result<(Tensor, Vec<u32>)> {
    let size = transform.size();
    let mut pixels = Vec::with_capacity(indices.len() * 3 * size * size);
    for &i in indices {
        let sample = &samples[i];
        let name = sample.path.display().to_string();
        let image = decode_bytes(input.bytes_of(sample), is_named_as_image(&name)).map_err(|msg| Error::Format { path: name.clone(), msg })?;
        let mut rng = augment_seed(seed, epoch, i);
        pixels.extend(transform_image(&image, transform, norm, &mut rng).map_err(|msg| Error::Format { path: name, msg })?);
    }
    yield_to_page().await;
    let labels = indices.iter().map(|&i| samples[i].label as u32).collect();
    Ok((Tensor::from_slice(gpu, &[indices.len(), 3, size, size], &pixels)?, labels))
}

/// Run the recipe; resolves to the epochs' figures and the task file's bytes.
pub async fn run(gpu: &Gpu, input: Input, progress: &Function) -> Result<JsValue> {
    let cfg = config_from_settings(&input.settings, &input.backbone_name, &input.root)?;
    let sd = state_dict_from_bytes(&input.backbone_name, &input.backbone)?;
    let (mut vit, fingerprint, ckpt_norm) = backbone_from_state_dict(gpu, &sd, &load_options(&cfg))?;
    drop(sd);
    vit.plan = cfg.plan;
    let data = list_data(&input, &cfg, progress).await?;
    let RunStart { task_file, mut trainer, lr, steps_per_epoch, warning, .. } = start_run_async(gpu, &vit, &cfg, &data.classes, &fingerprint, ckpt_norm, data.train.len()).await?;
    if let Some(warning) = warning {
        report(progress, &json!({ "warning": in_page_words(&warning) }));
    }
    let norm = task_file.norm;
    let (size, _) = vit.cfg.img_size;
    let train_tf = Transform::Train { size, resize: default_resize(size), flip: cfg.flip };
    let eval_tf = Transform::Eval { size, resize: default_resize(size) };
    let dropout = (cfg.prompt_dropout > 0.0).then_some(Dropout { p: cfg.prompt_dropout, seed: cfg.seed });
    report(progress, &json!({"stage": "training", "classes": data.classes, "train": data.train.len(), "val": data.val.len(), "steps_per_epoch": steps_per_epoch, "lr": lr, "device": gpu.describe()}));

    let mut epochs = Vec::new();
    for epoch in 0..cfg.epochs {
        let order = epoch_order(data.train.len(), true, cfg.seed, epoch);
        let mut tally = EpochTally::default();
        for (k, indices) in order.chunks(cfg.batch).enumerate() {
            let (images, labels) = batch(gpu, &input, &data.train, indices, train_tf, norm, cfg.seed, epoch).await?;
            let step = train_batch(&mut trainer, gpu, &vit, &task_file.task, &images, &labels, dropout).await?;
            if vpt_wgsl::train::step::has_diverged(step.loss, task_file.task.num_classes()) {
                return Err(Error::invalid(
                    "lr",
                    format!(
                        "training diverged at epoch {}, step {}: the loss is {}; try a lower `lr` (this run's rate was {lr:.4} = `lr` {} × batch {} / 256)",
                        epoch + 1,
                        k + 1,
                        step.loss,
                        cfg.base_lr,
                        cfg.batch
                    ),
                ));
            }
            tally.add(step, labels.len());
            report(progress, &json!({"epoch": epoch + 1, "epochs": cfg.epochs, "step": k + 1, "steps": steps_per_epoch, "loss": step.loss, "train_top1": tally.accuracy()}));
        }
        let val_top1 = validate(gpu, &input, &vit, &task_file, &data.val, eval_tf, cfg.batch).await?;
        let line = json!({"epoch": epoch + 1, "loss": tally.loss(), "train_top1": tally.accuracy(), "val_top1": val_top1});
        report(progress, &json!({"epoch_done": line}));
        epochs.push(line);
    }
    let bytes = task_file.to_bytes_async("task.safetensors", &[], &[]).await?;
    LAST_RUN.with(|r| *r.borrow_mut() = Some((vit, task_file)));
    let result = js_sys::Object::new();
    let set = |key: &str, value: JsValue| js_sys::Reflect::set(&result, &JsValue::from_str(key), &value).map(drop);
    let done = set("epochs", JsValue::from_str(&serde_json::Value::Array(epochs).to_string())).and_then(|_| set("task", Uint8Array::from(&bytes[..]).into()));
    done.map_err(|_| Error::Internal { what: "train".into(), msg: "could not build the result object".into() })?;
    Ok(result.into())
}

/// Top-1 on the validation images (NaN without any), in batches of `batch`, as natively.
async fn validate(gpu: &Gpu, input: &Input, vit: &Vit, task_file: &TaskFile, samples: &[Sample], transform: Transform, batch_size: usize) -> Result<f64> {
    if samples.is_empty() {
        return Ok(f64::NAN);
    }
    let mut hits = 0;
    let order: Vec<usize> = (0..samples.len()).collect();
    for indices in order.chunks(batch_size.max(1)) {
        let (images, labels) = batch(gpu, input, samples, indices, transform, task_file.norm, 0, 0).await?;
        let predicted = predict_batch(gpu, vit, &task_file.task, &images).await?;
        hits += predicted.iter().zip(&labels).filter(|(p, l)| **p == **l as usize).count();
    }
    Ok(hits as f64 / samples.len() as f64)
}

/// Keep a task file (`task_name`, its bytes) and the backbone it was trained on for [`classify`];
/// its class names as JSON.
pub fn load_task(gpu: &Gpu, task_name: &str, task: &[u8], backbone_name: &str, backbone: &[u8]) -> Result<String> {
    let task_file = TaskFile::from_file(gpu, &TensorFile::from_bytes(task_name, task)?)?;
    let sd = state_dict_from_bytes(backbone_name, backbone)?;
    let size = Some(format!("the task {task_name}"));
    let options = LoadOptions { img_size: Some(task_file.img_size), size_from: size, ..Default::default() };
    let (vit, fingerprint, _) = backbone_from_state_dict(gpu, &sd, &options)?;
    task_file.check_backbone(&fingerprint, task_name, backbone_name)?;
    task_file.task.check_against(&vit)?;
    let classes = serde_json::to_string(&task_file.classes).expect("strings serialise");
    LAST_RUN.with(|r| *r.borrow_mut() = Some((vit, task_file)));
    Ok(classes)
}

/// The class the last run's task gives one image.
pub async fn classify(gpu: &Gpu, name: &str, bytes: &[u8]) -> Result<String> {
    let Some((vit, task_file)) = LAST_RUN.with(|r| r.borrow_mut().take()) else {
        return Err(Error::invalid("task", "no task has been trained on this page yet; train one first"));
    };
    let outcome = classify_with(gpu, &vit, &task_file, name, bytes).await;
    LAST_RUN.with(|r| *r.borrow_mut() = Some((vit, task_file)));
    outcome
}

async fn classify_with(gpu: &Gpu, vit: &Vit, task_file: &TaskFile, name: &str, bytes: &[u8]) -> Result<String> {
    let image = decode_bytes(bytes, is_named_as_image(name)).map_err(|msg| Error::Format { path: name.to_string(), msg })?;
    let (size, _) = task_file.img_size;
    let transform = Transform::Eval { size, resize: default_resize(size) };
    let pixels = transform_image(&image, transform, task_file.norm, &mut 0).map_err(|msg| Error::Format { path: name.to_string(), msg })?;
    let images = Tensor::from_slice(gpu, &[1, 3, size, size], &pixels)?;
    let class = predict_batch(gpu, vit, &task_file.task, &images).await?[0];
    Ok(json!({"class": task_file.classes[class]}).to_string())
}
