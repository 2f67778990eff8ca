// Cutting images into patches (im2col) for the patch embedding, and its backward.
//
//   im2col:  images [B, C, Hi, Wi] → patches [B, N, C·p·p],  N = (Hi/p)·(Wi/p)
//            patch n = gy·(Wi/p) + gx (row-major, as timm's flatten(2).transpose(1, 2) orders them);
//            within a patch, (c, ky, kx) row-major, matching Conv2d's weight [D, C, p, p] flattened.
//   The embedding is then one matmul: patches · Wᵀ + bias → [B, N, D] (matmul.wgsl).
//   col2im:  the backward, d patches → d images. Patches do not overlap (stride = p), so im2col is
//            a permutation and its backward is the inverse permutation: nothing is summed.

struct Params {
    batch: u32,     // B
    channels: u32,  // C
    height: u32,    // Hi
    width: u32,     // Wi
    patch_size: u32,  // p
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> images: array<f32>;
@group(0) @binding(2) var<storage, read_write> patches: array<f32>;
@group(0) @binding(3) var<storage, read> dpatches: array<f32>;
@group(0) @binding(4) var<storage, read_write> dimages: array<f32>;

// For image element i (b, c, y, x), its index in the patches tensor.
fn patch_index_of_pixel(i: u32) -> u32 {
    let p = params.patch_size;
    let x = i % params.width;
    let y = (i / params.width) % params.height;
    let c = (i / (params.width * params.height)) % params.channels;
    let b = i / (params.width * params.height * params.channels);
    let grid_w = params.width / p;
    let n = (y / p) * grid_w + (x / p);
    let n_patches = (params.height / p) * grid_w;
    let inner = (c * p + y % p) * p + x % p;
    return (b * n_patches + n) * (params.channels * p * p) + inner;
}

// One thread per pixel: each pixel belongs to exactly one patch.
@compute @workgroup_size(WG)
fn im2col_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.channels * params.height * params.width) { return; }
    patches[patch_index_of_pixel(i)] = images[i];
}

@compute @workgroup_size(WG)
fn im2col_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.batch * params.channels * params.height * params.width) { return; }
    dimages[i] = dpatches[patch_index_of_pixel(i)];
}
