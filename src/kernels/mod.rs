//! Kernel launchers: one file per WGSL family in `wgsl/`, each with its `*_forward` and
//! `*_backward` functions side by side (the matmul's choice among its kernels has a file of its
//! own, `matmul_choice.rs`).
//!
//! Every launcher follows the same steps: check shapes (an error names the op and the shapes),
//! allocate the output, pack the kernel's `Params`, and call [`Gpu::dispatch`]. The
//! WGSL side of that contract (`Params`, `Bind`, the `wgsl/lib/` files a family includes) is in
//! `gpu/shader.rs`.

use crate::error::{Error, Result};
use crate::gpu::{Bind, Gpu, Params, Shader, WG_1D};
use crate::tensor::Tensor;

pub mod attention;
pub mod cross_entropy;
pub mod elementwise;
pub mod gelu;
pub mod halves;
pub mod heads;
pub mod layernorm;
pub mod matmul;
pub mod matmul_choice;
mod moves;
pub mod optim;
pub mod patch;
pub mod reduce;
pub mod softmax;
pub mod tokens;

/// Every kernel source (each family, and its variants), for the portability and contract tests
/// and for `vpt info`.
pub const ALL_SHADERS: &[&Shader] = &[
    &attention::SHADER,
    &attention::SHADER_SCALARS,
    &attention::SHADER_SUBGROUP,
    &attention::SHADER_TEXELS_SUBGROUP,
    &cross_entropy::SHADER,
    &cross_entropy::SHADER_SUBGROUP,
    &elementwise::SHADER,
    &gelu::SHADER,
    &halves::SHADER,
    &heads::SHADER,
    &heads::SHADER_SCALARS,
    &layernorm::SHADER,
    &layernorm::SHADER_SUBGROUP,
    &layernorm::SHADER_SCALARS,
    &layernorm::SHADER_SCALARS_SUBGROUP,
    &matmul::SHADER,
    &matmul::SHADER_F16,
    &matmul::SHADER_SUBGROUP,
    &matmul::SHADER_F16_SUBGROUP,
    &matmul::SHADER_TEXELS,
    &matmul::SHADER_TEXELS_SUBGROUP,
    &matmul::SHADER_TEXELS_F16,
    &matmul::SHADER_TEXELS_F16_SUBGROUP,
    &optim::SHADER,
    &patch::SHADER,
    &reduce::SHADER,
    &softmax::SHADER,
    &softmax::SHADER_SUBGROUP,
    &tokens::SHADER,
    &tokens::SHADER_SCALARS,
];

/// The key of the row kernels' reduction among `vpt tune`'s choices, and its two values.
pub const ROW_REDUCE_KEY: &str = "row_reduce";
pub const ROW_REDUCE_SUBGROUPS: &str = "subgroups";
pub const ROW_REDUCE_WORKGROUP: &str = "workgroup";

/// Which build of a row-reducing family (softmax, layernorm, cross-entropy) to launch: the one
/// reducing with subgroup operations (`wgsl/lib/row_reduce_subgroup.wgsl`) where the device was
/// opened with `SUBGROUP`, else the one reducing through workgroup memory
/// (`wgsl/lib/row_reduce.wgsl`), unless `vpt tune` measured the workgroup build faster on this
/// adapter ([`ROW_REDUCE_KEY`]). Fixed per device, so the same device always runs the same code.
pub(crate) fn row_reduce_shader(gpu: &Gpu, workgroup: &'static Shader, subgroup: &'static Shader) -> &'static Shader {
    if gpu.features().contains(subgroup.needs) && gpu.choice(ROW_REDUCE_KEY).as_deref() != Some(ROW_REDUCE_WORKGROUP) {
        subgroup
    } else {
        workgroup
    }
}

/// The entries of a tune cache that no kernel would use, each said in words: a key no kernel asks
/// for, or a variant that does not exist (a file from another version of vpt-wgsl, or edited).
/// The kernels then take their fixed rule for those shapes, which the user should know.
pub fn unused_choices(choices: &crate::gpu::KernelChoices) -> Vec<String> {
    let known = |key: &str, value: &str| -> std::result::Result<(), String> {
        if key == ROW_REDUCE_KEY {
            return [ROW_REDUCE_SUBGROUPS, ROW_REDUCE_WORKGROUP].contains(&value).then_some(()).ok_or(format!("{ROW_REDUCE_SUBGROUPS} or {ROW_REDUCE_WORKGROUP}"));
        }
        if key.starts_with("matmul ") {
            let names: Vec<&str> = matmul::MatmulKernel::ALL.iter().map(|k| k.name()).collect();
            return matmul::MatmulKernel::by_name(value).map(drop).ok_or(names.join(", "));
        }
        let one_of = |names: &[&str]| names.contains(&value).then_some(()).ok_or(names.join(" or "));
        if key == attention::BUILD_KEY {
            return one_of(&[attention::BUILD_SUBGROUPS, attention::BUILD_PLAIN]);
        }
        if key == attention::HEADS_KEY {
            return one_of(&[attention::HEADS_TEXELS, attention::HEADS_BUFFERS]);
        }
        if key.starts_with("linear dX ") {
            return one_of(&matmul::DxLayout::ALL.map(matmul::DxLayout::name));
        }
        if key.starts_with("linear source ") {
            return one_of(&matmul::WeightSource::ALL.map(matmul::WeightSource::name));
        }
        Err(String::new())
    };
    let mut unused = Vec::new();
    for (key, value) in &choices.choices {
        match known(key, value) {
            Ok(()) => {}
            Err(expected) if expected.is_empty() => unused.push(format!("{key:?} is not a choice any kernel makes")),
            Err(expected) => unused.push(format!("{key:?} names {value:?}, which is not a variant (use {expected})")),
        }
    }
    unused
}

