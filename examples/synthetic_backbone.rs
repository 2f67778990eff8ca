//! Write a timm ViT checkpoint with the seeded synthetic weights (`model::synthetic`), for trying
//! `vpt train` at full size where no pretrained weights can be downloaded:
//!
//! ```sh
//! cargo run --release --example synthetic_backbone -- vit_base_patch16_224 vit_b16_synthetic.safetensors
//! ```
//!
//! The weights are random (no pretraining): good for speed and memory, not for accuracy.

use vpt_wgsl::io::write_f32_tensors;
use vpt_wgsl::model::synthetic::synthetic_vit_state_dict;
use vpt_wgsl::model::vit::VitConfig;
use vpt_wgsl::train::outputs::check_new_output;
use vpt_wgsl::Result;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [preset, out] = &args[..] else {
        eprintln!("usage: synthetic_backbone PRESET OUT.safetensors   (PRESET: e.g. vit_base_patch16_224)");
        std::process::exit(2);
    };
    check_new_output("OUT", out, &[], false)?;
    let cfg = VitConfig::from_preset(preset)?;
    let tensors = synthetic_vit_state_dict(&cfg, 0, 1234);
    let list: Vec<(&str, &[usize], &[f32])> = tensors.iter().map(|(n, s, d)| (n.as_str(), &s[..], &d[..])).collect();
    let meta = [("preset", preset.as_str()), ("mean", "0.5,0.5,0.5"), ("std", "0.5,0.5,0.5")].map(|(k, v)| (k.to_string(), v.to_string())).into();
    write_f32_tensors(out, &list, meta)?;
    println!("{preset} with synthetic weights → {out}");
    Ok(())
}
