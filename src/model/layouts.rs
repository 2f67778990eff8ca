//! Backbones in the layouts they are published in, read into timm's names (what
//! [`Vit::from_state_dict`](super::vit::Vit::from_state_dict) takes). Core: from bytes and text;
//! `files.rs` (native) finds the layout of a path.
//!
//! - **Google's JAX `.npz`** (google-research/vision_transformer, the ViT-B/16 ImageNet-21k of
//!   the paper's Table 1): `embedding/kernel` [ph, pw, C, D], `cls`,
//!   `Transformer/posembed_input/pos_embedding`, `Transformer/encoderblock_{i}/…` and
//!   `Transformer/encoder_norm`; `head` and `pre_logits` are ignored. The heads come from the
//!   attention kernels' [D, H, hd] shape. The mapping is timm's `_load_weights`, which
//!   fixtures/generate_checkpoints.py holds our files to.
//! - **A Hugging Face hub folder** as timm's hub models ship: `config.json` (the architecture, its
//!   `model_args`, the `pretrained_cfg` with mean and std) beside `model.safetensors`.
//! - **PyTorch's `.pth`** (`torch.save`; MAE, MoCo v3, DINO): the state dict inside, read
//!   without running its pickle (`io/pickle.rs`).

use std::collections::HashMap;

use super::vit::StateDict;
use crate::error::{Error, Result};
use crate::io::npz::{read_npz, NpyArray};
use crate::io::pickle::{read_torch_zip, TorchFile, Value};
use crate::io::TensorFile;

/// A backbone file's bytes in whichever layout its name says: Google's `.npz`, a PyTorch `.pth`
/// (`.pth.tar`, `.pt`, `.bin`, `.ckpt`), else timm-named `.safetensors`. (A hub folder is a
/// folder: `files.rs` reads it.)
pub fn state_dict_from_bytes(name: &str, bytes: &[u8]) -> Result<StateDict> {
    match archive_of(name) {
        Some(Archive::Npz) => from_google_npz(name, read_npz(name, bytes)?),
        Some(Archive::Torch) => from_torch_checkpoint(name, read_torch_zip(name, bytes)?),
        None => StateDict::from_file(TensorFile::from_bytes(name, bytes)?),
    }
}

/// The zip archives a backbone is published in, which are read whole (a `.safetensors` is read
/// as its header says).
pub enum Archive {
    Npz,
    Torch,
}

/// Which archive a file's name says it is, if any.
pub fn archive_of(name: &str) -> Option<Archive> {
    let lower = name.to_lowercase();
    if lower.ends_with(".npz") {
        Some(Archive::Npz)
    } else if [".pth", ".pth.tar", ".pt", ".bin", ".ckpt"].iter().any(|e| lower.ends_with(e)) {
        Some(Archive::Torch)
    } else {
        None
    }
}

/// A tensor on the host: its shape and values.
type Host = (Vec<usize>, Vec<f32>);

