//! `vpt forward`: the logits only, written to --out.

use crate::cli::args::commands::ForwardArgs;
use crate::cli::settings::{default_gpu, text};
use vpt_wgsl::model::vpt;
use vpt_wgsl::train::outputs::check_new_output;
use vpt_wgsl::Result;

pub fn run(a: &ForwardArgs) -> Result<()> {
    let out = text(&a.output.out);
    let files = a.inputs.files();
    check_new_output("out", &out, &files.each_ref().map(|(flag, path)| (*flag, path.as_str())), a.output.force)?;
    let gpu = default_gpu()?;
    let (vit, task, images, _) = a.inputs.load(&gpu)?;
    let logits = vpt::vpt_forward(&gpu, &vit, &task, &images)?;
    let data = logits.to_vec()?;
    vpt_wgsl::io::write_f32_tensors(&out, &[("logits", logits.shape(), &data)], Default::default())?;
    println!("logits {:?} → {out}", logits.shape());
    Ok(())
}
