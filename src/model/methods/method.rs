//! What one run trains besides the head: `--method`, parts joined by `+` (`prompt+bias`), each
//! part one method of the registry. `linear` is the head alone: every method trains the head,
//! so `linear+X` is X.
//!
//! A tensor a method does not train stays a graph constant: no gradient buffer, no
//! weight-gradient kernel (see `graph/mod.rs`).

use std::str::FromStr;
use std::sync::Arc;

use super::options::MethodOptions;
use super::tuner::Tuner;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// The methods of one run, in registry order; none is the linear probe.
#[derive(Clone, Debug, Default)]
pub struct Method {
    parts: Vec<Arc<dyn Tuner>>,
}

impl PartialEq for Method {
    fn eq(&self, other: &Method) -> bool {
        self.name() == other.name() && self.options() == other.options()
    }
}

impl Method {
    /// `linear`: the head alone.
    pub fn linear() -> Method {
        Method::default()
    }

    /// `prompt`: what `vpt train` and `vpt grad` do without `--method`.
    pub fn prompt() -> Method {
        "prompt".parse().expect("prompt is a method")
    }

    /// Parse `--method` (e.g. "prompt+adapter"); the methods that make tensors make them with
    /// `options`.
    pub fn parse(s: &str, options: &MethodOptions) -> Result<Method> {
        let bad = |why: String| Error::invalid("method", format!("{s:?}: {why}; methods are {}, joined by + (e.g. prompt+bias)", super::spelled()));
        let mut ranked: Vec<(usize, Arc<dyn Tuner>)> = Vec::new();
        for part in s.split('+') {
            if part == "linear" {
                continue;
            }
            let (rank, tuner) = super::parse_part(part, options).ok_or_else(|| bad(format!("{part:?} is not a method")))??;
            if let Some((_, earlier)) = ranked.iter().find(|(r, _)| *r == rank) {
                return Err(bad(format!("{} and {} are one method named twice; give it once", earlier.name(), tuner.name())));
            }
            ranked.push((rank, tuner));
        }
        ranked.sort_by_key(|(rank, _)| *rank);
        let parts: Vec<Arc<dyn Tuner>> = ranked.into_iter().map(|(_, t)| t).collect();
        // Two methods that keep a setting under one name in the task file cannot share it.
        for (i, part) in parts.iter().enumerate() {
            for (key, _) in part.metadata() {
                if let Some(earlier) = parts[..i].iter().find(|p| p.metadata().iter().any(|(k, _)| *k == key)) {
                    return Err(bad(format!("{} and {} both keep {key} in the task file; use one of them", earlier.name(), part.name())));
                }
            }
        }
        Ok(Method { parts })
    }

    /// Its methods, in registry order.
    pub fn parts(&self) -> &[Arc<dyn Tuner>] {
        &self.parts
    }

    /// The name it parses from ("prompt+bias", "linear", …).
    pub fn name(&self) -> String {
        if self.parts.is_empty() {
            return "linear".into();
        }
        self.parts.iter().map(|p| p.name()).collect::<Vec<_>>().join("+")
    }

    /// The options its methods make their tensors with ("adapter: reduction 8"), for a resumed
    /// run to compare.
    pub fn options(&self) -> String {
        self.parts.iter().filter(|p| !p.options().is_empty()).map(|p| format!("{}: {}", p.name(), p.options())).collect::<Vec<_>>().join("; ")
    }

    pub fn trains_prompts(&self) -> bool {
        self.parts.iter().any(|p| p.trains_prompts())
    }

    /// Does it train the backbone tensor with this timm name, in a backbone of `depth` blocks?
    pub fn trains(&self, timm_name: &str, depth: usize) -> bool {
        self.parts.iter().any(|p| p.trains(timm_name, depth))
    }

    /// Does it train some block's linear weights (full, partial-k)? Asked of a one-block
    /// backbone, whose block 0 is the last: partial-k trains the last k blocks.
    pub fn trains_linear_weights(&self) -> bool {
        ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"].iter().any(|layer| self.trains(&format!("blocks.0.{layer}.weight"), 1))
    }

