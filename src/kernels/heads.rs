//! The permutes around multi-head attention. Kernels in `wgsl/heads.wgsl`.

use super::moves::Moves;
use super::{expect_rank, grid_1d, same_device, same_shape};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::tensor::Tensor;

// A thread moves a quad of 4 f32s where hd is a multiple of 4, else one f32 (`Moves`).
wgsl_shader!("heads", uses["flat", "move_quads"]);
wgsl_shader!(SHADER_SCALARS = "heads" as "heads_scalars", uses["flat", "move_scalars"]);

/// q, k, v: [B, H, T, hd] each.
#[derive(Debug)]
pub struct Qkv {
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
}

/// The build for heads `head_dim` wide.
fn moves(head_dim: usize) -> Moves {
    Moves::for_width(head_dim, &SHADER, &SHADER_SCALARS)
}

/// The uniform, hd counted in the build's Units.
fn head_params(moves: Moves, batch: usize, tokens: usize, heads: usize, head_dim: usize) -> Params {
    Params::new().dim("batch", batch).dim("tokens", tokens).dim("heads", heads).dim("head_dim", head_dim / moves.unit)
}

/// qkv: [B, T, 3·D], D = H·hd → q, k, v: [B, H, T, hd].
pub fn split_heads_forward(qkv: &Tensor, heads: usize) -> Result<Qkv> {
    let op = "split_heads_forward";
    expect_rank(op, qkv, "qkv", 3, "[B, T, 3·D]")?;
    let (batch, tokens, three_d) = (qkv.shape()[0], qkv.shape()[1], qkv.shape()[2]);
    if heads == 0 || three_d % (3 * heads) != 0 {
        return Err(Error::shape(op, format!("qkv {:?}: last axis must be 3·H·hd for H = {heads} heads", qkv.shape())));
    }
    let head_dim = three_d / (3 * heads);
    let out = [batch, heads, tokens, head_dim];
    let (q, k, v) = (qkv.empty_like_shape(&out)?, qkv.empty_like_shape(&out)?, qkv.empty_like_shape(&out)?);
    let gpu = qkv.gpu();
    let moves = moves(head_dim);
    gpu.dispatch(
        moves.shader,
        "split_heads_forward",
        &head_params(moves, batch, tokens, heads, head_dim),
        &[Bind::read(1, qkv.buffer()), Bind::read_write(2, q.buffer()), Bind::read_write(3, k.buffer()), Bind::read_write(4, v.buffer())],
        grid_1d(gpu, q.numel() / moves.unit)?, // one thread per element (Unit) of q, and of k and v
    )?;
    Ok(Qkv { q, k, v })
}

/// Gradient of [`split_heads_forward`]: dq, dk, dv [B, H, T, hd] → dqkv [B, T, 3·H·hd].
pub fn split_heads_backward(dq: &Tensor, dk: &Tensor, dv: &Tensor) -> Result<Tensor> {
    let op = "split_heads_backward";
    expect_rank(op, dq, "dq", 4, "[B, H, T, hd]")?;
    same_shape(op, dq, dk, "dq", "dk")?;
    same_shape(op, dq, dv, "dq", "dv")?;
    same_device(op, dq, dk)?;
    same_device(op, dq, dv)?;
    let (batch, heads, tokens, head_dim) = (dq.shape()[0], dq.shape()[1], dq.shape()[2], dq.shape()[3]);
    let dqkv = dq.empty_like_shape(&[batch, tokens, 3 * heads * head_dim])?;
    let gpu = dq.gpu();
    let moves = moves(head_dim);
    gpu.dispatch(
        moves.shader,
        "split_heads_backward",
        &head_params(moves, batch, tokens, heads, head_dim),
        &[Bind::read_write(5, dqkv.buffer()), Bind::read(6, dq.buffer()), Bind::read(7, dk.buffer()), Bind::read(8, dv.buffer())],
        grid_1d(gpu, dq.numel() / moves.unit)?, // one thread per element (Unit) of dq, and of dk and dv
    )?;
    Ok(dqkv)
}

/// x: [B, H, T, hd] → y: [B, T, H·hd].
pub fn merge_heads_forward(x: &Tensor) -> Result<Tensor> {
    expect_rank("merge_heads_forward", x, "x", 4, "[B, H, T, hd]")?;
    let (batch, heads, tokens, head_dim) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let y = x.empty_like_shape(&[batch, tokens, heads * head_dim])?;
    let gpu = x.gpu();
    let moves = moves(head_dim);
    let params = head_params(moves, batch, tokens, heads, head_dim);
    gpu.dispatch(moves.shader, "merge_heads_forward", &params, &[Bind::read(9, x.buffer()), Bind::read_write(10, y.buffer())], grid_1d(gpu, x.numel() / moves.unit)?)?;
    Ok(y)
}

/// Gradient of [`merge_heads_forward`]: dy [B, T, H·hd] → dx [B, H, T, hd].
pub fn merge_heads_backward(dy: &Tensor, heads: usize) -> Result<Tensor> {
    let op = "merge_heads_backward";
    expect_rank(op, dy, "dy", 3, "[B, T, D]")?;
    let (batch, tokens, width) = (dy.shape()[0], dy.shape()[1], dy.shape()[2]);
    if heads == 0 || width % heads != 0 {
        return Err(Error::shape(op, format!("dy {:?}: D = {width} is not divisible by H = {heads} heads", dy.shape())));
    }
    let head_dim = width / heads;
    let dx = dy.empty_like_shape(&[batch, heads, tokens, head_dim])?;
    let gpu = dy.gpu();
    let moves = moves(head_dim);
    let params = head_params(moves, batch, tokens, heads, head_dim);
    gpu.dispatch(moves.shader, "merge_heads_backward", &params, &[Bind::read(9, dy.buffer()), Bind::read_write(10, dx.buffer())], grid_1d(gpu, dy.numel() / moves.unit)?)?;
    Ok(dx)
}
