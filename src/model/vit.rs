//! A Vision Transformer with timm's `VisionTransformer` semantics, frozen, on the autodiff graph.
//!
//! Forward (timm names in brackets):
//!   images [B, 3, H, W] → patch embedding [patch_embed.proj] → [B, N, D], N = (H/p)·(W/p)
//!   → prepend CLS [cls_token] → + position embedding [pos_embed] → [B, 1+N, D]
//!   → L pre-norm blocks [blocks.i]:  x = x + proj(attn(norm1(x)));  x = x + fc2(gelu(fc1(norm2(x))))
//!   → final LayerNorm [norm].
//! LayerNorm eps is 1e-6, attention scores are scaled by 1/√hd, GELU is the exact erf form.
//! Every weight enters the graph as a constant, and gets no gradient, unless the tuning method
//! trains it ([`BackboneVars`], `methods/leaves.rs`).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, KeepAs, Var};
use crate::io::{HostData, TensorFile};
use crate::kernels::matmul::{DxLayout, WeightSource};
use crate::model::block::Block;
use crate::model::methods::leaves::BackboneVars;
use crate::model::methods::method::Method;
use crate::model::methods::tuned::Tuned;
use crate::model::methods::tuner::Dims;
use crate::model::plan::BlockPlan;
use crate::tensor::{DType, Tensor};

/// Shape of a ViT.
#[derive(Clone, Debug, PartialEq)]
pub struct VitConfig {
    /// D
    pub embed_dim: usize,
    /// L
    pub depth: usize,
    /// H (head width hd = D / H)
    pub num_heads: usize,
    /// p
    pub patch_size: usize,
    /// (H, W) of the images the model runs on.
    pub img_size: (usize, usize),
    pub in_chans: usize,
    /// Width of the MLP's hidden layer (4·D in every timm preset).
    pub mlp_hidden: usize,
    pub eps: f32,
}

impl VitConfig {
    /// A timm preset by name (e.g. `vit_base_patch16_224`, see [`preset`]).
    pub fn from_preset(name: &str) -> Result<VitConfig> {
        preset(name).ok_or_else(|| Error::invalid("ViT preset", format!("unknown timm preset {name:?}: names are vit_{{tiny,small,base,large,huge}}_patch{{8,14,16,32}}_{{224,384}}")))
    }
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }
    /// (rows, columns) of the patch grid: floor division, as timm's `PatchEmbed`; (0, 0) for a
    /// patch size of 0 (which [`VitConfig::validate`] refuses).
    pub fn grid(&self) -> (usize, usize) {
        let rows = self.img_size.0.checked_div(self.patch_size).unwrap_or(0);
        let cols = self.img_size.1.checked_div(self.patch_size).unwrap_or(0);
        (rows, cols)
    }
    /// Checks what timm would refuse or what would give an empty model: zero sizes, heads not
    /// dividing the width, an image smaller than a patch.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid("ViT config", msg));
        if [self.embed_dim, self.depth, self.num_heads, self.patch_size, self.in_chans, self.mlp_hidden].contains(&0) {
            return bad(format!("every size must be positive: {self:?}"));
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            return bad(format!("embed_dim {} is not a multiple of num_heads {}", self.embed_dim, self.num_heads));
        }
        let (gh, gw) = self.grid();
        if gh == 0 || gw == 0 {
            return bad(format!("image {:?} is smaller than one {}-pixel patch", self.img_size, self.patch_size));
        }
        Ok(())
    }
    pub fn num_patches(&self) -> usize {
        let (h, w) = self.grid();
        h * w
    }
}

/// timm preset names `vit_{tiny,small,base,large,huge}_patch{8,14,16,32}_{224,384}`.
pub fn preset(name: &str) -> Option<VitConfig> {
    let rest = name.strip_prefix("vit_")?;
    let (size, rest) = rest.split_once("_patch")?;
    let (patch, img) = rest.split_once('_')?;
    let (embed_dim, depth, num_heads) = match size {
        "tiny" => (192, 12, 3),
        "small" => (384, 12, 6),
        "base" => (768, 12, 12),
        "large" => (1024, 24, 16),
        "huge" => (1280, 32, 16), // head width 80
        _ => return None,
    };
    let patch_size: usize = patch.parse().ok().filter(|p| [8, 14, 16, 32].contains(p))?;
    let img: usize = img.parse().ok().filter(|s| [224, 384].contains(s))?;
    Some(VitConfig { embed_dim, depth, num_heads, patch_size, img_size: (img, img), in_chans: 3, mlp_hidden: 4 * embed_dim, eps: 1e-6 })
}

