//! `prompt`: the task's prompts, VPT itself (`model/vpt.rs` puts them in the token stream).

use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::Tuner;
use crate::error::Result;

#[derive(Debug)]
pub struct Prompt;

/// `prompt`, or None for another part.
pub fn parse(part: &str, _options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    (part == "prompt").then(|| Ok(Arc::new(Prompt) as Arc<dyn Tuner>))
}

impl Tuner for Prompt {
    fn name(&self) -> String {
        "prompt".into()
    }

    fn describe(&self, prompts: usize, prompt_layers: usize) -> Option<String> {
        (prompts > 0).then(|| format!("{prompts} prompts × {prompt_layers} layers"))
    }

    fn trains_prompts(&self) -> bool {
        true
    }
}
