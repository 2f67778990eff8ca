//! What a task file holds besides prompts and head, for the paper's other tuning methods
//! (`method.rs`), under fixed names:
//!
//! - `adapter.{i}.down.weight` [D/R, D], `adapter.{i}.down.bias` [D/R], `adapter.{i}.up.weight`
//!   [D, D/R], `adapter.{i}.up.bias` [D]: the Pfeiffer adapter of block i (KMnP/vpt's
//!   `vit_adapter`), after the MLP and before its residual add:
//!   m = fc2(gelu(fc1(norm2(x)))); m ← m + up(gelu(down(m))); x ← x + m;
//! - `lora.{i}.qkv.a` [R, D], `lora.{i}.qkv.b` [3D, R], `__metadata__` `lora_alpha`: LoRA on
//!   block i's fused qkv linear, W ← W + (α/R)·B·A;
//! - backbone tensors under their timm names (`blocks.3.attn.qkv.bias`, `pos_embed`, …): tuned
//!   values that replace the backbone's when the task is loaded.
//!
//! The reduction R and the rank R follow from the shapes. A task without them is plain VPT.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::TensorFile;
use crate::rng;
use crate::tensor::Tensor;

/// One block's adapter: (weight, bias) of `down` and of `up`.
#[derive(Clone)]
pub struct Adapter {
    pub down: (Tensor, Tensor),
    pub up: (Tensor, Tensor),
}

/// One block's LoRA on qkv: A [R, D], B [3D, R].
#[derive(Clone)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
}

/// Adapters, LoRA and tuned backbone tensors of a task (all empty for VPT).
#[derive(Clone, Default)]
pub struct Tuned {
    /// One per block, or none.
    pub adapters: Vec<Adapter>,
    /// One per block, or none.
    pub lora: Vec<Lora>,
    /// α of W + (α/R)·B·A.
    pub lora_alpha: f32,
    /// Backbone tensors by timm name, replacing the backbone's.
    pub backbone: Vec<(String, Tensor)>,
}

/// Is `name` a backbone tensor's timm name (what a task may tune)?
pub fn is_backbone_name(name: &str) -> bool {
    ["cls_token", "pos_embed"].contains(&name) || ["patch_embed.", "blocks.", "norm."].iter().any(|p| name.starts_with(p))
}

/// Where a backbone tensor comes in timm's state dict: cls_token, pos_embed, patch_embed, the
/// blocks in order (each norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2; weight before
/// bias), the final norm. The order tuned tensors are kept, trained and written in.
pub fn state_dict_rank(name: &str) -> (usize, usize, usize) {
    const PARTS: [&str; 12] = [
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
    ];
    const EMBED: [&str; 4] = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"];
    if let Some(i) = EMBED.iter().position(|&n| n == name) {
        return (0, 0, i);
    }
    if let Some(rest) = name.strip_prefix("blocks.") {
        if let Some((i, part)) = rest.split_once('.') {
            let part = PARTS.iter().position(|&p| p == part).unwrap_or(PARTS.len());
            return (1, i.parse().unwrap_or(usize::MAX), part);
        }
    }
    (2, 0, usize::from(name != "norm.weight"))
}

impl Tuned {
    /// What a fresh run of `method` starts from on `vit`: an f32 copy of every backbone tensor
    /// it trains (the backbone itself is never changed), zero adapters, initial LoRA pairs.
    /// An error if one of those tensors is stored in f16 (`--precision f16`).
    pub fn for_method(vit: &crate::model::vit::Vit, method: &crate::model::method::Method, seed: u64) -> Result<Tuned> {
        let (depth, d) = (vit.cfg.depth, vit.cfg.embed_dim);
        method.check_depth(depth)?;
        let mut tuned = Tuned::default();
        for (name, t) in vit.named_tensors() {
            if !method.trains(&name, depth) {
                continue;
            }
            method.check_trainable(&name, t)?;
            tuned.backbone.push((name, Tensor::from_slice(t.gpu(), t.shape(), &t.to_vec()?)?));
        }
        let gpu = vit.gpu();
        if method.adapter {
            tuned.adapters = Tuned::zero_adapters(gpu, depth, d, method.adapter_reduction)?;
        }
        if method.lora {
            tuned.lora = Tuned::initial_lora(gpu, depth, d, method.lora_rank, seed)?;
            tuned.lora_alpha = method.lora_alpha.unwrap_or(method.lora_rank as f32);
        }
        Ok(tuned)
    }

