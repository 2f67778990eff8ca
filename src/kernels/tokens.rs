//! Concatenation, slicing and dropping along the token axis: how prompts are inserted after the
//! CLS token, how a block leaves out the rows nobody reads (`model::block::RowsRead`), and how
//! their gradients come back out. Kernel in `wgsl/tokens.wgsl`.
//!
//! Token tensors are [B, T, D]. A part with batch 1 is broadcast over the batch (prompts and the
//! CLS token are shared by every image); its gradient is summed over the batch.

use super::moves::Moves;
use super::{expect_rank, grid_1d, same_device};
use crate::error::{Error, Result};
use crate::gpu::{wgsl_shader, Bind, Params};
use crate::kernels::reduce;
use crate::tensor::Tensor;

// A thread moves a quad of 4 f32s where D is a multiple of 4, else one f32 (`Moves`).
wgsl_shader!("tokens", uses["move_quads"]);
wgsl_shader!(SHADER_SCALARS = "tokens" as "tokens_scalars", uses["move_scalars"]);

/// One run of tokens to move: `count` tokens from `src[:, src_start..]` to `dst[:, dst_start..]`.
struct Copy<'a> {
    src: &'a Tensor,
    src_start: usize,
    dst: &'a Tensor,
    dst_start: usize,
    count: usize,
    accumulate: bool,
}

fn copy_tokens(c: Copy) -> Result<()> {
    let (batch, dst_tokens, width) = (c.dst.shape()[0], c.dst.shape()[1], c.dst.shape()[2]);
    let (src_batch, src_tokens) = (c.src.shape()[0], c.src.shape()[1]);
    let moves = Moves::for_width(width, &SHADER, &SHADER_SCALARS);
    let units = width / moves.unit; // D in the build's Units
    let params = Params::new()
        .dim("batch", batch)
        .dim("src_tokens", src_tokens)
        .dim("dst_tokens", dst_tokens)
        .dim("width", units)
        .dim("src_start", c.src_start)
        .dim("dst_start", c.dst_start)
        .dim("count", c.count)
        .flag("src_broadcast", src_batch == 1 && batch > 1)
        .flag("accumulate", c.accumulate);
    let gpu = c.dst.gpu();
    gpu.dispatch(moves.shader, "copy_tokens", &params, &[Bind::read(1, c.src.buffer()), Bind::read_write(2, c.dst.buffer())], grid_1d(gpu, batch * c.count * units)?)
}

/// Concatenate along the token axis. parts: [Bᵢ, Tᵢ, D] with each Bᵢ either B or 1 (broadcast)
/// → y: [B, ΣTᵢ, D].
pub fn concat_tokens_forward(parts: &[&Tensor]) -> Result<Tensor> {
    let (batch, width) = check_parts("concat_tokens_forward", parts)?;
    let total: usize = parts.iter().map(|p| p.shape()[1]).sum();
    let y = parts[0].empty_like_shape(&[batch, total, width])?;
    let mut start = 0;
    for part in parts {
        let count = part.shape()[1];
        copy_tokens(Copy { src: part, src_start: 0, dst: &y, dst_start: start, count, accumulate: false })?;
        start += count;
    }
    Ok(y)
}

/// Gradient of [`concat_tokens_forward`]: dy [B, ΣTᵢ, D] → one gradient per part, shaped like the
/// part (a broadcast part's gradient is summed over the batch).
pub fn concat_tokens_backward(dy: &Tensor, part_shapes: &[Vec<usize>]) -> Result<Vec<Tensor>> {
    expect_rank("concat_tokens_backward", dy, "dy", 3, "[B, T, D]")?;
    let total: usize = part_shapes.iter().map(|s| s.get(1).copied().unwrap_or(0)).sum();
    if part_shapes.iter().any(|s| s.len() != 3 || s[2] != dy.shape()[2]) || total != dy.shape()[1] {
        return Err(Error::shape("concat_tokens_backward", format!("parts {part_shapes:?} do not concatenate to dy {:?}", dy.shape())));
    }
    let mut start = 0;
    let mut grads = Vec::with_capacity(part_shapes.len());
    for shape in part_shapes {
        let slice = slice_tokens_forward(dy, start, shape[1])?;
        grads.push(if shape[0] == 1 { sum_over_batch(&slice)? } else { slice });
        start += shape[1];
    }
    Ok(grads)
}

/// x: [B, T, D] → [B, count, D], tokens `start..start + count`.
pub fn slice_tokens_forward(x: &Tensor, start: usize, count: usize) -> Result<Tensor> {
    expect_rank("slice_tokens_forward", x, "x", 3, "[B, T, D]")?;
    let (batch, tokens, width) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    if count == 0 || start + count > tokens {
        return Err(Error::shape("slice_tokens_forward", format!("tokens {start}..{} out of range for x {:?}", start + count, x.shape())));
    }
    let y = x.empty_like_shape(&[batch, count, width])?;
    copy_tokens(Copy { src: x, src_start: start, dst: &y, dst_start: 0, count, accumulate: false })?;
    Ok(y)
}

