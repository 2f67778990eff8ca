//! Backbones in the layouts they are published in (`--model`): Google's JAX `.npz`, a Hugging
//! Face hub folder, and PyTorch `.pth` files as MAE, MoCo v3 and DINO release them, each written
//! by fixtures/generate_checkpoints.py from one small timm ViT of awkward sizes (the `.npz`
//! checked there with timm's own loader). The logits of each, through a
//! task of the timm model's own head, match timm's within 1e-4; `vpt convert` writes each as
//! timm-named safetensors that give the same logits to the bit; bad files are clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use vpt_wgsl::io::TensorFile;
use vpt_wgsl::model::vit::{LoadOptions, StateDict, Vit};
use vpt_wgsl::model::vpt::{vpt_forward, Pool, VptTask};
use vpt_wgsl::{Gpu, Tensor};

mod common;

const LOGITS_TOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/checkpoints")
}

fn gpu() -> Gpu {
    Gpu::new().expect("no GPU adapter: install Mesa's lavapipe (`.ci/run` does)")
}

/// The logits of the reference images through the reference head on the backbone `sd`
/// (`num_heads` for a file that does not say them).
fn logits_of(gpu: &Gpu, sd: &StateDict, num_heads: Option<usize>) -> Vec<f32> {
    let reference = TensorFile::read(fixtures().join("reference.safetensors")).unwrap();
    let vit = Vit::from_state_dict(gpu, sd, &LoadOptions { num_heads, ..LoadOptions::default() }).unwrap_or_else(|e| panic!("{}: {e}", sd.source));
    let tensor = |name: &str| {
        let (shape, data) = reference.f32(name).unwrap();
        Tensor::from_slice(gpu, shape, data).unwrap()
    };
    let task = VptTask { prompts: None, head_weight: tensor("head.weight"), head_bias: tensor("head.bias"), pool: Pool::Cls, tuned: Default::default() };
    vpt_forward(gpu, &vit, &task, &tensor("images")).unwrap().to_vec().unwrap()
}

/// max|ours − timm| / max|timm|.
fn error_against_timm(ours: &[f32]) -> f64 {
    let reference = TensorFile::read(fixtures().join("reference.safetensors")).unwrap();
    let (_, want) = reference.f32("logits").unwrap();
    assert_eq!(ours.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    ours.iter().zip(want).fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs())) / scale
}

fn vpt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).env_remove("WGPU_BACKEND").env_remove("WGPU_ADAPTER_NAME").output().unwrap()
}

/// Each layout: the file, the heads to give (a `.pth` does not say them), and the tolerance: 1e-4,
/// but 1e-2 for MoCo v3's file, stored as f16 (each weight rounded to 2⁻¹¹, as `--precision
/// f16` rounds them; the same tolerance as there, tests/vit_pytorch.rs).
const LAYOUTS: [(&str, Option<usize>, f64); 5] =
    [("google.npz", None, LOGITS_TOL), ("hub", None, LOGITS_TOL), ("mae.pth", Some(5), LOGITS_TOL), ("mocov3.pth.tar", Some(5), 1e-2), ("dino.pth", Some(5), LOGITS_TOL)];

