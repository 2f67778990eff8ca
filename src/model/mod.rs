//! The models, on the autodiff graph: a frozen Vision Transformer and Visual Prompt Tuning on it.
//!
//! - [`vit`]: the ViT's shape ([`vit::VitConfig`]), its weights (`StateDict`), its forward;
//! - [`block`]: one transformer block, and its [`block::BlockPlan`] (fused or unfused attention,
//!   what the backward recomputes);
//! - [`leaves`]: the backbone's graph leaves for a method (`BackboneVars`);
//! - [`method`]: which tensors a tuning method trains (`prompt`, `bias`, `partial-K`, `full`);
//! - [`tuned`]: a task's adapters, LoRA and tuned backbone tensors;
//! - [`vpt`]: prompts, pooling and head; the forward, the gradient step, the task's tensors;
//! - [`pos_embed`]: timm's position-embedding resampling for other image sizes;
//! - [`synthetic`]: seeded synthetic weights for any ViT shape (tests, benchmarks, fixtures).

pub mod block;
pub mod leaves;
pub mod method;
pub mod pos_embed;
pub mod synthetic;
pub mod tuned;
pub mod vit;
pub mod vpt;