    /// Does it train the tensor a method added under this task-file name?
    pub fn trains_added(&self, name: &str) -> bool {
        self.parts.iter().any(|p| p.owns(name))
    }

    /// Does it train anything besides prompts and head (inside the blocks)?
    pub fn trains_backbone(&self) -> bool {
        self.parts.iter().any(|p| !p.trains_prompts())
    }

    /// An error unless every method fits a backbone of `depth` blocks.
    pub fn check_depth(&self, depth: usize) -> Result<()> {
        self.parts.iter().try_for_each(|p| p.check_depth(depth))
    }

    /// An error unless `t`, which this method trains as `name`, is stored in f32: `--precision
    /// f16` stores the large weights in f16, and those only frozen.
    pub fn check_trainable(&self, name: &str, t: &Tensor) -> Result<()> {
        if t.dtype() == DType::F16 {
            return Err(Error::invalid("method", format!("{} trains {name}, which `precision` f16 stores in f16; train it with `precision` f32", self.name())));
        }
        Ok(())
    }

    /// What the method trains, for a run's header line: "5 prompts × 4 layers, every bias and
    /// the head". `prompts` and `prompt_layers` are the run's (0 where it makes none).
    pub fn describe(&self, prompts: usize, prompt_layers: usize) -> String {
        let mut parts: Vec<String> = self.parts.iter().filter_map(|p| p.describe(prompts, prompt_layers)).collect();
        parts.push("the head".to_string());
        let last = parts.pop().expect("the head is there");
        match parts.is_empty() {
            true => last,
            false => format!("{} and {last}", parts.join(", ")),
        }
    }
}

impl FromStr for Method {
    type Err = Error;
    /// [`Method::parse`] with every option at its default.
    fn from_str(s: &str) -> Result<Method> {
        Method::parse(s, &MethodOptions::default())
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
        assert!(picked("prompt").is_empty() && picked("linear").is_empty() && picked("ia3").is_empty());
        for name in
            ["prompt", "linear", "bias", "partial-2", "full", "prompt+bias", "prompt+partial-1", "adapter", "bias+adapter", "ia3", "prompt+ia3", "adapter+ia3", "dora", "prompt+dora", "ia3+dora"]
        {
            assert_eq!(name.parse::<Method>().unwrap().name(), name);
        }
        assert_eq!("linear+bias".parse::<Method>().unwrap().name(), "bias");
        assert_eq!("ia3+prompt".parse::<Method>().unwrap().name(), "prompt+ia3", "registry order");
        let described = |m: &str, prompts: usize, layers: usize| m.parse::<Method>().unwrap().describe(prompts, layers);
        assert_eq!(described("linear", 0, 0), "the head");
        assert_eq!(described("prompt", 5, 3), "5 prompts × 3 layers and the head");
        assert_eq!(described("full", 0, 0), "every backbone tensor and the head");
        assert_eq!(described("prompt+bias+partial-1", 2, 1), "2 prompts × 1 layers, every bias, the last 1 block and the final norm and the head");
        assert!("partial-3".parse::<Method>().unwrap().check_depth(3).is_ok());
        let err = "partial-4".parse::<Method>().unwrap().check_depth(3).unwrap_err().to_string();
        assert!(err.starts_with("method:") && err.contains("partial-4") && err.contains("has 3"), "{err}");
        assert_eq!(described("adapter", 0, 0), "an adapter in every block (reduction 8) and the head");
        for bad in ["partial-0", "partial-x", "biases", "", "adapters", "partial-1+partial-2", "bias+bias"] {
            let err = bad.parse::<Method>().unwrap_err().to_string();
            assert!(err.starts_with("method:"), "{err}");
        }
        let adapter = Method::parse("adapter", &MethodOptions::default().with("adapter_reduction", 4.0)).unwrap();
        assert_eq!(adapter.options(), "adapter: reduction 4");
        assert_ne!(adapter, "adapter".parse::<Method>().unwrap(), "options make another method");
        let err = Method::parse("adapter", &MethodOptions::default().with("adapter_reduction", 1.5)).unwrap_err().to_string();
        assert!(err.starts_with("adapter_reduction:"), "{err}");
    }
}
