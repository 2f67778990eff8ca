//! `partial-K`: every tensor of the last K blocks and the final `norm.*` (KMnP/vpt's
//! `partial-k`).

use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::Tuner;
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Partial {
    /// K ≥ 1.
    blocks: usize,
}

/// `partial-K` with K ≥ 1, or None for another part (`partial-0` is none either: the registry
/// then says which parts there are).
pub fn parse(part: &str, _options: &MethodOptions) -> Option<Result<Arc<dyn Tuner>>> {
    let blocks = part.strip_prefix("partial-")?.parse::<usize>().ok().filter(|&k| k >= 1)?;
    Some(Ok(Arc::new(Partial { blocks }) as Arc<dyn Tuner>))
}

impl Tuner for Partial {
    fn name(&self) -> String {
        format!("partial-{}", self.blocks)
    }

    fn describe(&self, _prompts: usize, _prompt_layers: usize) -> Option<String> {
        let k = self.blocks;
        Some(format!("the last {k} block{} and the final norm", if k == 1 { "" } else { "s" }))
    }

    fn trains(&self, timm_name: &str, depth: usize) -> bool {
        timm_name.starts_with("norm.") || block_index(timm_name).is_some_and(|i| i + self.blocks >= depth)
    }

    /// K above the depth would silently train every block.
    fn check_depth(&self, depth: usize) -> Result<()> {
        let k = self.blocks;
        if k > depth {
            return Err(Error::invalid(
                "method",
                format!("partial-{k} trains the last {k} blocks, and the backbone has {depth}; use partial-{depth} to train every block and the final norm, or full to train the embeddings too"),
            ));
        }
        Ok(())
    }
}

/// `blocks.7.attn.qkv.weight` → 7.
fn block_index(name: &str) -> Option<usize> {
    name.strip_prefix("blocks.")?.split('.').next()?.parse().ok()
}