/// Weights by timm name, on the host, f32 (f16/bf16 checkpoints already widened).
pub struct StateDict {
    /// Where the weights came from, for error messages.
    pub source: String,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
    /// Tensors stored with an integer dtype, by name: never a ViT weight.
    not_float: HashMap<String, String>,
}

impl StateDict {
    /// A timm state dict from a `.safetensors` file already read (f32, f16 or bf16 storage);
    /// `StateDict::read` (native, `files.rs`) reads one from disk.
    pub fn from_file(file: TensorFile) -> Result<StateDict> {
        // A NaN weight would make every logit NaN, silently.
        for (name, t) in &file.tensors {
            if let HostData::F32(data) = &t.data {
                file.check_finite(name, data)?;
            }
        }
        let (mut tensors, mut not_float) = (HashMap::new(), HashMap::new());
        for (name, t) in file.tensors {
            match t.data {
                HostData::F32(data) => drop(tensors.insert(name, (t.shape, data))),
                HostData::I64(_) => drop(not_float.insert(name, t.stored_as)),
            }
        }
        Ok(StateDict { source: file.path, tensors, metadata: file.metadata, not_float })
    }

    pub fn from_tensors(source: &str, list: Vec<(String, Vec<usize>, Vec<f32>)>, metadata: HashMap<String, String>) -> StateDict {
        let tensors = list.into_iter().map(|(n, s, d)| (n, (s, d))).collect();
        StateDict { source: source.to_string(), tensors, metadata, not_float: HashMap::new() }
    }

    fn get(&self, name: &str) -> Result<&(Vec<usize>, Vec<f32>)> {
        if let Some(dtype) = self.not_float.get(name) {
            return Err(self.err(format!("tensor {name:?} is stored as {dtype}; expected F32, F16 or BF16")));
        }
        self.tensors.get(name).ok_or_else(|| self.err(format!("missing tensor {name:?}; is this a timm VisionTransformer checkpoint?")))
    }

    /// The shape of tensor `name`, which must have rank `rank` and no dimension 0 (`layout`
    /// says what it should look like, for the error).
    fn shape_of_rank(&self, name: &str, rank: usize, layout: &str) -> Result<&[usize]> {
        let (shape, _) = self.get(name)?;
        if shape.len() != rank || shape.contains(&0) {
            return Err(self.err(format!("tensor {name:?} has shape {shape:?}, expected {layout} with every dimension at least 1")));
        }
        Ok(shape)
    }

    /// Tensor `name`, which must have exactly `shape`.
    fn shaped(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (found, data) = self.get(name)?;
        if found != shape {
            return Err(self.err(format!("tensor {name:?} has shape {found:?}, expected {shape:?}")));
        }
        Ok(data)
    }

    pub fn err(&self, msg: String) -> Error {
        Error::Format { path: self.source.clone(), msg }
    }
}

/// How to read a checkpoint: the head count if the file does not say, and the image size to run
/// at if not the checkpoint's own (`pos_embed` is then resampled as timm does).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub num_heads: Option<usize>,
    /// How the frozen linear weights are stored on the GPU (`--precision`).
    pub precision: Precision,
    pub img_size: Option<(usize, usize)>,
    /// Where `img_size` came from, for an error about it (the setting "`img_size`", "the task
    /// t.safetensors", "the images of `batch` b.safetensors"); None: the images given.
    pub size_from: Option<String>,
    /// For training: also keep each block's linear weights transposed, where this adapter's
    /// [`DxLayout`] says the backward's dX products read them faster so (a copy of their memory).
    /// Inference, which runs no backward, and a method that trains them leave it false.
    pub dx_copies: bool,
    /// Also keep each block's frozen linear weights in a texture, where this adapter's
    /// [`WeightSource`] says the matmuls read them faster so (a copy of their memory). Left false
    /// by a method that trains them, and by default.
    pub texel_copies: bool,
}

