//! Which tensors a tuning method trains (`vpt grad --method`), named as the paper and the
//! official code (KMnP/vpt) name them, as parts joined by `+`:
//!
//! - `prompt`: the task's prompts; `linear`: the head alone (every method trains the head, so
//!   `linear+X` is X);
//! - `bias`: every backbone tensor whose timm name ends in `bias` (the official `tinytl-bias`):
//!   the patch embedding's, every LayerNorm's and linear layer's, the final norm's;
//! - `partial-K`: every tensor of the last K blocks and the final `norm.*` (the official
//!   `partial-k`);
//! - `full`: every backbone tensor (`cls_token`, `pos_embed`, `patch_embed.*`, `blocks.*`,
//!   `norm.*`);
//! - `adapter`: a Pfeiffer adapter in every block (reduction R, default 8), zero-initialised as
//!   the official code does; `lora`: LoRA on every block's qkv (rank R, α), A initialised as
//!   PyTorch initialises a linear weight, B zeros (`tuned.rs` has both).
//!
//! Combinations such as the official `prompt+bias` work. A tensor a method does not train stays
//! a graph constant: no gradient buffer, no weight-gradient kernel (see `graph/mod.rs`).

use std::str::FromStr;

use crate::error::{Error, Result};

/// What one run trains besides the head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Method {
    pub prompt: bool,
    pub bias: bool,
    /// `partial-K`: the last K blocks and the final norm.
    pub partial: Option<usize>,
    pub full: bool,
    pub adapter: bool,
    pub lora: bool,
    /// Adapters made for a task that has none: width D / `adapter_reduction`.
    pub adapter_reduction: usize,
    /// LoRA made for a task that has none: rank and α (None: α = rank).
    pub lora_rank: usize,
    pub lora_alpha: Option<f32>,
}

impl Default for Method {
    fn default() -> Method {
        Method::LINEAR
    }
}

impl Method {
    /// `linear`: the head alone.
    pub const LINEAR: Method = Method { prompt: false, bias: false, partial: None, full: false, adapter: false, lora: false, adapter_reduction: 8, lora_rank: 8, lora_alpha: None };
    /// `prompt`: what `vpt train` and `vpt grad` do without `--method`.
    pub const PROMPT: Method = Method { prompt: true, ..Method::LINEAR };

    /// An error unless `t`, which this method trains as `name`, is stored in f32: `--precision
    /// f16` stores the large weights in f16, and those only frozen.
    pub fn check_trainable(&self, name: &str, t: &crate::tensor::Tensor) -> Result<()> {
        if t.dtype() == crate::tensor::DType::F16 {
            return Err(Error::invalid("--method", format!("{} trains {name}, which --precision f16 stores in f16; train it with --precision f32", self.name())));
        }
        Ok(())
    }

    /// Does the method train the backbone tensor with this timm name, in a backbone of `depth`
    /// blocks?
    pub fn trains(&self, name: &str, depth: usize) -> bool {
        if self.full {
            return true;
        }
        if self.bias && name.ends_with("bias") {
            return true;
        }
        match self.partial {
            Some(k) => name.starts_with("norm.") || block_index(name).is_some_and(|i| i + k >= depth),
            None => false,
        }
    }

    /// Does it train any backbone tensor, adapter or LoRA?
    pub fn trains_backbone(&self) -> bool {
        self.bias || self.full || self.partial.is_some() || self.adapter || self.lora
    }

    /// The name it parses from ("prompt+bias", "linear", …).
    pub fn name(&self) -> String {
        let mut parts = Vec::new();
        if self.prompt {
            parts.push("prompt".to_string());
        }
        if self.bias {
            parts.push("bias".to_string());
        }
        if let Some(k) = self.partial {
            parts.push(format!("partial-{k}"));
        }
        if self.full {
            parts.push("full".to_string());
        }
        if self.adapter {
            parts.push("adapter".to_string());
        }
        if self.lora {
            parts.push("lora".to_string());
        }
        if parts.is_empty() {
            parts.push("linear".to_string());
        }
        parts.join("+")
    }

    /// An error unless the method fits a backbone of `depth` blocks: `partial-K` with K above
    /// the depth would silently train every block.
    pub fn check_depth(&self, depth: usize) -> Result<()> {
        match self.partial {
            Some(k) if k > depth => Err(Error::invalid(
                "--method",
                format!("partial-{k} trains the last {k} blocks, and the backbone has {depth}; use partial-{depth} to train every block and the final norm, or full to train the embeddings too"),
            )),
            _ => Ok(()),
        }
    }

