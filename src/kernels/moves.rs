//! The two builds of the kernels that only move elements (`heads`, `tokens`): a quad of 4 f32s
//! per thread where the rows they move are a multiple of 4 wide (every ViT), one f32 otherwise.
//! The WGSL is the same text over `Unit`, which `wgsl/lib/move_quads.wgsl` (vec4) or
//! `wgsl/lib/move_scalars.wgsl` (f32) defines; the launcher counts the last axis in Units.

use crate::gpu::Shader;

/// Which build moves rows of a given width, and how many f32s each of its threads moves.
#[derive(Clone, Copy)]
pub(crate) struct Moves {
    pub shader: &'static Shader,
    /// f32s per Unit: 4 or 1.
    pub unit: usize,
}

impl Moves {
    /// `quads` where `width` (f32s) is a multiple of 4, so that every row starts on a vec4;
    /// else `scalars`. Both move the same values: the results are the same bits.
    pub fn for_width(width: usize, quads: &'static Shader, scalars: &'static Shader) -> Moves {
        if width.is_multiple_of(4) {
            Moves { shader: quads, unit: 4 }
        } else {
            Moves { shader: scalars, unit: 1 }
        }
    }
}