/// How a ViT's frozen weights are stored on the GPU (`--precision f32|f16`).
///
/// f16 stores the large weights (patch embedding, and each block's qkv, proj, fc1 and fc2) as
/// f16: half their memory (ViT-B/16: 327 → 165 MiB) and half their bytes per matmul. The
/// matmuls widen each value to f32 as they read it. It also keeps the largest activations the
/// backward reads (the MLP's pre-activation, the fused attention's q, k, v, o) as f16 until the
/// backward widens them back ([`Vit::keep`], `graph/kept.rs`). Every computed activation, sum and
/// statistic stays f32, so the roundings are each weight's own (relative 2⁻¹¹ at most) and, in
/// the gradients only, each kept value's. Biases, LayerNorms, the CLS token and the position
/// embedding (0.4% of ViT-B) stay f32, as do the prompts, the head and the optimizer state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::F16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// How the large frozen weights are stored under this precision.
    pub fn weights(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| Error::invalid("precision", format!("{s:?} is not a precision; use f32 or f16")))
    }
}

/// A loaded, frozen ViT.
pub struct Vit {
    pub cfg: VitConfig,
    cls_token: Tensor,
    pos_embed: Tensor,
    patch_weight: Tensor,
    patch_bias: Tensor,
    pub(super) blocks: Vec<Block>,
    pub(super) norm: (Tensor, Tensor),
    /// How the blocks run: which attention kernel, what the backward recomputes.
    pub plan: BlockPlan,
    /// How the blocks keep their largest activations for the backward: f16 under `--precision
    /// f16` (see `graph/kept.rs`), else f32. Runs on any adapter; tests set it by hand.
    pub keep: KeepAs,
}