/// A Google ViT `.npz`'s arrays as a timm state dict; `source` names the file in errors.
pub fn from_google_npz(source: &str, arrays: Vec<NpyArray>) -> Result<StateDict> {
    let err = |msg: String| Error::Format { path: source.to_string(), msg };
    let mut by_name: HashMap<String, Host> = HashMap::new();
    for (name, shape, values) in arrays {
        let name = name.strip_prefix("opt/target/").map(str::to_string).unwrap_or(name);
        by_name.insert(name, (shape, values));
    }
    if by_name.contains_key("Transformer/encoderblock/LayerNorm_0/scale") || by_name.contains_key("params/embedding/kernel") {
        return Err(err("is a big_vision checkpoint (its blocks stacked in one array), not google-research/vision_transformer's layout; convert it with timm to .safetensors first".into()));
    }
    let mut npz = Npz { source, arrays: by_name, used: Vec::new() };
    let mut out = Vec::new();
    let kernel = npz.take("embedding/kernel", 4)?; // [ph, pw, C, D] → [D, C, ph, pw]
    out.push(("patch_embed.proj.weight".to_string(), permute(&kernel, [3, 2, 0, 1])));
    out.push(npz.renamed("embedding/bias", "patch_embed.proj.bias", 1)?);
    out.push(npz.renamed("cls", "cls_token", 3)?);
    out.push(npz.renamed("Transformer/posembed_input/pos_embedding", "pos_embed", 3)?);
    out.push(npz.renamed("Transformer/encoder_norm/scale", "norm.weight", 1)?);
    out.push(npz.renamed("Transformer/encoder_norm/bias", "norm.bias", 1)?);
    let depth = (0..).take_while(|i| npz.arrays.contains_key(&format!("Transformer/encoderblock_{i}/LayerNorm_0/scale"))).count();
    if depth == 0 {
        return Err(err("has no Transformer/encoderblock_0: not a ViT in google-research/vision_transformer's layout".into()));
    }
    let mut heads = 0;
    for i in 0..depth {
        let (block, b) = (format!("Transformer/encoderblock_{i}/"), format!("blocks.{i}."));
        let attn = format!("{block}MultiHeadDotProductAttention_1/");
        out.push(npz.renamed(&format!("{block}LayerNorm_0/scale"), &format!("{b}norm1.weight"), 1)?);
        out.push(npz.renamed(&format!("{block}LayerNorm_0/bias"), &format!("{b}norm1.bias"), 1)?);
        out.push(npz.renamed(&format!("{block}LayerNorm_2/scale"), &format!("{b}norm2.weight"), 1)?);
        out.push(npz.renamed(&format!("{block}LayerNorm_2/bias"), &format!("{b}norm2.bias"), 1)?);
        // q, k, v kernels [D, H, hd] → rows of qkv.weight [3D, D]; biases [H, hd] → [3D].
        let (mut rows, mut weight, mut bias) = (0, Vec::new(), Vec::new());
        let mut d_in = 0;
        for part in ["query", "key", "value"] {
            let (shape, values) = npz.take(&format!("{attn}{part}/kernel"), 3)?;
            (d_in, heads) = (shape[0], shape[1]);
            let d_out = shape[1] * shape[2];
            weight.extend(permute(&(vec![d_in, d_out], values), [1, 0]).1);
            rows += d_out;
            bias.extend(npz.take(&format!("{attn}{part}/bias"), 2)?.1);
        }
        out.push((format!("{b}attn.qkv.weight"), (vec![rows, d_in], weight)));
        out.push((format!("{b}attn.qkv.bias"), (vec![rows], bias)));
        // out kernel [H, hd, D] → proj.weight [D, H·hd].
        let k = npz.take(&format!("{attn}out/kernel"), 3)?;
        let (h, hd, d) = (k.0[0], k.0[1], k.0[2]);
        let proj = permute(&(vec![h * hd, d], k.1), [1, 0]);
        out.push((format!("{b}attn.proj.weight"), proj));
        out.push(npz.renamed(&format!("{attn}out/bias"), &format!("{b}attn.proj.bias"), 1)?);
        for r in 0..2 {
            let dense = format!("{block}MlpBlock_3/Dense_{r}/");
            let k = npz.take(&format!("{dense}kernel"), 2)?; // [in, out] → [out, in]
            out.push((format!("{b}mlp.fc{}.weight", r + 1), permute(&k, [1, 0])));
            out.push(npz.renamed(&format!("{dense}bias"), &format!("{b}mlp.fc{}.bias", r + 1), 1)?);
        }
    }
    npz.check_all_used()?;
    let metadata = HashMap::from([("num_heads".to_string(), heads.to_string())]);
    let list = out.into_iter().map(|(n, (s, d))| (n, s, d)).collect();
    Ok(StateDict::from_tensors(source, list, metadata))
}

/// The arrays of an .npz being mapped, and which were taken.
struct Npz<'a> {
    source: &'a str,
    arrays: HashMap<String, Host>,
    used: Vec<String>,
}

impl Npz<'_> {
    /// Array `name`, which must have rank `rank`.
    fn take(&mut self, name: &str, rank: usize) -> Result<Host> {
        let found =
            self.arrays.remove(name).ok_or_else(|| Error::Format { path: self.source.into(), msg: format!("has no array {name:?}: not a ViT in google-research/vision_transformer's layout") })?;
        if found.0.len() != rank || found.0.contains(&0) {
            return Err(Error::Format { path: self.source.into(), msg: format!("array {name:?} has shape {:?}, expected {rank} dimensions of at least 1", found.0) });
        }
        self.used.push(name.to_string());
        Ok(found)
    }

    /// Array `name` as timm's `timm_name`, unchanged.
    fn renamed(&mut self, name: &str, timm_name: &str, rank: usize) -> Result<(String, Host)> {
        Ok((timm_name.to_string(), self.take(name, rank)?))
    }

    /// Error if an array is left that is neither mapped nor one the loader ignores (the head,
    /// the pre-logits layer): a part of the model this engine would silently leave out.
    fn check_all_used(&self) -> Result<()> {
        let ignored = |n: &str| n.starts_with("head/") || n.starts_with("pre_logits/");
        let mut left: Vec<&String> = self.arrays.keys().filter(|n| !ignored(n)).collect();
        left.sort();
        match left.first() {
            None => Ok(()),
            Some(_) => Err(Error::Format { path: self.source.into(), msg: format!("has arrays this ViT has no place for: {left:?} (a variant with other parts; convert it with timm)") }),
        }
    }
}

