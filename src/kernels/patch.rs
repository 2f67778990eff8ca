//! Patch extraction (im2col) for the ViT patch embedding. Kernel in `wgsl/patch.wgsl`.
//! The embedding itself is `matmul(im2col(images), Wᵀ) + bias` with W = conv weight [D, C·p·p]
//! ([`patch_embed_forward`]).

use super::matmul::{self, MatmulNeed, MatmulOptions};
use super::{expect_rank, grid_1d};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::tensor::Tensor;

wgsl_shader!("patch", uses["flat"]);

/// images: [B, C, Hi, Wi] → patches: [B, N, C·p·p], N = (Hi/p)·(Wi/p).
pub fn im2col_forward(images: &Tensor, patch: usize) -> Result<Tensor> {
    let op = "im2col_forward";
    expect_rank(op, images, "images", 4, "[B, C, H, W]")?;
    let [batch, channels, height, width] = [images.shape()[0], images.shape()[1], images.shape()[2], images.shape()[3]];
    check_divisible(op, images.shape(), patch)?;
    let patches = images.empty_like_shape(&[batch, (height / patch) * (width / patch), channels * patch * patch])?;
    let params = Params::new().dim("batch", batch).dim("channels", channels).dim("height", height).dim("width", width).dim("patch_size", patch);
    let gpu = images.gpu();
    gpu.dispatch(&SHADER, "im2col_forward", &params, &[Bind::read(1, images.buffer()), Bind::read_write(2, patches.buffer())], grid_1d(gpu, images.numel())?)?;
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
    let params = Params::new().dim("batch", batch).dim("channels", channels).dim("height", height).dim("width", width).dim("patch_size", patch);
    let gpu = dpatches.gpu();
    gpu.dispatch(&SHADER, "im2col_backward", &params, &[Bind::read(3, dpatches.buffer()), Bind::read_write(4, dimages.buffer())], grid_1d(gpu, dimages.numel())?)?;
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

/// ViT patch embedding, as timm's `PatchEmbed` (Conv2d with stride p, then flatten + transpose):
/// images [B, C, Hi, Wi], weight [D, C, p, p], bias [D] → embeddings [B, N, D].
/// Computed as im2col, then patches [B, N, C·p·p] · weightᵀ [C·p·p, D] + bias.
pub fn patch_embed_forward(images: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (width, patch) = check_weight("patch_embed_forward", images, weight)?;
    let patches = im2col_forward(images, patch)?;
    let flat_weight = weight.reshape(&[width, weight.numel() / width])?;
    matmul::matmul_forward(&patches, &flat_weight, bias, MatmulOptions { trans_a: false, trans_b: true })
}

/// Gradients of [`patch_embed_forward`] that were asked for: dimages (through the matmul and
/// col2im), dweight [D, C, p, p], dbias [D]. A frozen backbone asks for none of them.
pub struct PatchEmbedGrads {
    pub dimages: Option<Tensor>,
    pub dweight: Option<Tensor>,
    pub dbias: Option<Tensor>,
}

pub fn patch_embed_backward(images: &Tensor, weight: &Tensor, dembed: &Tensor, need: MatmulNeed) -> Result<PatchEmbedGrads> {
    let (width, patch) = check_weight("patch_embed_backward", images, weight)?;
    let patches = im2col_forward(images, patch)?;
    let flat_weight = weight.reshape(&[width, weight.numel() / width])?;
    let grads = matmul::matmul_backward(&patches, &flat_weight, dembed, MatmulOptions { trans_a: false, trans_b: true }, need)?;
    Ok(PatchEmbedGrads { dimages: grads.da.map(|d| im2col_backward(&d, images.shape(), patch)).transpose()?, dweight: grads.db.map(|d| d.reshape(weight.shape())).transpose()?, dbias: grads.dbias })
}

/// weight must be [D, C, p, p] with C matching the images; returns (D, p).
fn check_weight(op: &'static str, images: &Tensor, weight: &Tensor) -> Result<(usize, usize)> {
    expect_rank(op, weight, "weight", 4, "[D, C, p, p]")?;
    let s = weight.shape();
    if s[2] != s[3] || images.rank() != 4 || s[1] != images.shape()[1] {
        return Err(Error::shape(op, format!("weight {s:?} must be [D, C, p, p] with C = channels of images {:?}", images.shape())));
    }
    Ok((s[0], s[2]))
}