impl Vit {
    /// Work out the config from the tensors' shapes, check every tensor, upload.
    pub fn from_state_dict(gpu: &Gpu, sd: &StateDict, opts: &LoadOptions) -> Result<Vit> {
        for unsupported in ["reg_token", "norm_pre.weight", "fc_norm.weight"] {
            if sd.tensors.contains_key(unsupported) {
                return Err(sd.err(format!("has {unsupported:?}: ViT variants with register tokens, a pre-norm or an fc_norm are not supported")));
            }
        }
        let cfg = infer_config(sd, opts)?;
        let (d, p, c, hidden) = (cfg.embed_dim, cfg.patch_size, cfg.in_chans, cfg.mlp_hidden);
        let up = |name: &str, shape: &[usize]| -> Result<Tensor> { Tensor::from_slice(gpu, shape, sd.shaped(name, shape)?) };
        // A large frozen weight, a matmul's B operand: stored as `opts.precision` says.
        let store = |shape: &[usize], data: &[f32]| Tensor::from_slice_as(gpu, shape, data, opts.precision.weights());
        let up_weight = |name: &str, shape: &[usize]| -> Result<Tensor> { store(shape, sd.shaped(name, shape)?) };
        let pair = |prefix: &str, w: &[usize], b: &[usize]| -> Result<(Tensor, Tensor)> { Ok((up(&format!("{prefix}.weight"), w)?, up(&format!("{prefix}.bias"), b)?)) };
        // A frozen weight [out, in] the matmuls read as B, with its texels where asked for.
        let frozen = |w: &[usize], data: &[f32]| -> Result<Tensor> {
            let weight = store(w, data)?;
            if !opts.texel_copies || WeightSource::for_weight(gpu, w[0], w[1], weight.dtype()) == WeightSource::Buffer {
                return Ok(weight);
            }
            weight.with_texels()
        };
        // A block's linear weight [out, in], with its transposed copy [in, out] where asked for.
        let linear = |prefix: &str, w: &[usize], b: &[usize]| -> Result<(Tensor, Tensor)> {
            let data = sd.shaped(&format!("{prefix}.weight"), w)?;
            let mut weight = frozen(w, data)?;
            if opts.dx_copies && DxLayout::for_weight(gpu, w[0], w[1], weight.dtype()) == DxLayout::Transposed {
                weight = weight.with_transposed(frozen(&[w[1], w[0]], &transposed(data, w[0], w[1]))?)?;
            }
            Ok((weight, up(&format!("{prefix}.bias"), b)?))
        };
        let blocks = (0..cfg.depth)
            .map(|i| {
                let pre = format!("blocks.{i}");
                Ok(Block {
                    norm1: pair(&format!("{pre}.norm1"), &[d], &[d])?,
                    qkv: linear(&format!("{pre}.attn.qkv"), &[3 * d, d], &[3 * d])?,
                    proj: linear(&format!("{pre}.attn.proj"), &[d, d], &[d])?,
                    norm2: pair(&format!("{pre}.norm2"), &[d], &[d])?,
                    fc1: linear(&format!("{pre}.mlp.fc1"), &[hidden, d], &[hidden])?,
                    fc2: linear(&format!("{pre}.mlp.fc2"), &[d, hidden], &[d])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Vit {
            cls_token: up("cls_token", &[1, 1, d])?,
            pos_embed: Tensor::from_slice(gpu, &[1, 1 + cfg.num_patches(), d], &pos_embed_for(sd, &cfg)?)?,
            patch_weight: up_weight("patch_embed.proj.weight", &[d, c, p, p])?,
            patch_bias: up("patch_embed.proj.bias", &[d])?,
            blocks,
            norm: pair("norm", &[d], &[d])?,
            cfg,
            plan: BlockPlan::default(),
            keep: match opts.precision {
                Precision::F32 => KeepAs::F32,
                Precision::F16 => KeepAs::F16,
            },
        })
    }

    /// Bytes of the texels the load made of the frozen linear weights
    /// ([`LoadOptions::texel_copies`]), their transposed copies' included; 0 where it made none.
    pub fn texel_bytes(&self) -> u64 {
        let weights = self.blocks.iter().flat_map(|b| [&b.qkv.0, &b.proj.0, &b.fc1.0, &b.fc2.0]);
        weights.flat_map(|w| [w.texels(), w.transposed().and_then(Tensor::texels)]).flatten().map(|t| t.bytes()).sum()
    }

    /// Bytes of the transposed weight copies the load made for the backward
    /// ([`LoadOptions::dx_copies`]); 0 where it made none.
    pub fn transposed_copy_bytes(&self) -> u64 {
        let weights = self.blocks.iter().flat_map(|b| [&b.qkv.0, &b.proj.0, &b.fc1.0, &b.fc2.0]);
        weights.filter_map(Tensor::transposed).map(|t| t.buffer().raw().size()).sum()
    }

    /// Patch embedding, CLS token and position embedding: images [B, C, H, W] → [B, 1+N, D].
    /// With nothing here trained (VPT), nothing is recorded on the tape.
    pub fn embed(&self, g: &Graph, images: &Tensor, backbone: &BackboneVars) -> Result<Var> {
        let expected = [self.cfg.in_chans, self.cfg.img_size.0, self.cfg.img_size.1];
        if images.rank() != 4 || images.shape()[1..] != expected {
            return Err(Error::shape("vit embed", format!("images must be [B, {}, {}, {}] for this model, got {:?}", expected[0], expected[1], expected[2], images.shape())));
        }
        let v = |name: &str, t: &Tensor| backbone.var(g, name, t);
        let patches = g.patch_embed(&g.constant(images.clone()), &v("patch_embed.proj.weight", &self.patch_weight), &v("patch_embed.proj.bias", &self.patch_bias))?; // [B, N, D]
        let tokens = g.concat_tokens(&[&v("cls_token", &self.cls_token), &patches])?; // [B, 1+N, D]

        // The position embedding [1, 1+N, D] is the same for every image: add it as a bias over
        // the flattened (token, channel) axis, [B, (1+N)·D] + [(1+N)·D].
        let shape = tokens.shape().to_vec();
        let flat = g.reshape(&tokens, &[shape[0], shape[1] * shape[2]])?;
        let pos = g.reshape(&v("pos_embed", &self.pos_embed), &[shape[1] * shape[2]])?;
        g.reshape(&g.bias_add(&flat, &pos)?, &shape)
    }

    /// The device the weights live on.
    /// The sizes the tuning methods make their tensors for.
    pub fn dims(&self) -> Dims {
        Dims { depth: self.cfg.depth, width: self.cfg.embed_dim, hidden: self.cfg.mlp_hidden }
    }

    /// The backbone's leaves on `g` for a task tuned by `method` (see [`BackboneVars::new`]).
    pub fn backbone_vars(&self, g: &Graph, method: &Method, tuned: &Tuned) -> Result<BackboneVars> {
        BackboneVars::new(g, method, tuned, self.named_tensors(), self.dims())
    }

    /// What a fresh run of `method` starts from on this backbone (see [`Tuned::for_method`]).
    pub fn fresh_tuned(&self, method: &Method, seed: u64) -> Result<Tuned> {
        Tuned::for_method(method, &self.named_tensors(), self.dims(), self.gpu(), seed)
    }

    /// [`Vit::fresh_tuned`] without blocking (in a browser).
    pub async fn fresh_tuned_async(&self, method: &Method, seed: u64) -> Result<Tuned> {
        Tuned::for_method_async(method, &self.named_tensors(), self.dims(), self.gpu(), seed).await
    }

    pub fn gpu(&self) -> &Gpu {
        self.norm.0.gpu()
    }

    /// Every backbone tensor with its timm name, in the state dict's order. `pos_embed` is the
    /// one the model runs with (resampled at load for another image size).
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut out: Vec<(String, &Tensor)> = vec![
            ("cls_token".into(), &self.cls_token),
            ("pos_embed".into(), &self.pos_embed),
            ("patch_embed.proj.weight".into(), &self.patch_weight),
            ("patch_embed.proj.bias".into(), &self.patch_bias),
        ];
        for (i, b) in self.blocks.iter().enumerate() {
            for (part, (w, bias)) in [("norm1", &b.norm1), ("attn.qkv", &b.qkv), ("attn.proj", &b.proj), ("norm2", &b.norm2), ("mlp.fc1", &b.fc1), ("mlp.fc2", &b.fc2)] {
                out.push((format!("blocks.{i}.{part}.weight"), w));
                out.push((format!("blocks.{i}.{part}.bias"), bias));
            }
        }
        out.push(("norm.weight".into(), &self.norm.0));
        out.push(("norm.bias".into(), &self.norm.1));
        out
    }
}

impl StateDict {
    /// The ViT these weights make, as [`Vit::from_state_dict`] would load it with `opts`: an
    /// error unless they are a timm VisionTransformer's whose heads are known.
    pub fn config(&self, opts: &LoadOptions) -> Result<VitConfig> {
        infer_config(self, opts)
    }
}

/// D, p, C, L, hidden from the tensors; H from the options, the file, or its preset; image size
/// from the options or the checkpoint's own position grid.
fn infer_config(sd: &StateDict, opts: &LoadOptions) -> Result<VitConfig> {
    let cls_shape = sd.shape_of_rank("cls_token", 3, "[1, 1, D]")?;
    let patch_shape = sd.shape_of_rank("patch_embed.proj.weight", 4, "[D, C, p, p]")?;
    let pos_shape = sd.shape_of_rank("pos_embed", 3, "[1, 1 + patches, D]")?;
    if patch_shape[2] != patch_shape[3] {
        return Err(sd.err(format!("tensor \"patch_embed.proj.weight\" has shape {patch_shape:?}: its patches must be square [D, C, p, p]")));
    }
    let embed_dim = cls_shape[2];
    let depth = (0..).take_while(|i| sd.tensors.contains_key(&format!("blocks.{i}.norm1.weight"))).count();
    if depth == 0 {
        return Err(sd.err("no transformer blocks (blocks.0.norm1.weight is missing)".into()));
    }
    let fc1_shape = sd.shape_of_rank("blocks.0.mlp.fc1.weight", 2, "[hidden, D]")?;
    let num_heads = match (opts.num_heads, heads_from_metadata(sd)) {
        (Some(asked), Ok(stated)) if asked != stated => {
            return Err(Error::invalid("num_heads", format!("{asked} contradicts the {stated} heads {} states; leave `num_heads` out", sd.source)));
        }
        (Some(asked), _) => asked,
        (None, stated) => stated?,
    };
    if num_heads == 0 || embed_dim % num_heads != 0 {
        return Err(sd.err(format!("num_heads = {num_heads} does not divide the embedding width {embed_dim}")));
    }
    let patch_size = patch_shape[2];
    let old_grid = checkpoint_grid(sd, pos_shape[1], patch_size, opts.img_size)?;
    let img_size = opts.img_size.unwrap_or((old_grid.0 * patch_size, old_grid.1 * patch_size));
    if !img_size.0.is_multiple_of(patch_size) || !img_size.1.is_multiple_of(patch_size) || img_size.0 == 0 || img_size.1 == 0 {
        let msg = format!("{}×{} is not a positive multiple of this backbone's patch size {patch_size}", img_size.0, img_size.1);
        return Err(match opts.img_size {
            // Asked for by the user (--img-size), or by the images given (a batch, a task's size).
            Some(_) => Error::invalid(format!("image size ({})", opts.size_from.as_deref().unwrap_or("of the images given")), format!("{msg} (the backbone {})", sd.source)),
            None => sd.err(format!("its own image size {msg}")),
        });
    }
    let cfg = VitConfig { embed_dim, depth, num_heads, patch_size, img_size, in_chans: patch_shape[1], mlp_hidden: fc1_shape[0], eps: 1e-6 };
    cfg.validate().map_err(|e| sd.err(e.to_string()))?;
    Ok(cfg)
}

fn heads_from_metadata(sd: &StateDict) -> Result<usize> {
    if let Some(h) = sd.metadata.get("num_heads") {
        return h.parse().map_err(|_| sd.err(format!("__metadata__ num_heads = {h:?} is not a number")));
    }
    if let Some(cfg) = sd.metadata.get("preset").and_then(|p| preset(p)) {
        return Ok(cfg.num_heads);
    }
    Err(sd.err("the number of attention heads is unknown: the file's __metadata__ has neither \"num_heads\" nor a \"preset\"; pass it explicitly (`num_heads` or a preset name)".into()))
}

/// The position grid the checkpoint was trained at, from (in order) its metadata "grid" = "HxW",
/// its metadata "img_size" = "H,W" with the patch size, a square grid, or, for a non-square grid
/// the file does not describe, the grid of the requested image size if it has as many positions.
fn checkpoint_grid(sd: &StateDict, pos_tokens: usize, patch: usize, wanted: Option<(usize, usize)>) -> Result<(usize, usize)> {
    let patches = pos_tokens.checked_sub(1).ok_or_else(|| sd.err("pos_embed has no tokens".into()))?;
    if patches == 0 {
        return Err(sd.err("tensor \"pos_embed\" holds the class token's position alone, none for the patches: not a ViT checkpoint (or one cut short)".into()));
    }
    let pair = |text: &str, sep: char| text.split_once(sep).and_then(|(h, w)| Some((h.trim().parse::<usize>().ok()?, w.trim().parse::<usize>().ok()?)));
    let described = match (sd.metadata.get("grid"), sd.metadata.get("img_size")) {
        (Some(g), _) => Some((format!("grid = {g:?}"), pair(g, 'x'))),
        (None, Some(img)) => Some((format!("img_size = {img:?}"), pair(img, ',').map(|(h, w)| (h / patch, w / patch)))),
        _ => None,
    };
    if let Some((what, grid)) = described {
        return match grid {
            Some((h, w)) if h * w == patches => Ok((h, w)),
            _ => Err(sd.err(format!("__metadata__ {what} does not match pos_embed's {patches} patch positions"))),
        };
    }
    let side = (patches as f64).sqrt().round() as usize;
    if side * side == patches {
        return Ok((side, side));
    }
    match wanted.map(|(h, w)| (h / patch, w / patch)) {
        Some((h, w)) if h * w == patches => Ok((h, w)),
        _ => Err(sd.err(format!("pos_embed has {patches} patch positions, not a square grid; add __metadata__ \"img_size\" = \"H,W\""))),
    }
}

/// The checkpoint's pos_embed, resampled to the model's grid when the image size differs.
fn pos_embed_for(sd: &StateDict, cfg: &VitConfig) -> Result<Vec<f32>> {
    let (shape, data) = sd.get("pos_embed")?;
    let old_grid = checkpoint_grid(sd, shape[1], cfg.patch_size, Some(cfg.img_size))?;
    if shape[2] != cfg.embed_dim {
        return Err(sd.err(format!("tensor \"pos_embed\" has shape {shape:?}, expected [1, {}, {}]", shape[1], cfg.embed_dim)));
    }
    if old_grid == cfg.grid() {
        return Ok(data.clone());
    }
    crate::model::pos_embed::resample_abs_pos_embed(data, old_grid, cfg.grid(), 1, cfg.embed_dim)
}

/// A row-major [rows, cols] matrix's values as [cols, rows].
fn transposed(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; data.len()];
    for (r, row) in data.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}
