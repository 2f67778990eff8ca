// What the moving kernels (wgsl/heads.wgsl, wgsl/tokens.wgsl) move per thread: a quad of 4 f32s,
// one vec4 load and one vec4 store, for tensors whose rows are a multiple of 4 wide (every ViT:
// hd 64, D 768). Prepended to those files; the launcher then counts the last axis in quads
// (`kernels::moves`). The other build, wgsl/lib/move_scalars.wgsl, moves one f32.
//
// Why a quad: lavapipe (the only adapter measured) runs 8 threads in the lanes of one SIMD
// register and compiles every load and store of a storage buffer into a loop over those lanes,
// so a vec4 costs little more than one f32 (see wgsl/attention.wgsl).

alias Unit = vec4<f32>;
