// The flat 1-D launch shared by the element-wise kernels: one thread per element, WG threads per
// workgroup, the workgroups laid out in x then y (one grid axis holds at most 65535 of them).
//
// Not a kernel family of its own: launchers prepend it (Rust: `wgsl_shader!(.., uses ["flat"])`).
// WG must equal WG_1D in src/gpu/shader.rs, which sizes the grid; tests/contract.rs checks it.

const WG: u32 = 256u;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}