/// Invocations per workgroup of the kernels whose workgroup shares a row (LayerNorm's forward
/// and dx, softmax, `ROW_WG`) or a head's block of rows (the fused attention's forward, dK/dV
/// and dQ, `ROWS_WG`): one SIMD register's 8 lanes on a CPU adapter (lavapipe, llvmpipe), where a
/// workgroup of one register switches no coroutines at its barriers and leaves fewer invocations
/// idle past the last row; 64 on a GPU, the size lavapipe chose before and no GPU has measured.
/// Each family's WGSL says what was measured.
pub fn row_workgroup_threads(gpu: &Gpu) -> u32 {
    if gpu.info().device_type == wgpu::DeviceType::Cpu {
        8
    } else {
        64
    }
}

/// A workgroup size given in place of [`row_workgroup_threads`]'s (the `_with_threads` launchers,
/// for tests that run another adapter's choice): a power of 2 (the tree reductions halve it, the
/// shuffles take whole subgroups), at most the 256 invocations WebGPU promises.
pub(crate) fn check_workgroup_threads(op: &'static str, threads: u32) -> Result<()> {
    if !(threads.is_power_of_two() && threads <= 256) {
        return Err(Error::invalid(op, format!("{threads} invocations per workgroup: it must be a power of 2 from 1 to 256")));
    }
    Ok(())
}

/// Launch `entry` of a family that reduces rows through `wgsl/lib/row_reduce*.wgsl` (LayerNorm,
/// softmax) with `threads` per row: its `ROW_WG` override set to them, on `grid` ([`grid_rows`]).
pub(crate) fn dispatch_per_row(gpu: &Gpu, shader: &Shader, entry: &'static str, threads: u32, params: &Params, buffers: &[Bind], grid: [u32; 3]) -> Result<()> {
    gpu.dispatch_specialized(shader, entry, &[("ROW_WG", f64::from(threads))], params, buffers, grid)
}

/// Grid for a 1-D kernel over `n` elements, one thread each.
pub(crate) fn grid_1d(gpu: &Gpu, n: usize) -> Result<[u32; 3]> {
    let groups = u32::try_from(n.div_ceil(WG_1D as usize)).map_err(|_| Error::shape("grid", format!("{n} elements is more than one launch can cover")))?;
    Ok(gpu.grid(groups))
}

/// Grid for a kernel that runs one workgroup per row (softmax, layernorm, cross-entropy): `rows`
/// workgroups, folded into two dimensions past 65535 (attention has B·H·T ≈ 95k rows). The
/// kernels recover the row as `wid.y * num_workgroups.x + wid.x` and skip the few extra groups.
pub(crate) fn grid_rows(gpu: &Gpu, op: &'static str, rows: usize) -> Result<[u32; 3]> {
    let rows = u32::try_from(rows).map_err(|_| Error::shape(op, format!("{rows} rows is more than one launch can cover")))?;
    Ok(gpu.grid(rows))
}

/// Error unless `a` and `b` have the same shape.
pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor, a_name: &str, b_name: &str) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(op, format!("{a_name} has shape {:?} but {b_name} has shape {:?}; they must match", a.shape(), b.shape())));
    }
    Ok(())
}

/// Error unless `t` has rank `rank`.
pub(crate) fn expect_rank(op: &'static str, t: &Tensor, name: &str, rank: usize, layout: &str) -> Result<()> {
    if t.rank() != rank {
        return Err(Error::shape(op, format!("{name} must be {layout} (rank {rank}), got shape {:?}", t.shape())));
    }
    Ok(())
}

/// Error unless both tensors live on the same device (buffers cannot cross devices).
pub(crate) fn same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if !a.gpu().same_device(b.gpu()) {
        return Err(Error::invalid(op, "the tensors live on different GPU devices; create them all from one Gpu"));
    }
    Ok(())
}
