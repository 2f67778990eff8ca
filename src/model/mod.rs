//! The models, on the autodiff graph: a frozen Vision Transformer and Visual Prompt Tuning on it.
//!
//! - [`vit`]: the ViT's shape ([`vit::VitConfig`]), its weights (`StateDict`), its forward;
//! - [`block`]: one transformer block; [`stream`]: the residual stream between blocks;
//! - [`plan`]: how the blocks run ([`plan::BlockPlan`]: fused or unfused attention, what the
//!   backward recomputes); [`blocks`]: the ViT running its blocks under it;
//! - [`methods`]: the tuning methods, one file each (`--method`), and a task's tensors beyond
//!   prompts and head;
//! - [`vpt`]: prompts, pooling and head; the forward, the gradient step, the task's tensors;
//! - [`pos_embed`]: timm's position-embedding resampling for other image sizes;
//! - [`synthetic`]: seeded synthetic weights for any ViT shape (tests, benchmarks, fixtures);
//! - [`layouts`]: backbones as published (Google's `.npz`, a Hugging Face hub folder) in timm's
//!   names;
//! - `files` (native): checkpoints (in any of those layouts), task tensors, batches and gradients
//!   read from and written to disk.

pub mod block;
pub mod blocks;
#[cfg(feature = "native")]
pub mod files;
pub mod layouts;
pub mod methods;
pub mod plan;
pub mod pos_embed;
pub mod stream;
pub mod synthetic;
pub mod vit;
pub mod vpt;
