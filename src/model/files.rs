//! The model's files on disk (native): a checkpoint, a task's tensors, a batch, a step's
//! gradients. What their bytes mean is `vit.rs`'s and `vpt.rs`'s; this file only reads and writes.

use std::path::Path;

use super::layouts;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::{read_regular_file, read_regular_text, write_atomically, TensorFile};
use crate::model::vit::{LoadOptions, StateDict, Vit};
use crate::model::vpt::{batch_from_file, step_to_bytes, VptStep, VptTask};
use crate::tensor::Tensor;

/// The largest `.npz` or `.pth` read (Google's ViT-H/14 is about 2.5 GB).
const MAX_ARCHIVE_BYTES: u64 = 8 << 30;

impl StateDict {
    /// Read a backbone in any layout `--model` takes (`layouts.rs`): timm-named `.safetensors`
    /// (f32, f16 or bf16 storage), Google's JAX `.npz`, a Hugging Face hub folder
    /// (`config.json` + `model.safetensors`), or a PyTorch `.pth` (`.pth.tar`, `.pt`, `.bin`).
    pub fn read(path: &str) -> Result<StateDict> {
        let p = Path::new(path);
        if p.is_dir() {
            return read_hub_folder(path);
        }
        if layouts::archive_of(path).is_some() {
            let bytes = read_regular_file(p, MAX_ARCHIVE_BYTES).map_err(|why| Error::Format { path: path.into(), msg: format!("it {why}") })?;
            return layouts::state_dict_from_bytes(path, &bytes);
        }
        StateDict::from_file(TensorFile::read(path)?)
    }
}

/// A timm hub folder: `config.json` beside `model.safetensors`.
fn read_hub_folder(path: &str) -> Result<StateDict> {
    let dir = Path::new(path);
    let config = dir.join("config.json");
    let weights = dir.join("model.safetensors");
    if !config.is_file() || !weights.is_file() {
        return Err(Error::Format {
            path: path.into(),
            msg:
                "is a folder, but not a Hugging Face hub model's: it needs config.json and model.safetensors (as timm's hub models ship; a folder with only pytorch_model.bin must be converted first)"
                    .into(),
        });
    }
    let text = read_regular_text(&config, 1 << 20).map_err(|why| Error::Format { path: config.display().to_string(), msg: format!("it {why}") })?;
    layouts::from_hub_folder(path, &text, TensorFile::read(&weights)?)
}

impl Vit {
    /// Read a `.safetensors` checkpoint with timm names and upload it.
    pub fn load(gpu: &Gpu, path: &str, opts: &LoadOptions) -> Result<Vit> {
        Vit::from_state_dict(gpu, &StateDict::read(path)?, opts)
    }
}

impl VptTask {
    /// Read a task file ([`VptTask::from_file`] says what it holds).
    pub fn read(gpu: &Gpu, path: &str) -> Result<VptTask> {
        VptTask::from_file(gpu, &TensorFile::read(path)?)
    }
}

/// Read a batch file ([`batch_from_file`] says what it holds).
pub fn read_batch(gpu: &Gpu, path: &str) -> Result<(Tensor, Vec<u32>)> {
    batch_from_file(gpu, &TensorFile::read(path)?)
}

/// Write logits, loss and the gradients (the `vpt grad` output format), atomically.
pub fn write_step(path: &str, step: &VptStep) -> Result<()> {
    write_atomically(std::path::Path::new(path), &step_to_bytes(path, step)?)
}

/// `vpt convert`: the backbone at `model` (any layout `StateDict::read` takes) written to `out`
/// as timm-named `.safetensors` (f32), with its heads, and its mean and std where its source
/// named them, in the metadata, so that later commands load it directly. `num_heads`: for a
/// source that does not say. Returns a line saying what was written.
pub fn convert(model: &str, out: &str, num_heads: Option<usize>) -> Result<String> {
    let sd = StateDict::read(model)?;
    let cfg = sd.config(&LoadOptions { num_heads, ..Default::default() })?;
    let mut metadata = sd.metadata.clone();
    metadata.remove("preset");
    metadata.insert("num_heads".into(), cfg.num_heads.to_string());
    let mut names: Vec<&String> = sd.tensors.keys().collect();
    names.sort();
    let list: Vec<(&str, &[usize], &[f32])> = names.iter().map(|n| (n.as_str(), &sd.tensors[*n].0[..], &sd.tensors[*n].1[..])).collect();
    let bytes = crate::io::f32_tensors_to_bytes(out, &list, metadata)?;
    write_atomically(Path::new(out), &bytes)?;
    let (h, w) = cfg.img_size;
    Ok(format!(
        "wrote {out}: {} tensors, {:.1} MB; a ViT of width {}, {} blocks, {} heads, {}×{} patches of {h}×{w} images",
        list.len(),
        bytes.len() as f64 / 1e6,
        cfg.embed_dim,
        cfg.depth,
        cfg.num_heads,
        cfg.patch_size,
        cfg.patch_size
    ))
}
