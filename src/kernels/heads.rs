//! The permutes around multi-head attention. Kernels in `wgsl/heads.wgsl`.

use std::ops::Range;

use super::moves::Moves;
use super::tokens::{check_parts, sum_over_batch};
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

/// The uniform, hd counted in the build's Units. `part` is the split's launch (`Part`); merge_heads
/// passes the whole tensor as its one part.
fn head_params(moves: Moves, batch: usize, tokens: usize, heads: usize, head_dim: usize, part: Part) -> Params {
    Params::new()
        .dim("batch", batch)
        .dim("tokens", tokens)
        .dim("heads", heads)
        .dim("head_dim", head_dim / moves.unit)
        .dim("part_tokens", part.tokens)
        .dim("part_start", part.start)
        .flag("part_broadcast", part.broadcast)
        .dim("q_start", part.queries.start)
        .dim("q_count", part.queries.len())
}

/// One launch of a split: a part of qkv's tokens, and the query rows q keeps.
#[derive(Clone)]
struct Part {
    tokens: usize,
    start: usize,
    broadcast: bool,
    queries: Range<usize>,
}

impl Part {
    /// Every token of a [B, T, ·] tensor, as one part whose rows are all queries.
    fn whole(tokens: usize) -> Part {
        Part { tokens, start: 0, broadcast: false, queries: 0..tokens }
    }
}

/// qkv: [B, T, 3·D], D = H·hd → q, k, v: [B, H, T, hd].
pub fn split_heads_forward(qkv: &Tensor, heads: usize) -> Result<Qkv> {
    let tokens = qkv.shape().get(1).copied().unwrap_or(0);
    split_heads_of_parts_forward(&[qkv], heads, 0..tokens)
}

/// qkv given as token parts [Bᵢ, Tᵢ, 3·D] (Bᵢ = B, or 1 for a part shared by the batch), their
/// concatenation being qkv [B, T, 3·D] → k, v: [B, H, T, hd], and q: [B, H, Tq, hd], only the
/// rows of `queries` (tokens `queries.start..queries.end` of the T). The same values as
/// concatenating the parts, splitting and slicing q, without making either copy.
pub fn split_heads_of_parts_forward(parts: &[&Tensor], heads: usize, queries: Range<usize>) -> Result<Qkv> {
    let op = "split_heads_forward";
    let (batch, three_d) = check_parts(op, parts)?;
    let tokens: usize = parts.iter().map(|p| p.shape()[1]).sum();
    let head_dim = head_dim_of(op, parts[0], three_d, heads)?;
    check_queries(op, &queries, tokens)?;
    let kv_shape = [batch, heads, tokens, head_dim];
    let (k, v) = (parts[0].empty_like_shape(&kv_shape)?, parts[0].empty_like_shape(&kv_shape)?);
    let q = parts[0].empty_like_shape(&[batch, heads, queries.len(), head_dim])?;
    let gpu = parts[0].gpu();
    let moves = moves(head_dim);
    let mut start = 0;
    for part in parts {
        let launch = Part { tokens: part.shape()[1], start, broadcast: part.shape()[0] == 1 && batch > 1, queries: queries.clone() };
        start += launch.tokens;
        gpu.dispatch(
            moves.shader,
            "split_heads_forward",
            &head_params(moves, batch, tokens, heads, head_dim, launch.clone()),
            &[Bind::read(1, part.buffer()), Bind::read_write(2, q.buffer()), Bind::read_write(3, k.buffer()), Bind::read_write(4, v.buffer())],
            grid_1d(gpu, batch * launch.tokens * heads * head_dim / moves.unit)?, // one thread per element (Unit) of the part's q, k and v columns
        )?;
    }
    Ok(Qkv { q, k, v })
}

/// Gradient of [`split_heads_forward`]: dq, dk, dv [B, H, T, hd] → dqkv [B, T, 3·H·hd].
pub fn split_heads_backward(dq: &Tensor, dk: &Tensor, dv: &Tensor) -> Result<Tensor> {
    let shape = match dk.shape() {
        &[b, h, t, hd] => vec![b, t, 3 * h * hd],
        other => other.to_vec(), // the checks below name it
    };
    let tokens = shape.get(1).copied().unwrap_or(0);
    Ok(split_heads_of_parts_backward(dq, dk, dv, &[shape], 0..tokens)?.remove(0))
}