    /// Every tensor, by task-file name: tuned backbone tensors in state-dict order, then
    /// adapters, then LoRA pairs.
    pub fn named(&self) -> Vec<(String, &Tensor)> {
        let mut out: Vec<(String, &Tensor)> = self.backbone.iter().map(|(n, t)| (n.clone(), t)).collect();
        for (i, a) in self.adapters.iter().enumerate() {
            for (part, t) in [("down.weight", &a.down.0), ("down.bias", &a.down.1), ("up.weight", &a.up.0), ("up.bias", &a.up.1)] {
                out.push((format!("adapter.{i}.{part}"), t));
            }
        }
        for (i, l) in self.lora.iter().enumerate() {
            out.push((format!("lora.{i}.qkv.a"), &l.a));
            out.push((format!("lora.{i}.qkv.b"), &l.b));
        }
        out
    }

    /// Is there nothing here (a plain VPT task)?
    pub fn is_empty(&self) -> bool {
        self.backbone.is_empty() && self.adapters.is_empty() && self.lora.is_empty()
    }

    /// Read what `f` holds besides prompts and head. Shapes are checked against one another
    /// here, and against the backbone by [`Tuned::check_against`].
    pub fn from_file(gpu: &Gpu, f: &TensorFile) -> Result<Tuned> {
        let up = |name: &str| -> Result<Tensor> {
            let (shape, data) = f.checked_f32(name)?;
            Tensor::from_slice(gpu, shape, data)
        };
        let mut tuned = Tuned::default();
        for i in 0.. {
            let names = ["down.weight", "down.bias", "up.weight", "up.bias"].map(|p| format!("adapter.{i}.{p}"));
            if !names.iter().any(|n| f.tensors.contains_key(n)) {
                break;
            }
            let [dw, db, uw, ub] = names.each_ref().map(|n| up(n));
            let adapter = Adapter { down: (dw?, db?), up: (uw?, ub?) };
            let (r, d) = match adapter.down.0.shape() {
                &[r, d] => (r, d),
                other => return Err(f.err(format!("tensor \"adapter.{i}.down.weight\" has shape {other:?}, expected [D/R, D]"))),
            };
            if adapter.down.1.shape() != [r] || adapter.up.0.shape() != [d, r] || adapter.up.1.shape() != [d] {
                return Err(f.err(format!(
                    "adapter {i}: down.weight {:?}, down.bias {:?}, up.weight {:?}, up.bias {:?} must be [{r}, {d}], [{r}], [{d}, {r}], [{d}]",
                    adapter.down.0.shape(),
                    adapter.down.1.shape(),
                    adapter.up.0.shape(),
                    adapter.up.1.shape()
                )));
            }
            tuned.adapters.push(adapter);
        }
        for i in 0.. {
            let (a, b) = (format!("lora.{i}.qkv.a"), format!("lora.{i}.qkv.b"));
            if !f.tensors.contains_key(&a) && !f.tensors.contains_key(&b) {
                break;
            }
            let lora = Lora { a: up(&a)?, b: up(&b)? };
            let ok = matches!((lora.a.shape(), lora.b.shape()), (&[r, _], &[_, r2]) if r == r2);
            if !ok {
                return Err(f.err(format!("LoRA {i}: {a} {:?} and {b} {:?} must be [R, D] and [3D, R]", lora.a.shape(), lora.b.shape())));
            }
            tuned.lora.push(lora);
        }
        if let Some(first) = tuned.lora.first() {
            let rank = first.a.shape()[0] as f32;
            tuned.lora_alpha = match f.metadata.get("lora_alpha") {
                Some(s) => s.parse::<f32>().ok().filter(|a| a.is_finite()).ok_or_else(|| f.err(format!("metadata lora_alpha {s:?} is not a number")))?,
                None => rank,
            };
        }
        let mut names: Vec<&String> = f.tensors.keys().filter(|n| is_backbone_name(n)).collect();
        names.sort_by_key(|n| state_dict_rank(n));
        for name in names {
            tuned.backbone.push((name.clone(), up(name)?));
        }
        Ok(tuned)
    }