/// `tensor` with its axes in the order `axes` (as numpy's `transpose(axes)`).
fn permute<const N: usize>(tensor: &Host, axes: [usize; N]) -> Host {
    let (shape, data) = tensor;
    let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
    let strides: Vec<usize> = (0..N).map(|i| shape[i + 1..].iter().product()).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut index = [0usize; N];
    for _ in 0..data.len() {
        out.push(data[(0..N).map(|i| index[i] * strides[axes[i]]).sum::<usize>()]);
        for i in (0..N).rev() {
            index[i] += 1;
            if index[i] < out_shape[i] {
                break;
            }
            index[i] = 0;
        }
    }
    (out_shape, out)
}

/// The state dict a `torch.save` checkpoint holds, in timm's names: at the top level, or under
/// `model` (MAE) or `state_dict` (MoCo v3); DDP's `module.` and MoCo v3's `base_encoder.` taken
/// off; MoCo v3's `momentum_encoder`, `predictor` and projector `head`, and MAE's `decoder_*` and
/// `mask_token` left out. The heads are not in such a file: `num_heads` says them.
pub fn from_torch_checkpoint(source: &str, file: TorchFile) -> Result<StateDict> {
    let err = |msg: String| Error::Format { path: source.to_string(), msg };
    let Value::Dict(top) = &file.object else {
        return Err(err("holds no dict of tensors: not a saved state dict".into()));
    };
    let nested = top.iter().find_map(|(k, v)| match (k, v) {
        (Value::Str(k), Value::Dict(d)) if k == "model" || k == "state_dict" => Some(d),
        _ => None,
    });
    let dict = nested.unwrap_or(top);
    let mut list = Vec::new();
    for (key, value) in dict {
        let (Value::Str(name), Value::Tensor(t)) = (key, value) else { continue };
        let name = name.strip_prefix("module.").unwrap_or(name);
        let name = name.strip_prefix("base_encoder.").unwrap_or(name);
        let ignored = ["momentum_encoder.", "predictor.", "head.", "decoder", "mask_token"];
        if ignored.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let values = file.values(t).map_err(|why| err(format!("tensor {name:?}: {why}")))?;
        list.push((name.to_string(), t.shape.clone(), values));
    }
    if list.is_empty() {
        return Err(err("holds no tensors at its top level nor under \"model\" or \"state_dict\": not a saved state dict".into()));
    }
    Ok(StateDict::from_tensors(source, list, HashMap::new()))
}

/// A timm hub folder's weights (`model.safetensors`, read) with what its `config.json` says:
/// the heads (its `model_args`, else its architecture's preset), mean and std.
pub fn from_hub_folder(source: &str, config_json: &str, weights: TensorFile) -> Result<StateDict> {
    let err = |msg: String| Error::Format { path: format!("{source}/config.json"), msg };
    let config: serde_json::Value = serde_json::from_str(config_json).map_err(|e| err(format!("not JSON: {e}")))?;
    let architecture = config["architecture"].as_str().ok_or_else(|| err("has no \"architecture\": not a timm hub model's config".into()))?;
    let preset = architecture.split('.').next().unwrap_or(architecture);
    if !preset.starts_with("vit_") {
        return Err(err(format!("architecture {architecture:?} is not a timm VisionTransformer (vit_…)")));
    }
    let mut sd = StateDict::from_file(weights)?;
    sd.source = source.to_string();
    match config["model_args"]["num_heads"].as_u64() {
        Some(heads) => drop(sd.metadata.insert("num_heads".into(), heads.to_string())),
        None => drop(sd.metadata.insert("preset".into(), preset.to_string())),
    }
    let cfg = &config["pretrained_cfg"];
    for key in ["mean", "std"] {
        if let Some(values) = cfg[key].as_array() {
            let numbers: Option<Vec<String>> = values.iter().map(|v| v.as_f64().map(|f| f.to_string())).collect();
            let numbers = numbers.ok_or_else(|| err(format!("pretrained_cfg.{key} is not a list of numbers")))?;
            sd.metadata.insert(key.into(), numbers.join(","));
        }
    }
    Ok(sd)
}

#[cfg(test)]
mod tests {
    use super::permute;

    #[test]
    fn permute_is_numpy_transpose() {
        // [2, 3] → [3, 2]
        let t = (vec![2, 3], vec![0., 1., 2., 3., 4., 5.]);
        assert_eq!(permute(&t, [1, 0]), (vec![3, 2], vec![0., 3., 1., 4., 2., 5.]));
        // [1, 2, 3] with axes [2, 0, 1] → [3, 1, 2]: out[k][0][j] = in[0][j][k]
        let t = (vec![1, 2, 3], vec![0., 1., 2., 3., 4., 5.]);
        assert_eq!(permute(&t, [2, 0, 1]), (vec![3, 1, 2], vec![0., 3., 1., 4., 2., 5.]));
    }
}
