//! How the blocks run ([`BlockPlan`], the flags `--attention` and `--recompute`): which attention
//! kernel, and what the backward recomputes instead of keeping. Results are the same either way
//! (to f32 rounding between the attention paths, bit for bit between recompute settings).

use std::str::FromStr;

use crate::error::{Error, Result};

/// Which attention the blocks run (`--attention`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionChoice {
    /// Fused wherever the fused kernels take the head width (see [`Vit::fused_attention`]).
    #[default]
    Auto,
    /// `kernels::attention`: never stores the T×T probabilities; keeps q, k, v, o and a
    /// log-sum-exp per row for the backward, whose score gradients [B, H, T, T] exist only while
    /// one block's backward runs (and not at all where they would not fit one binding).
    Fused,
    /// q·kᵀ → softmax → ·v as three ops: the readable reference; keeps the probabilities.
    Unfused,
}

/// What the backward recomputes instead of keeping (`--recompute`). The recomputation runs the
/// same kernels on the same inputs in the same order, so the results are bit-identical.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recompute {
    /// Keep every activation the backward reads.
    #[default]
    None,
    /// The MLP keeps fc1's input [B, T, D] instead of its pre-activation [B, T, 4D] and runs
    /// fc1 again in the backward.
    Mlp,
    /// Each block keeps only its input and runs its whole forward again in the backward.
    Block,
}

/// How the blocks run. The default is what `vpt train` does without flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockPlan {
    pub attention: AttentionChoice,
    pub recompute: Recompute,
    /// Run each block on at most this many images at a time (None: as many as fit; see
    /// [`Vit::images_per_run`]).
    pub max_images: Option<usize>,
}

impl AttentionChoice {
    pub const ALL: [AttentionChoice; 3] = [AttentionChoice::Auto, AttentionChoice::Fused, AttentionChoice::Unfused];

    /// The flag value that selects it.
    pub fn name(self) -> &'static str {
        match self {
            AttentionChoice::Auto => "auto",
            AttentionChoice::Fused => "fused",
            AttentionChoice::Unfused => "unfused",
        }
    }
}

impl Recompute {
    pub const ALL: [Recompute; 3] = [Recompute::None, Recompute::Mlp, Recompute::Block];

    /// The flag value that selects it.
    pub fn name(self) -> &'static str {
        match self {
            Recompute::None => "none",
            Recompute::Mlp => "mlp",
            Recompute::Block => "block",
        }
    }
}

/// The value of `all` whose `name` is `s`, or an error for `flag` that lists the names.
fn by_name<T: Copy>(all: &[T], name: fn(T) -> &'static str, s: &str, setting: &str, what: &str) -> Result<T> {
    all.iter().copied().find(|&v| name(v) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
        Error::invalid(setting, format!("{s:?} is not {what}; use {}", names.join(", ")))
    })
}

impl FromStr for AttentionChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<AttentionChoice> {
        by_name(&AttentionChoice::ALL, AttentionChoice::name, s, "attention", "an attention path")
    }
}

impl FromStr for Recompute {
    type Err = Error;
    fn from_str(s: &str) -> Result<Recompute> {
        by_name(&Recompute::ALL, Recompute::name, s, "recompute", "a recompute setting")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_values_parse_back_and_bad_ones_name_the_setting() {
        for a in AttentionChoice::ALL {
            assert_eq!(a.name().parse::<AttentionChoice>().unwrap(), a);
        }
        for r in Recompute::ALL {
            assert_eq!(r.name().parse::<Recompute>().unwrap(), r);
        }
        let err = "fast".parse::<AttentionChoice>().unwrap_err().to_string();
        assert!(err.starts_with("attention:") && err.contains("auto, fused, unfused"), "{err}");
        let err = "all".parse::<Recompute>().unwrap_err().to_string();
        assert!(err.starts_with("recompute:") && err.contains("none, mlp, block"), "{err}");
    }
}
