//! `full`: every backbone tensor (`cls_token`, `pos_embed`, `patch_embed.*`, `blocks.*`, `norm.*`).

use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::Tuner;
use crate::error::Result;

#[derive(Debug)]
pub struct Full;

/// `full`, or None for another part.
pub fn parse(part: &str, _options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    (part == "full").then(|| Ok(Arc::new(Full) as Arc<dyn Tuner>))
}

impl Tuner for Full {
    fn name(&self) -> String {
        "full".into()
    }

    fn describe(&self, _prompts: usize, _prompt_layers: usize) -> Option<String> {
        Some("every backbone tensor".into())
    }

    fn trains(&self, _timm_name: &str, _depth: usize) -> bool {
        true
    }
}
