//! `vpt convert`: a backbone in a published layout written as timm-named `.safetensors`.

use crate::cli::args::commands::ConvertArgs;
use crate::cli::settings::text;
use vpt_wgsl::train::outputs::check_new_output;
use vpt_wgsl::Result;

pub fn run(a: &ConvertArgs) -> Result<()> {
    let (model, out) = (text(&a.model), text(&a.output.out));
    check_new_output("out", &out, &[("model", &model)], a.output.force)?;
    println!("{}", vpt_wgsl::model::files::convert(&model, &out, a.num_heads)?);
    Ok(())
}
