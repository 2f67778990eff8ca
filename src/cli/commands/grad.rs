//! `vpt grad`: one forward and backward pass; the logits, the loss and the gradients of what the
//! method trains, written to --out.

use crate::cli::args::commands::GradArgs;
use crate::cli::settings::{default_gpu, text};
use vpt_wgsl::model::{files, vpt};
use vpt_wgsl::train::outputs::check_new_output;
use vpt_wgsl::Result;

pub fn run(a: &GradArgs) -> Result<()> {
    let method = a.method.method()?;
    let out = text(&a.output.out);
    let files = a.inputs.files();
    check_new_output("out", &out, &files.each_ref().map(|(flag, path)| (*flag, path.as_str())), a.output.force)?;
    let gpu = default_gpu()?;
    let (mut vit, task, images, labels) = a.inputs.load(&gpu)?;
    vit.plan = a.plan.plan();
    let step = vpt::vpt_grad_for(&gpu, &vit, &task, &images, &labels, &method)?;
    files::write_step(&out, &step)?;
    println!("loss {:.6} → {out}", step.loss.to_scalar()?);
    Ok(())
}
