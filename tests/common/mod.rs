//! What several test files share: the one tiny ViT they all run, as a config, a state dict, a
//! loaded model and a checkpoint file. (Each test file compiles this module on its own and uses
//! part of it, hence the `dead_code` allowance.)
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vpt_wgsl::io::write_f32_tensors;
use vpt_wgsl::model::synthetic::synthetic_vit_state_dict;
use vpt_wgsl::model::vit::{LoadOptions, StateDict, Vit, VitConfig};
use vpt_wgsl::Gpu;

/// D, the width.
pub const D: usize = 24;
/// H, the heads (head width 8).
pub const HEADS: usize = 3;
/// L, the blocks.
pub const DEPTH: usize = 3;
pub const PATCH: usize = 4;
/// Images are IMG×IMG: a 4×4 grid of patches, 17 tokens with CLS.
pub const IMG: usize = 16;
/// The seed of its synthetic weights.
pub const SEED: u64 = 7;

/// The tiny ViT's shape: timm's layout at toy sizes, MLP 4·D.
pub fn tiny_config() -> VitConfig {
    VitConfig { embed_dim: D, depth: DEPTH, num_heads: HEADS, patch_size: PATCH, img_size: (IMG, IMG), in_chans: 3, mlp_hidden: 4 * D, eps: 1e-6 }
}

/// Its metadata: the head count (which a state dict cannot show), and the normalisation its
/// images get (so `vpt train` needs no --mean/--std).
fn tiny_metadata() -> HashMap<String, String> {
    [("num_heads", HEADS.to_string().as_str()), ("mean", "0.5,0.5,0.5"), ("std", "0.25,0.25,0.25")].map(|(k, v)| (k.to_string(), v.to_string())).into()
}

/// Its weights, with timm names, from the seeded synthetic generator.
pub fn tiny_state_dict() -> StateDict {
    StateDict::from_tensors("tiny test ViT", synthetic_vit_state_dict(&tiny_config(), 0, SEED), tiny_metadata())
}

/// The tiny ViT on `gpu`.
pub fn tiny_vit(gpu: &Gpu) -> Vit {
    Vit::from_state_dict(gpu, &tiny_state_dict(), &LoadOptions::default()).unwrap()
}

/// The tiny ViT as a checkpoint file `dir/backbone.safetensors`; returns its path.
pub fn write_tiny_backbone(dir: &Path) -> String {
    let tensors = synthetic_vit_state_dict(&tiny_config(), 0, SEED);
    let list: Vec<(&str, &[usize], &[f32])> = tensors.iter().map(|(n, s, d)| (n.as_str(), &s[..], &d[..])).collect();
    let path = dir.join("backbone.safetensors").to_string_lossy().into_owned();
    write_f32_tensors(&path, &list, tiny_metadata()).unwrap();
    path
}

/// The classes of [`image_folder`].
pub const CLASSES: [&str; 3] = ["circle", "cross", "stripes"];

/// A fresh, empty folder for one test.
pub fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vpt-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 3 classes × `per_class` 20×20 PNGs with a class-dependent pattern and per-image noise.
pub fn image_folder(dir: &Path, per_class: usize) -> PathBuf {
    let root = dir.join("images");
    for (c, class) in CLASSES.iter().enumerate() {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(20, 20, |x, y| {
                let (fx, fy) = (x as f32 - 10.0, y as f32 - 10.0);
                let on = match c {
                    0 => (fx * fx + fy * fy).sqrt() < 6.0,
                    1 => (fx.abs() < 2.0) || (fy.abs() < 2.0),
                    _ => (y / 3) % 2 == 0,
                };
                let noise = ((x * 31 + y * 17 + i as u32 * 97) % 40) as u8;
                let v = if on { 200 + noise / 2 } else { noise };
                image::Rgb([v, v / 2 + (c as u8) * 10, 255 - v])
            });
            img.save(root.join(class).join(format!("{i:03}.png"))).unwrap();
        }
    }
    root
}

/// A batch file as `vpt grad` / `vpt forward` read it (and fixtures/generate_vit.py writes it):
/// `images` f32 of `shape` [B, 3, H, W], `labels` i64 [B].
pub fn write_batch(path: &Path, images: &[f32], shape: &[usize], labels: &[i64]) {
    let label_bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let views = vec![
        ("images".to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), bytemuck::cast_slice(images)).unwrap()),
        ("labels".to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![labels.len()], &label_bytes).unwrap()),
    ];
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}