    /// What the method trains, for a run's header line: "5 prompts × 4 layers, every bias and
    /// the head". `prompts` and `prompt_layers` are the run's (0 where it makes none).
    pub fn describe(&self, prompts: usize, prompt_layers: usize) -> String {
        let mut parts = Vec::new();
        if self.prompt && prompts > 0 {
            parts.push(format!("{prompts} prompts × {prompt_layers} layers"));
        }
        if self.full {
            parts.push("every backbone tensor".to_string());
        } else {
            if self.bias {
                parts.push("every bias".to_string());
            }
            if let Some(k) = self.partial {
                parts.push(format!("the last {k} block{} and the final norm", if k == 1 { "" } else { "s" }));
            }
        }
        if self.adapter {
            parts.push(format!("an adapter in every block (reduction {})", self.adapter_reduction));
        }
        if self.lora {
            parts.push(format!("LoRA on every block's qkv (rank {}, α {})", self.lora_rank, self.lora_alpha.unwrap_or(self.lora_rank as f32)));
        }
        parts.push("the head".to_string());
        match parts.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => unreachable!("the head is always there"),
        }
    }
}

/// `blocks.7.attn.qkv.weight` → 7.
fn block_index(name: &str) -> Option<usize> {
    name.strip_prefix("blocks.")?.split('.').next()?.parse().ok()
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Method> {
        let bad = |why: String| Error::invalid("--method", format!("{s:?}: {why}; methods are prompt, linear, bias, partial-K (K ≥ 1), full, adapter and lora, joined by + (e.g. prompt+bias)"));
        let mut m = Method::default();
        for part in s.split('+') {
            match part {
                "prompt" => m.prompt = true,
                "linear" => {}
                "bias" => m.bias = true,
                "full" => m.full = true,
                "adapter" => m.adapter = true,
                "lora" => m.lora = true,
                other => match other.strip_prefix("partial-").map(str::parse::<usize>) {
                    Some(Ok(k)) if k >= 1 => m.partial = Some(m.partial.map_or(k, |old| old.max(k))),
                    _ => return Err(bad(format!("{other:?} is not a method"))),
                },
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_pick_the_tensors_the_official_code_trains() {
        let names = [
            "cls_token",
            "pos_embed",
            "patch_embed.proj.weight",
            "patch_embed.proj.bias",
            "blocks.0.norm1.weight",
            "blocks.0.attn.qkv.bias",
            "blocks.2.mlp.fc2.weight",
            "blocks.2.norm2.bias",
            "norm.weight",
            "norm.bias",
        ];
        let picked = |m: &str| -> Vec<&str> {
            let m: Method = m.parse().unwrap();
            names.iter().copied().filter(|n| m.trains(n, 3)).collect()
        };
        assert_eq!(picked("bias"), ["patch_embed.proj.bias", "blocks.0.attn.qkv.bias", "blocks.2.norm2.bias", "norm.bias"]);
        assert_eq!(picked("partial-1"), ["blocks.2.mlp.fc2.weight", "blocks.2.norm2.bias", "norm.weight", "norm.bias"]);
        assert_eq!(picked("partial-3"), ["blocks.0.norm1.weight", "blocks.0.attn.qkv.bias", "blocks.2.mlp.fc2.weight", "blocks.2.norm2.bias", "norm.weight", "norm.bias"]);
        assert_eq!(picked("full").len(), names.len());
        assert!(picked("prompt").is_empty() && picked("linear").is_empty());
        for name in ["prompt", "linear", "bias", "partial-2", "full", "prompt+bias", "prompt+partial-1", "adapter", "lora", "bias+lora"] {
            assert_eq!(name.parse::<Method>().unwrap().name(), name);
        }
        assert_eq!("linear+bias".parse::<Method>().unwrap().name(), "bias");
        let described = |m: &str, prompts: usize, layers: usize| m.parse::<Method>().unwrap().describe(prompts, layers);
        assert_eq!(described("linear", 0, 0), "the head");
        assert_eq!(described("prompt", 5, 3), "5 prompts × 3 layers and the head");
        assert_eq!(described("full", 0, 0), "every backbone tensor and the head");
        assert_eq!(described("prompt+bias+partial-1", 2, 1), "2 prompts × 1 layers, every bias, the last 1 block and the final norm and the head");
        assert!("partial-3".parse::<Method>().unwrap().check_depth(3).is_ok());
        let err = "partial-4".parse::<Method>().unwrap().check_depth(3).unwrap_err().to_string();
        assert!(err.contains("--method") && err.contains("partial-4") && err.contains("has 3"), "{err}");
        assert_eq!(described("lora", 0, 0), "LoRA on every block's qkv (rank 8, α 8) and the head");
        for bad in ["partial-0", "partial-x", "biases", "", "loras"] {
            let err = bad.parse::<Method>().unwrap_err().to_string();
            assert!(err.contains("--method"), "{err}");
        }
    }
}
