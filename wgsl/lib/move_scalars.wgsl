// What the moving kernels (wgsl/heads.wgsl, wgsl/tokens.wgsl) move per thread: one f32, for
// tensors whose rows are not a multiple of 4 wide. Prepended to those files; the other build,
// wgsl/lib/move_quads.wgsl, moves a vec4 (`kernels::moves` picks).

alias Unit = f32;
