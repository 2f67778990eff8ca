//! Synthetic ViT weights from a seeded, counter-based hash, bit-identical to
//! `fixtures/vit_common.py`.
//!
//! ViT-B/16 weights are 344 MB and are never committed; the fixtures and the tests generate them
//! instead. Every element is a pure function of (tensor name, element index, seed):
//!
//! ```text
//! key = FNV-1a-64(UTF-8 bytes of name) XOR seed
//! x   = key + (i + 1) * 0x9E3779B97F4A7C15           element i, 0-based, row-major
//! z   = splitmix64 finalizer of x:
//!         z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
//!         z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//!         z =  z ^ (z >> 31)
//! u   = (z >> 40) / 2^24                              in [0, 1): 24 bits, exact in f32
//! r   = 2u - 1                                        in [-1, 1): exact in f32
//! ```
//!
//! All integer arithmetic wraps modulo 2^64. FNV-1a-64 starts at 0xCBF29CE484222325 and for each
//! byte b does h = (h XOR b) * 0x100000001B3.
//!
//! The stored value is r scaled by a rule chosen from the name (and shape), in f32 exactly as the
//! Python side does it: the scale is computed in f64 and rounded to f32 once, multiplied with r
//! in f32, and LayerNorm weights then add 1.0 in f32. First match wins, on the last dot-separated
//! component `leaf` of the name and the one before it, `module`:
//!
//! | name                                   | value                  |                              |
//! |----------------------------------------|------------------------|------------------------------|
//! | leaf `bias`                            | 0.02·r                 | every bias, LayerNorm's too  |
//! | leaf `cls_token` or `pos_embed`        | 0.02·r                 |                              |
//! | leaf `weight`, `module` contains norm  | 1 + 0.1·r              | LayerNorm weights            |
//! | leaf `images`                          | √3·r                   | variance 1, like normalised images |
//! | leaf `prompts`                         | √(3/D)·r, D = last dim | ViT-B/16: VPT's xavier value 1/16 |
//! | anything else (matrices, conv kernels) | √(3/fan_in)·r          | fan_in = ∏ shape[1..] (≥ 1): variance 1/fan_in |
//!
//! So nothing is zero- or one-initialised, and activations stay well scaled (a value is exactly 0
//! only where the hash gives r = 0, about once in 2^24 elements: 5 times in ViT-B/16).

use crate::hash::fnv1a64;
use crate::model::vit::VitConfig;

/// The per-tensor key: FNV-1a-64 of the name, XOR the seed.
fn tensor_key(name: &str, seed: u64) -> u64 {
    fnv1a64(name.as_bytes()) ^ seed
}

/// r ∈ [−1, 1) for element `index` of the tensor with key `key`.
fn uniform_from_key(key: u64, index: u64) -> f32 {
    let z = crate::rng::stream_at(key, index);
    // The top 24 bits are exact in f32, and so are u = k / 2^24 and 2u − 1.
    let u = (z >> 40) as f32 / (1u32 << 24) as f32;
    2.0 * u - 1.0
}

/// The raw hash value r ∈ [−1, 1) of element `index` (row-major) of tensor `name`, before any
/// scaling.
pub fn hash_uniform(name: &str, index: u64, seed: u64) -> f32 {
    uniform_from_key(tensor_key(name, seed), index)
}

/// How a tensor's raw values r are scaled (see the module docs for which name gets which).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// 0.02·r: biases, `cls_token`, `pos_embed`.
    Small,
    /// 1 + 0.1·r: LayerNorm weights.
    NormWeight,
    /// √(3/fan_in)·r: a uniform with variance 1/fan_in.
    FanIn(usize),
}

/// The scaling rule for tensor `name` of `shape` (the table in the module docs).
pub fn init_for(name: &str, shape: &[usize]) -> Init {
    let mut parts = name.rsplit('.');
    let leaf = parts.next().unwrap_or("");
    let module = parts.next().unwrap_or("");
    if leaf == "bias" || leaf == "cls_token" || leaf == "pos_embed" {
        Init::Small
    } else if leaf == "weight" && module.contains("norm") {
        Init::NormWeight
    } else if leaf == "images" {
        Init::FanIn(1)
    } else if leaf == "prompts" {
        Init::FanIn(shape.last().copied().unwrap_or(1).max(1))
    } else {
        Init::FanIn(shape.iter().skip(1).product::<usize>().max(1))
    }
}