/// Gradient of [`split_heads_of_parts_forward`]: dq [B, H, Tq, hd] (the rows of `queries`), dk,
/// dv [B, H, T, hd] → one gradient per part, shaped like the part (`part_shapes`), a shared part's
/// summed over the batch.
pub fn split_heads_of_parts_backward(dq: &Tensor, dk: &Tensor, dv: &Tensor, part_shapes: &[Vec<usize>], queries: Range<usize>) -> Result<Vec<Tensor>> {
    let op = "split_heads_backward";
    expect_rank(op, dk, "dk", 4, "[B, H, T, hd]")?;
    same_shape(op, dk, dv, "dk", "dv")?;
    expect_rank(op, dq, "dq", 4, "[B, H, Tq, hd]")?;
    same_device(op, dq, dk)?;
    same_device(op, dq, dv)?;
    let (batch, heads, tokens, head_dim) = (dk.shape()[0], dk.shape()[1], dk.shape()[2], dk.shape()[3]);
    check_queries(op, &queries, tokens)?;
    if dq.shape() != [batch, heads, queries.len(), head_dim] {
        return Err(Error::shape(
            op,
            format!("dq has shape {:?} and dk {:?}; dq must be [B, H, Tq, hd] = {:?} for query rows {queries:?}", dq.shape(), dk.shape(), [batch, heads, queries.len(), head_dim]),
        ));
    }
    let width = 3 * heads * head_dim;
    let part_tokens: usize = part_shapes.iter().map(|s| s.get(1).copied().unwrap_or(0)).sum();
    if part_shapes.iter().any(|s| s.len() != 3 || s[2] != width || (s[0] != batch && s[0] != 1)) || part_tokens != tokens {
        return Err(Error::shape(op, format!("parts {part_shapes:?} do not make qkv [B, T, 3·D] = {:?} for dk {:?}", [batch, tokens, width], dk.shape())));
    }
    let gpu = dk.gpu();
    let moves = moves(head_dim);
    let mut start = 0;
    let mut grads = Vec::with_capacity(part_shapes.len());
    for shape in part_shapes {
        let launch = Part { tokens: shape[1], start, broadcast: false, queries: queries.clone() };
        start += launch.tokens;
        let dpart = dk.empty_like_shape(&[batch, launch.tokens, width])?; // B rows, even for a shared part
        gpu.dispatch(
            moves.shader,
            "split_heads_backward",
            &head_params(moves, batch, tokens, heads, head_dim, launch.clone()),
            &[Bind::read_write(5, dpart.buffer()), Bind::read(6, dq.buffer()), Bind::read(7, dk.buffer()), Bind::read(8, dv.buffer())],
            grid_1d(gpu, batch * launch.tokens * heads * head_dim / moves.unit)?,
        )?;
        grads.push(if shape[0] == 1 && batch > 1 { sum_over_batch(&dpart)? } else { dpart });
    }
    Ok(grads)
}

/// hd from qkv's last axis 3·H·hd.
fn head_dim_of(op: &'static str, qkv: &Tensor, three_d: usize, heads: usize) -> Result<usize> {
    if heads == 0 || three_d == 0 || !three_d.is_multiple_of(3 * heads) {
        return Err(Error::shape(op, format!("qkv {:?}: last axis must be 3·H·hd for H = {heads} heads", qkv.shape())));
    }
    Ok(three_d / (3 * heads))
}

/// The query rows must be some of the T tokens, at least one.
fn check_queries(op: &'static str, queries: &Range<usize>, tokens: usize) -> Result<()> {
    if queries.is_empty() || queries.end > tokens {
        return Err(Error::shape(op, format!("query rows {queries:?} must be a non-empty range within the {tokens} tokens")));
    }
    Ok(())
}

/// x: [B, H, T, hd] → y: [B, T, H·hd].
pub fn merge_heads_forward(x: &Tensor) -> Result<Tensor> {
    expect_rank("merge_heads_forward", x, "x", 4, "[B, H, T, hd]")?;
    let (batch, heads, tokens, head_dim) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let y = x.empty_like_shape(&[batch, tokens, heads * head_dim])?;
    let gpu = x.gpu();
    let moves = moves(head_dim);
    let params = head_params(moves, batch, tokens, heads, head_dim, Part::whole(tokens));
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
    let params = head_params(moves, batch, tokens, heads, head_dim, Part::whole(tokens));
    gpu.dispatch(moves.shader, "merge_heads_backward", &params, &[Bind::read(9, dy.buffer()), Bind::read_write(10, dx.buffer())], grid_1d(gpu, dy.numel() / moves.unit)?)?;
    Ok(dx)
}