    /// Zero-initialised adapters for `depth` blocks of width `d`, reduction `reduction`, as the
    /// official code initialises them (`nn.init.zeros_` on all four).
    pub fn zero_adapters(gpu: &Gpu, depth: usize, d: usize, reduction: usize) -> Result<Vec<Adapter>> {
        if reduction == 0 || d / reduction == 0 {
            return Err(Error::invalid("--adapter-reduction", format!("{reduction} leaves no width: the backbone's width {d} divided by it must be at least 1")));
        }
        let r = d / reduction;
        (0..depth).map(|_| Ok(Adapter { down: (Tensor::zeros(gpu, &[r, d])?, Tensor::zeros(gpu, &[r])?), up: (Tensor::zeros(gpu, &[d, r])?, Tensor::zeros(gpu, &[d])?) })).collect()
    }

    /// LoRA for `depth` blocks of width `d` at `rank`: A as PyTorch initialises a linear weight
    /// of fan-in D (uniform in ±1/√D, seeded), B zeros, so W is unchanged at the start.
    pub fn initial_lora(gpu: &Gpu, depth: usize, d: usize, rank: usize, seed: u64) -> Result<Vec<Lora>> {
        if rank == 0 || rank > d {
            return Err(Error::invalid("--lora-rank", format!("{rank} must be between 1 and the backbone's width {d}")));
        }
        let bound = 1.0 / (d as f64).sqrt();
        (0..depth)
            .map(|i| {
                let mut state = rng::stream_at(seed, i as u64);
                let a: Vec<f32> = (0..rank * d).map(|_| ((2.0 * rng::next_unit(&mut state) - 1.0) * bound) as f32).collect();
                Ok(Lora { a: Tensor::from_slice(gpu, &[rank, d], &a)?, b: Tensor::zeros(gpu, &[3 * d, rank])? })
            })
            .collect()
    }

    /// Check the shapes against a backbone of `depth` blocks and width `d`, and that every tuned
    /// backbone tensor exists there with the same shape (`backbone`: its tensors by name).
    pub fn check_against(&self, depth: usize, d: usize, backbone: &[(String, Vec<usize>)]) -> Result<()> {
        let op = "task";
        if !self.adapters.is_empty() && self.adapters.len() != depth {
            return Err(Error::shape(op, format!("{} adapters for a backbone of {depth} blocks: a task has one per block or none", self.adapters.len())));
        }
        if let Some(a) = self.adapters.iter().find(|a| a.down.0.shape()[1] != d) {
            return Err(Error::shape(op, format!("adapter down.weight {:?} does not match the backbone width D = {d}", a.down.0.shape())));
        }
        if !self.lora.is_empty() && self.lora.len() != depth {
            return Err(Error::shape(op, format!("{} LoRA pairs for a backbone of {depth} blocks: a task has one per block or none", self.lora.len())));
        }
        if let Some(l) = self.lora.iter().find(|l| l.a.shape()[1] != d || l.b.shape()[0] != 3 * d) {
            return Err(Error::shape(op, format!("LoRA a {:?}, b {:?} must be [R, {d}] and [{}, R]", l.a.shape(), l.b.shape(), 3 * d)));
        }
        for (name, t) in &self.backbone {
            match backbone.iter().find(|(n, _)| n == name) {
                Some((_, shape)) if shape[..] == *t.shape() => {}
                Some((_, shape)) => return Err(Error::shape(op, format!("tuned {name} {:?} does not match the backbone's {shape:?}", t.shape()))),
                None => return Err(Error::shape(op, format!("tuned {name} is not a tensor of this backbone"))),
            }
        }
        Ok(())
    }
}