/// Tensor `name` of `shape`, row-major, every element from [`hash_uniform`] scaled by
/// [`init_for`]. Bit-identical to `synthetic_tensor` in `fixtures/vit_common.py`.
pub fn synthetic_tensor(name: &str, shape: &[usize], seed: u64) -> Vec<f32> {
    let key = tensor_key(name, seed);
    let numel: usize = shape.iter().product();
    let raw = (0..numel as u64).map(move |i| uniform_from_key(key, i));
    match init_for(name, shape) {
        Init::Small => {
            let scale = 0.02f64 as f32;
            raw.map(|r| r * scale).collect()
        }
        Init::NormWeight => {
            let scale = 0.1f64 as f32;
            raw.map(|r| 1.0 + r * scale).collect()
        }
        Init::FanIn(fan_in) => {
            // f64 division and sqrt are correctly rounded, as Python's; then one rounding to f32.
            let scale = (3.0 / fan_in as f64).sqrt() as f32;
            raw.map(|r| r * scale).collect()
        }
    }
}

/// timm's state-dict names and shapes of a `VisionTransformer` of shape `cfg` (CLS token, learned
/// `pos_embed` over CLS + patches, qkv with bias, LayerNorm everywhere), in timm's order, with a
/// backbone head of `num_classes` outputs (0: no `head.*` tensors).
pub fn param_shapes(cfg: &VitConfig, num_classes: usize) -> Vec<(String, Vec<usize>)> {
    let (d, p, hid) = (cfg.embed_dim, cfg.patch_size, cfg.mlp_hidden);
    let (gh, gw) = cfg.grid();
    let mut out: Vec<(String, Vec<usize>)> = vec![
        ("cls_token".into(), vec![1, 1, d]),
        ("pos_embed".into(), vec![1, 1 + gh * gw, d]),
        ("patch_embed.proj.weight".into(), vec![d, cfg.in_chans, p, p]),
        ("patch_embed.proj.bias".into(), vec![d]),
    ];
    for i in 0..cfg.depth {
        let b = format!("blocks.{i}.");
        for (suffix, shape) in [
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.proj.weight", vec![d, d]),
            ("attn.proj.bias", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
            ("mlp.fc1.weight", vec![hid, d]),
            ("mlp.fc1.bias", vec![hid]),
            ("mlp.fc2.weight", vec![d, hid]),
            ("mlp.fc2.bias", vec![d]),
        ] {
            out.push((format!("{b}{suffix}"), shape));
        }
    }
    out.push(("norm.weight".into(), vec![d]));
    out.push(("norm.bias".into(), vec![d]));
    if num_classes > 0 {
        out.push(("head.weight".into(), vec![num_classes, d]));
        out.push(("head.bias".into(), vec![num_classes]));
    }
    out
}

/// The full timm state dict of `cfg`: (name, shape, f32 values) in timm's order, every tensor from
/// [`synthetic_tensor`], with a backbone head of `num_classes` (0: none). Does not validate `cfg`
/// (see [`VitConfig::validate`]).
pub fn synthetic_vit_state_dict(cfg: &VitConfig, num_classes: usize, seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    param_shapes(cfg, num_classes)
        .into_iter()
        .map(|(name, shape)| {
            let values = synthetic_tensor(&name, &shape, seed);
            (name, shape, values)
        })
        .collect()
}

/// Position-sensitive checksum of f32 bits, Σ bits[i]·(2i + 1) mod 2^64, the same as
/// `checksum` in `fixtures/vit_common.py`: lets a test compare a whole model with one constant.
pub fn checksum(values: &[f32]) -> u64 {
    values.iter().enumerate().fold(0u64, |acc, (i, v)| acc.wrapping_add((v.to_bits() as u64).wrapping_mul(2 * i as u64 + 1)))
}

/// Σ over tensors (in [`param_shapes`] order) of checksum(t) XOR FNV-1a(name), mod 2^64,
/// generating one tensor at a time; `state_dict_checksum` in `fixtures/vit_common.py`.
pub fn state_dict_checksum(cfg: &VitConfig, num_classes: usize, seed: u64) -> u64 {
    param_shapes(cfg, num_classes).iter().fold(0u64, |acc, (name, shape)| acc.wrapping_add(checksum(&synthetic_tensor(name, shape, seed)) ^ fnv1a64(name.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every constant below was printed by `/opt/fixenv/bin/python fixtures/vit_common.py`
    // (numpy 2.3.5), the generator of the fixtures. A change on either side breaks this test.

    #[test]
    fn hash_matches_python() {
        for (name, index, seed, bits) in
            [("cls_token", 0, 0, 0xbcbaf640u32), ("cls_token", 0, 0x4d2, 0xbf3bcd9e), ("blocks.3.attn.qkv.weight", 12345, 0x4d2, 0xbe7d1d90), ("", 7, u64::MAX, 0xbeadd524)]
        {
            let v = hash_uniform(name, index, seed);
            assert_eq!(v.to_bits(), bits, "hash_uniform({name:?}, {index}, {seed:#x}) = {v}");
        }
    }

    /// (name, shape, checksum, [(index, f32 bits)]) as the Python self-test prints them.
    type TensorCheck = (&'static str, &'static [usize], u64, [(usize, u32); 4]);

    #[test]
    fn tensors_match_python() {
        let cases: [TensorCheck; 7] = [
            ("blocks.0.norm1.weight", &[768], 0x00023b6676f31db1, [(0, 0x3f8527f4), (1, 0x3f818863), (384, 0x3f76e2b5), (767, 0x3f76fa9e)]),
            ("blocks.11.mlp.fc2.weight", &[768, 3072], 0xfeb6c588054b3f00, [(0, 0xbb51f9b0), (1, 0x3c24c43c), (1179648, 0x3c0ddf28), (2359295, 0x3cb97e10)]),
            ("patch_embed.proj.weight", &[768, 3, 16, 16], 0x7116109d29dc75aa, [(0, 0xbae1d380), (1, 0x3cb0f2fc), (294912, 0x3d1225a2), (589823, 0xbd7d2b5e)]),
            ("pos_embed", &[1, 197, 768], 0x965aa22c9f42e2a4, [(0, 0xbbc55fc2), (1, 0xbbea316b), (75648, 0xbbd374c2), (151295, 0xbc2010e4)]),
            ("head.bias", &[10], 0x00000028debeac12, [(0, 0x3c683eb8), (1, 0xbc8a2082), (5, 0x3c9469f8), (9, 0xbc604aeb)]),
            ("vpt.prompts", &[12, 50, 768], 0x1276d348cd88de08, [(0, 0xbcdeeb58), (1, 0xbc85f110), (230400, 0x3c52c8a0), (460799, 0xbd438ad0)]),
            ("batch.images", &[1, 3, 224, 224], 0x9ffeab01513c6aa2, [(0, 0x3ef257fa), (1, 0x3f5fc270), (75264, 0xbf9c4a52), (150527, 0x3fa8df7d)]),
        ];
        for (name, shape, sum, picks) in cases {
            let t = synthetic_tensor(name, shape, 1234);
            for (i, bits) in picks {
                assert_eq!(t[i].to_bits(), bits, "{name}[{i}] = {}", t[i]);
            }
            assert_eq!(checksum(&t), sum, "{name}: checksum");
        }
    }

    /// The whole ViT-B/16 backbone (86M values), one tensor at a time.
    #[test]
    fn vit_base_matches_python() {
        let cfg = VitConfig::from_preset("vit_base_patch16_224").unwrap();
        cfg.validate().unwrap();
        let numel: usize = param_shapes(&cfg, 0).iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(numel, 85_798_656);
        assert_eq!(state_dict_checksum(&cfg, 0, 1234), 0x1d6d2961e11515dc);
    }

    #[test]
    fn rules_and_ranges() {
        assert_eq!(init_for("blocks.0.norm1.weight", &[8]), Init::NormWeight);
        assert_eq!(init_for("norm.weight", &[8]), Init::NormWeight);
        assert_eq!(init_for("norm.bias", &[8]), Init::Small);
        assert_eq!(init_for("pos_embed", &[1, 5, 8]), Init::Small);
        assert_eq!(init_for("blocks.0.attn.qkv.weight", &[24, 8]), Init::FanIn(8));
        assert_eq!(init_for("patch_embed.proj.weight", &[8, 3, 4, 4]), Init::FanIn(48));
        assert_eq!(init_for("vpt.prompts", &[2, 3, 8]), Init::FanIn(8));
        assert_eq!(init_for("images", &[2, 3, 4, 4]), Init::FanIn(1));
        assert!(synthetic_tensor("x", &[0, 3], 1).is_empty());
        let r: Vec<f32> = (0..10_000).map(|i| hash_uniform("range", i, 7)).collect();
        assert!(r.iter().all(|&v| (-1.0..1.0).contains(&v)));
        let mean = r.iter().map(|&v| v as f64).sum::<f64>() / r.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
    }

    #[test]
    fn config_errors() {
        assert!(VitConfig::from_preset("vit_nope").is_err());
        let mut cfg = VitConfig::from_preset("vit_tiny_patch16_224").unwrap();
        assert_eq!(cfg.grid(), (14, 14));
        cfg.num_heads = 5;
        assert!(cfg.validate().is_err());
        cfg.num_heads = 3;
        cfg.img_size = (8, 224);
        assert!(cfg.validate().is_err());
        cfg.patch_size = 0;
        assert!(cfg.validate().is_err());
        assert_eq!(cfg.grid(), (0, 0));
        assert!(param_shapes(&cfg, 1000).iter().all(|(_, s)| !s.is_empty()));
    }
}
