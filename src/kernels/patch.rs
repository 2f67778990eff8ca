//! Patch extraction (im2col) for the ViT patch embedding. Kernel in `wgsl/patch.wgsl`.
//! The embedding itself is `matmul(im2col(images), Wᵀ) + bias` with W = conv weight [D, C·p·p].

use super::{expect_rank, grid_1d, wgsl_shader};
use crate::error::{Error, Result};
use crate::gpu::Params;
use crate::tensor::Tensor;

wgsl_shader!("patch");

/// images: [B, C, Hi, Wi] → patches: [B, N, C·p·p], N = (Hi/p)·(Wi/p).
pub fn im2col_forward(images: &Tensor, patch: usize) -> Result<Tensor> {
    let op = "im2col_forward";
    expect_rank(op, images, "images", 4, "[B, C, H, W]")?;
    let [batch, channels, height, width] = [images.shape()[0], images.shape()[1], images.shape()[2], images.shape()[3]];
    check_divisible(op, images.shape(), patch)?;
    let patches = images.empty_like_shape(&[batch, (height / patch) * (width / patch), channels * patch * patch])?;
    let params = Params::new().dim(batch).dim(channels).dim(height).dim(width).dim(patch).bytes();
    let gpu = images.gpu();
    gpu.dispatch(&SHADER, "im2col_forward", &params, &[(1, images.buffer()), (2, patches.buffer())], grid_1d(gpu, images.numel())?)?;
    Ok(patches)
}

/// Gradient of [`im2col_forward`]: dpatches [B, N, C·p·p] → dimages of `image_shape` [B, C, Hi, Wi].
pub fn im2col_backward(dpatches: &Tensor, image_shape: &[usize], patch: usize) -> Result<Tensor> {
    let op = "im2col_backward";
    if image_shape.len() != 4 {
        return Err(Error::shape(op, format!("image shape must be [B, C, H, W], got {image_shape:?}")));
    }
    check_divisible(op, image_shape, patch)?;
    let [batch, channels, height, width] = [image_shape[0], image_shape[1], image_shape[2], image_shape[3]];
    let expected = [batch, (height / patch) * (width / patch), channels * patch * patch];
    if dpatches.shape() != expected {
        return Err(Error::shape(op, format!("dpatches must be {expected:?} for images {image_shape:?} and patch {patch}, got {:?}", dpatches.shape())));
    }
    let dimages = dpatches.empty_like_shape(image_shape)?;
    let params = Params::new().dim(batch).dim(channels).dim(height).dim(width).dim(patch).bytes();
    let gpu = dpatches.gpu();
    gpu.dispatch(&SHADER, "im2col_backward", &params, &[(3, dpatches.buffer()), (4, dimages.buffer())], grid_1d(gpu, dimages.numel())?)?;
    Ok(dimages)
}

/// ViT patch embedding (timm's strict image size): H and W must be multiples of the patch size.
fn check_divisible(op: &'static str, image_shape: &[usize], patch: usize) -> Result<()> {
    let (height, width) = (image_shape[2], image_shape[3]);
    if patch == 0 || height % patch != 0 || width % patch != 0 {
        return Err(Error::shape(op, format!("images {image_shape:?}: height and width must be multiples of the patch size {patch}")));
    }
    Ok(())
}