#[test]
fn each_layout_gives_timms_logits_and_converts_to_the_same() {
    let gpu = gpu();
    let dir = common::workdir("checkpoints");
    for (layout, heads, tolerance) in LAYOUTS {
        let path = fixtures().join(layout);
        let sd = StateDict::read(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{layout}: {e}"));
        let logits = logits_of(&gpu, &sd, heads);
        let error = error_against_timm(&logits);
        eprintln!("{layout}: logits against timm's, {error:.2e} of the largest");
        assert!(error <= tolerance, "{layout}: logits differ from timm's by {error:.2e}");

        let out = dir.join(format!("{layout}.safetensors"));
        let mut args = vec!["convert", "--model", path.to_str().unwrap(), "--out", out.to_str().unwrap()];
        if heads.is_some() {
            args.extend(["--num-heads", "5"]);
        }
        let o = vpt(&args);
        assert!(o.status.success(), "vpt convert {layout}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("5 heads"), "{}", String::from_utf8_lossy(&o.stdout));
        let converted = StateDict::read(out.to_str().unwrap()).unwrap();
        assert_eq!(converted.metadata["num_heads"], "5", "{layout}");
        assert_eq!(logits_of(&gpu, &converted, None), logits, "{layout}: the converted file gives other logits");
        // Never over a file that is there, unless asked.
        let again = vpt(&args);
        assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"), "{}", String::from_utf8_lossy(&again.stderr));
    }
    // The hub folder's config gives its mean and std (and they survive the conversion).
    let hub = StateDict::read(dir.join("hub.safetensors").to_str().unwrap()).unwrap();
    assert_eq!((hub.metadata["mean"].as_str(), hub.metadata["std"].as_str()), ("0.4,0.45,0.5", "0.2,0.25,0.3"));
    // What the loader leaves out of a .pth: MAE's decoder and mask token, MoCo v3's momentum
    // encoder, predictor and projector; and the heads are needed.
    for layout in ["mae.pth", "mocov3.pth.tar"] {
        let sd = StateDict::read(fixtures().join(layout).to_str().unwrap()).unwrap();
        let odd: Vec<&String> = sd.tensors.keys().filter(|n| n.contains("decoder") || n.contains("mask_token") || n.contains("momentum") || n.contains("predictor") || n.starts_with("head")).collect();
        assert!(odd.is_empty(), "{layout} kept {odd:?}");
    }
    let o = vpt(&["convert", "--model", fixtures().join("dino.pth").to_str().unwrap(), "--out", dir.join("no-heads.safetensors").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--num-heads"), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

/// A `.pth` whose pickle calls `os.system`: refused by name, and nothing runs.
#[test]
fn a_pickle_that_runs_a_command_is_refused_and_runs_nothing() {
    let dir = common::workdir("checkpoints-evil");
    let evil = dir.join("evil.pth");
    std::fs::copy(fixtures().join("evil.pth"), &evil).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vpt")).current_dir(&dir).args(["convert", "--model", "evil.pth", "--num-heads", "5", "--out", "x.safetensors"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("posix.system") && err.contains("was not run"), "{err}");
    assert!(!dir.join("evil-ran").exists() && !fixtures().join("evil-ran").exists(), "the pickle's command ran");
    assert!(!dir.join("x.safetensors").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Files that are not a backbone in a layout we read: an error naming the file and what it is.
#[test]
fn what_is_not_a_published_backbone_is_named() {
    let dir = common::workdir("checkpoints-bad");
    let read = |path: &Path| StateDict::read(path.to_str().unwrap()).err().unwrap_or_else(|| panic!("{} was read", path.display())).to_string();

    let pth = dir.join("mae_pretrain.pth");
    std::fs::write(&pth, b"PK\x03\x04 not really a torch zip").unwrap();
    assert!(read(&pth).contains("not a PyTorch zip checkpoint"), "{}", read(&pth));

    let not_zip = dir.join("broken.npz");
    std::fs::write(&not_zip, b"not a zip at all").unwrap();
    assert!(read(&not_zip).contains("not an .npz"), "{}", read(&not_zip));

    // An .npz that is no ViT: its missing array is named.
    let fixture = std::fs::read(fixtures().join("google.npz")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&fixture)).unwrap();
    let cut = dir.join("cut.npz");
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&cut).unwrap());
    for i in 0..archive.len() {
        let entry = archive.by_index(i).unwrap();
        if entry.name().unwrap() != "embedding/bias.npy" {
            writer.raw_copy_file(entry).unwrap();
        }
    }
    writer.finish().unwrap();
    assert!(read(&cut).contains("has no array \"embedding/bias\""), "{}", read(&cut));

    let folder = dir.join("no_config");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(fixtures().join("hub/model.safetensors"), folder.join("model.safetensors")).unwrap();
    assert!(read(&folder).contains("needs config.json and model.safetensors"), "{}", read(&folder));
    std::fs::remove_dir_all(&dir).ok();
}