/// Gradient of [`slice_tokens_forward`]: dy [B, count, D] placed at `start` in zeros [B, tokens, D].
pub fn slice_tokens_backward(dy: &Tensor, tokens: usize, start: usize) -> Result<Tensor> {
    expect_rank("slice_tokens_backward", dy, "dy", 3, "[B, count, D]")?;
    let (batch, count, width) = (dy.shape()[0], dy.shape()[1], dy.shape()[2]);
    if start + count > tokens {
        return Err(Error::shape("slice_tokens_backward", format!("dy {:?} at token {start} does not fit in {tokens} tokens", dy.shape())));
    }
    let dx = dy.empty_like_shape(&[batch, tokens, width])?;
    copy_tokens(Copy { src: dy, src_start: 0, dst: &dx, dst_start: start, count, accumulate: false })?;
    Ok(dx)
}

/// x: [B, T, D] → [B, T − count, D], without tokens `start..start + count`: one copy for each
/// side of the gap, where slicing both sides and concatenating them would take four copies and
/// two tensors more.
pub fn drop_tokens_forward(x: &Tensor, start: usize, count: usize) -> Result<Tensor> {
    expect_rank("drop_tokens_forward", x, "x", 3, "[B, T, D]")?;
    let (batch, tokens, width) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    if start + count > tokens || count >= tokens {
        return Err(Error::shape("drop_tokens_forward", format!("dropping tokens {start}..{} of x {:?} leaves none, or is out of range", start + count, x.shape())));
    }
    let y = x.empty_like_shape(&[batch, tokens - count, width])?;
    let after = tokens - start - count;
    if start > 0 {
        copy_tokens(Copy { src: x, src_start: 0, dst: &y, dst_start: 0, count: start, accumulate: false })?;
    }
    if after > 0 {
        copy_tokens(Copy { src: x, src_start: start + count, dst: &y, dst_start: start, count: after, accumulate: false })?;
    }
    Ok(y)
}

/// Gradient of [`drop_tokens_forward`]: dy [B, T − count, D] → [B, T, D], zeros at the dropped
/// tokens.
pub fn drop_tokens_backward(dy: &Tensor, start: usize, count: usize) -> Result<Tensor> {
    expect_rank("drop_tokens_backward", dy, "dy", 3, "[B, T − count, D]")?;
    let (batch, kept, width) = (dy.shape()[0], dy.shape()[1], dy.shape()[2]);
    if start > kept {
        return Err(Error::shape("drop_tokens_backward", format!("dy {:?} has no token {start} to put the {count} dropped ones before", dy.shape())));
    }
    let dx = dy.empty_like_shape(&[batch, kept + count, width])?; // zeros
    if start > 0 {
        copy_tokens(Copy { src: dy, src_start: 0, dst: &dx, dst_start: 0, count: start, accumulate: false })?;
    }
    if kept > start {
        copy_tokens(Copy { src: dy, src_start: start, dst: &dx, dst_start: start + count, count: kept - start, accumulate: false })?;
    }
    Ok(dx)
}

/// [B, T, D] → [1, T, D]: the gradient of a part that was broadcast over the batch.
pub(crate) fn sum_over_batch(x: &Tensor) -> Result<Tensor> {
    let (tokens, width) = (x.shape()[1], x.shape()[2]);
    reduce::sum_rows_forward(x)?.reshape(&[1, tokens, width])
}

/// Check `op`'s token parts [Bᵢ, Tᵢ, D] agree on D and on B (or broadcast); returns (B, D).
pub(crate) fn check_parts(op: &'static str, parts: &[&Tensor]) -> Result<(usize, usize)> {
    let first = parts.first().ok_or_else(|| Error::shape(op, "no parts to concatenate"))?;
    for p in parts {
        expect_rank(op, p, "every part", 3, "[B, T, D]")?;
        same_device(op, first, p)?;
    }
    let shapes: Vec<&[usize]> = parts.iter().map(|p| p.shape()).collect();
    let width = first.shape()[2];
    let batch = parts.iter().map(|p| p.shape()[0]).max().unwrap_or(1);
    if parts.iter().any(|p| p.shape()[2] != width || (p.shape()[0] != batch && p.shape()[0] != 1)) {
        return Err(Error::shape(op, format!("parts {shapes:?} must share D and have batch {batch} or 1")));
    }
    Ok((batch, width))
}
