//! `bias`: every backbone tensor whose timm name ends in `bias` (KMnP/vpt's `tinytl-bias`): the
//! patch embedding's, every LayerNorm's and linear layer's, the final norm's.

use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::Tuner;
use crate::error::Result;

#[derive(Debug)]
pub struct Bias;

/// `bias`, or None for another part.
pub fn parse(part: &str, _options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    (part == "bias").then(|| Ok(Arc::new(Bias) as Arc<dyn Tuner>))
}

impl Tuner for Bias {
    fn name(&self) -> String {
        "bias".into()
    }

    fn describe(&self, _prompts: usize, _prompt_layers: usize) -> Option<String> {
        Some("every bias".into())
    }

    fn trains(&self, timm_name: &str, _depth: usize) -> bool {
        timm_name.ends_with("bias")
    }
}
