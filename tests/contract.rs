//! The Rust↔WGSL contract, checked: every launcher against the entry point it launches.
//!
//! Each launch records what the launcher built (`Gpu::launches`: the `Params` fields with their
//! WGSL names and types, and each storage binding with the access the launcher expects). Here
//! every kernel is launched once at a tiny shape, then each record is held against the entry
//! point's declarations as naga parses them from the very source the GPU compiled:
//! - every `Params` field, in order, has the name and scalar type of the WGSL struct's field, and
//!   the launcher fills the whole struct;
//! - every buffer bound is a binding the entry point uses, with the access the launcher expects
//!   (`read` or `read_write`), and every storage binding it uses is bound;
//! - every texture it reads is bound to texels (`TexelBind`), and nothing else is;
//! - `WG` in `wgsl/lib/flat.wgsl` is the `WG_1D` the launchers size their grids with, and
//!   `TEXELS_PER_ROW` in `wgsl/lib/texel_rows.wgsl` the one texels are laid out with.
//!
//! And no entry point escapes: each one of every family must have been launched here.

use std::collections::BTreeSet;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use vpt_wgsl::gpu::{Access, KernelChoices, LaunchRecord, ParamType, TEXELS_PER_ROW, WG_1D};
use vpt_wgsl::kernels::matmul::{self, MatmulKernel, MatmulNeed, MatmulOptions};
use vpt_wgsl::kernels::{attention, cross_entropy, elementwise, gelu, halves, heads, layernorm, optim, patch, reduce, softmax, tokens, ALL_SHADERS};
use vpt_wgsl::{DType, Gpu, Labels, Result, Tensor};

/// A parsed and validated shader: naga's module, and which globals each entry point uses.
struct Parsed {
    module: naga::Module,
    info: naga::valid::ModuleInfo,
}

fn parse(source: &str) -> Parsed {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{}", e.emit_to_string(source)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::all()).validate(&module).expect("valid WGSL");
    Parsed { module, info }
}

/// The scalar type of a `Params` field, as the Rust side names it.
fn param_type(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<ParamType> {
    match module.types[ty].inner {
        naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Uint, width: 4 }) => Some(ParamType::U32),
        naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Float, width: 4 }) => Some(ParamType::F32),
        _ => None,
    }
}

/// Check one launcher's record against the entry point it launched; the error says what differs.
fn check_launch(op: &str, record: &LaunchRecord, parsed: &Parsed) -> std::result::Result<(), String> {
    let Parsed { module, info } = parsed;
    let index = module.entry_points.iter().position(|e| e.name == record.entry).ok_or_else(|| format!("{op}: no entry point {:?}", record.entry))?;
    let uses = info.get_entry_point(index);
    // (binding, access, the global's type) for each resource this entry point uses.
    let mut used = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let (Some(binding), false) = (&var.binding, uses[handle].is_empty()) else { continue };
        used.push((binding.binding, &var.space, var.ty, var.name.clone().unwrap_or_default()));
    }
    for &(binding, ref space, ty, ref name) in &used {
        match space {
            naga::AddressSpace::Uniform if binding == 0 => {
                let naga::TypeInner::Struct { members, .. } = &module.types[ty].inner else { return Err(format!("{op}: binding 0 is not a struct")) };
                let wgsl: Vec<(String, Option<ParamType>)> = members.iter().map(|m| (m.name.clone().unwrap_or_default(), param_type(module, m.ty))).collect();
                let rust: Vec<(String, Option<ParamType>)> = record.params.iter().map(|&(n, t)| (n.to_string(), Some(t))).collect();
                if wgsl != rust {
                    return Err(format!("{op}: the launcher's Params {rust:?} differ from the WGSL struct {wgsl:?}"));
                }
            }
            naga::AddressSpace::Storage { access } => {
                let expected = if access.contains(naga::StorageAccess::STORE) { Access::ReadWrite } else { Access::Read };
                match record.bindings.iter().find(|(b, _)| *b == binding) {
                    None => return Err(format!("{op}: binding {binding} ({name}) is used by the entry point but not bound")),
                    Some((_, a)) if *a != expected => return Err(format!("{op}: binding {binding} ({name}) is declared {expected:?} but the launcher binds it as {a:?}")),
                    Some(_) => {}
                }
            }
            naga::AddressSpace::Handle if matches!(module.types[ty].inner, naga::TypeInner::Image { .. }) => {
                if !record.texels.contains(&binding) {
                    return Err(format!("{op}: texture binding {binding} ({name}) is used by the entry point but no texels are bound there"));
                }
            }
            other => return Err(format!("{op}: binding {binding} ({name}) is in address space {other:?}, which no launcher binds")),
        }
    }
    for binding in record.bindings.iter().map(|(b, _)| b).chain(&record.texels) {
        if !used.iter().any(|u| u.0 == *binding) {
            return Err(format!("{op}: the launcher binds slot {binding}, which the entry point does not declare or use"));
        }
    }
    Ok(())
}

fn gpu() -> Gpu {
    Gpu::new().unwrap_or_else(|e| panic!("{e}"))
}

fn t(gpu: &Gpu, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_slice(gpu, shape, &(0..n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect::<Vec<_>>()).unwrap()
}

/// Launch every kernel of every family once, at tiny shapes.
fn launch_every_kernel(gpu: &Gpu) -> Result<()> {
    let (a, b) = (t(gpu, &[2, 4, 8]), t(gpu, &[2, 4, 8]));
    elementwise::add_forward(&a, &b)?;
    elementwise::mul_forward(&a, &b)?;
    elementwise::bias_add_forward(&a, &t(gpu, &[8]))?;
    elementwise::scale_forward(&a, 0.5)?;
    elementwise::mul_last_forward(&a, &t(gpu, &[8]))?;
    elementwise::inverse_sqrt_forward(&a)?;
    elementwise::accumulate(&a, &b)?;
    gelu::gelu_forward(&a)?;
    gelu::gelu_backward(&a, &b)?;
    gelu::gelu_tanh_forward(&a)?;
    gelu::gelu_tanh_backward(&a, &b)?;
    halves::from_halves(&halves::to_halves(&a)?)?;
    reduce::sum_rows_forward(&a)?;
    reduce::sum_rows_backward(&t(gpu, &[8]), 8)?;
    reduce::mean_forward(&a)?;
    reduce::mean_backward(&t(gpu, &[1]), &[2, 4, 8])?;
    let y = softmax::softmax_forward(&a)?;
    softmax::softmax_backward(&y, &b)?;
    let (w, bias) = (t(gpu, &[8]), t(gpu, &[8]));
    let ln = layernorm::layernorm_forward(&a, &w, &bias, 1e-6)?;
    layernorm::layernorm_backward(&a, &w, &ln.mean, &ln.rstd, &b, true)?;
    let aln = layernorm::add_layernorm_forward(&a, &b, &w, &bias, 1e-6)?;
    layernorm::add_layernorm_backward(&aln.sum, &w, &aln.mean, &aln.rstd, &b, &a, true)?;
    // Rows 5 wide (not a multiple of 4): the builds that read them as f32s.
    let (a5, b5, w5) = (t(gpu, &[2, 3, 5]), t(gpu, &[2, 3, 5]), t(gpu, &[5]));
    let ln = layernorm::layernorm_forward(&a5, &w5, &w5, 1e-6)?;
    layernorm::layernorm_backward(&a5, &w5, &ln.mean, &ln.rstd, &b5, true)?;
    let aln = layernorm::add_layernorm_forward(&a5, &b5, &w5, &w5, 1e-6)?;
    layernorm::add_layernorm_backward(&aln.sum, &w5, &aln.mean, &aln.rstd, &b5, &a5, true)?;
    let labels = Labels::new(gpu, &[1, 3], 4)?;
    let ce = cross_entropy::cross_entropy_forward(&t(gpu, &[2, 4]), &labels)?;
    cross_entropy::cross_entropy_backward(&ce.probs, &labels, &t(gpu, &[1]))?;
    let qkv = heads::split_heads_forward(&t(gpu, &[2, 3, 24]), 2)?;
    heads::split_heads_backward(&qkv.q, &qkv.k, &qkv.v)?;
    let merged = heads::merge_heads_forward(&qkv.q)?;
    heads::merge_heads_backward(&merged, 2)?;
    let out = attention::attention_forward(&qkv.q, &qkv.k, &qkv.v, 0.25)?;
    attention::attention_backward(&qkv.q, &qkv.k, &qkv.v, &out, &qkv.v, 0.25)?;
    attention::attention_backward_with(attention::DqPath::Kernel, &qkv.q, &qkv.k, &qkv.v, &out, &qkv.v, 0.25)?;
    // Heads 5 wide (not a multiple of 4): the builds that read them as f32s.
    let odd = heads::split_heads_forward(&t(gpu, &[2, 3, 30]), 2)?;
    heads::split_heads_backward(&odd.q, &odd.k, &odd.v)?;
    heads::merge_heads_backward(&heads::merge_heads_forward(&odd.q)?, 2)?;
    let out = attention::attention_forward(&odd.q, &odd.k, &odd.v, 0.25)?;
    attention::attention_backward(&odd.q, &odd.k, &odd.v, &out, &odd.v, 0.25)?;
    attention::attention_backward_with(attention::DqPath::Kernel, &odd.q, &odd.k, &odd.v, &out, &odd.v, 0.25)?;
    let parts = [&t(gpu, &[2, 1, 8]), &a];
    let cat = tokens::concat_tokens_forward(&parts)?;
    tokens::slice_tokens_forward(&cat, 1, 2)?;
    tokens::slice_tokens_forward(&t(gpu, &[2, 3, 5]), 1, 2)?; // D = 5: the build that moves f32s
    let patches = patch::im2col_forward(&t(gpu, &[1, 3, 8, 8]), 4)?;
    patch::im2col_backward(&patches, &[1, 3, 8, 8], 4)?;
    let param = t(gpu, &[8]);
    optim::sgd_step(&param, &w, &Tensor::zeros(gpu, &[8])?, optim::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.0, nesterov: false })?;
    optim::adamw_step(&param, &w, &Tensor::zeros(gpu, &[8])?, &Tensor::zeros(gpu, &[8])?, 1, optim::AdamW::default())?;
    let linear = MatmulOptions { trans_a: false, trans_b: true };
    let (x, weight) = (t(gpu, &[8, 8]), t(gpu, &[8, 8]));
    for kernel in MatmulKernel::all_on(gpu) {
        matmul::matmul_forward_with(kernel, &x, &weight, Some(&w), linear)?;
        let fused = matmul::matmul_gelu_forward_with(kernel, &x, &weight, Some(&w), linear)?;
        matmul::matmul_gelu_grad_with(kernel, &x, &weight, MatmulOptions::default(), &fused.pre)?;
    }
    matmul::matmul_backward(&x, &weight, &x, linear, MatmulNeed { a: true, b: true, bias: true })?;
    // The build reading B as f16 (a frozen weight under --precision f16), where the adapter has it.
    if gpu.features().contains(wgpu::Features::SHADER_F16) {
        let weight16 = Tensor::from_f16_stored(gpu, &[8, 8], &weight.to_vec()?)?;
        for kernel in MatmulKernel::all_on(gpu) {
            matmul::matmul_forward_with(kernel, &x, &weight16, Some(&w), linear)?;
            let fused = matmul::matmul_gelu_forward_with(kernel, &x, &weight16, Some(&w), linear)?;
            matmul::matmul_gelu_grad_with(kernel, &x, &weight16, MatmulOptions::default(), &fused.pre)?;
        }
    }
    // The builds reading B from a frozen weight's texels, f32 and, where the adapter has f16
    // weights at all, f16.
    let textured = t(gpu, &[8, 8]).with_texels()?;
    let mut texel_weights = vec![textured.clone()];
    if gpu.features().contains(wgpu::Features::SHADER_F16) {
        texel_weights.push(Tensor::from_slice_as(gpu, &[8, 8], &textured.to_vec()?, DType::F16)?.with_texels()?);
    }
    for b in &texel_weights {
        for kernel in MatmulKernel::all_on(gpu) {
            matmul::matmul_forward_with(kernel, &x, b, Some(&w), linear)?;
            let fused = matmul::matmul_gelu_forward_with(kernel, &x, b, Some(&w), linear)?;
            matmul::matmul_gelu_grad_with(kernel, &x, b, MatmulOptions::default(), &fused.pre)?;
        }
    }
    gpu.wait_for_all()
}

#[test]
fn every_launcher_matches_its_entry_point() {
    // The row kernels are built with subgroup reductions where the device has SUBGROUP, without
    // them otherwise: launching everything on the device and again on the same adapter opened
    // without subgroups reaches both builds.
    // The fused attention's subgroup kernels read the heads from texels on some adapters
    // (`attention::HEADS_KEY`): the same adapter told to read their buffers reaches that build.
    let gpu = gpu();
    let plain = gpu.reopen_without(wgpu::Features::SUBGROUP).unwrap();
    let from_buffers = gpu.reopen_without(wgpu::Features::empty()).unwrap();
    let mut choices = KernelChoices::for_gpu(&from_buffers, "contract");
    choices.choices.insert(attention::HEADS_KEY.to_string(), attention::HEADS_BUFFERS.to_string());
    from_buffers.use_choices(choices);
    let mut launches = std::collections::HashMap::new();
    for device in [&gpu, &plain, &from_buffers] {
        launch_every_kernel(device).unwrap();
        launches.extend(device.launches());
    }
    let mut errors = Vec::new();
    for (op, record) in &launches {
        if let Err(e) = check_launch(op, record, &parse(record.source)) {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "launchers that break their kernel's contract:\n{}", errors.join("\n"));

    // No entry point escapes the check above, except those of a build this adapter cannot run,
    // and those a build is never launched for (matmul's subgroup builds serve one kernel, the
    // attention's its three `_sg` kernels and, on a CPU adapter, the untranspose of dQ, which
    // the build reading texels leaves to the other).
    let mut missing = BTreeSet::new();
    for shader in ALL_SHADERS {
        if !gpu.features().contains(shader.needs) {
            eprintln!("{} needs {:?}, which {} lacks: its launches are checked on adapters that have it", shader.name, shader.needs, gpu.describe());
            continue;
        }
        // The launcher takes those builds only for the kernels that need SUBGROUP.
        let subgroup_entries: Vec<&str> = MatmulKernel::ALL.into_iter().filter(|k| k.needs().contains(wgpu::Features::SUBGROUP)).map(MatmulKernel::entry).collect();
        let attention_sg_texels: Vec<&str> = vec!["attention_forward_sg", "attention_backward_dkdv_sg", "attention_backward_dq_sg"];
        let mut attention_sg = attention_sg_texels.clone();
        if gpu.info().device_type == wgpu::DeviceType::Cpu {
            attention_sg.push("attention_backward_dq_untranspose"); // dQ's turned matmul runs on CPU adapters only
        }
        let serves_only = if [&matmul::SHADER_SUBGROUP, &matmul::SHADER_F16_SUBGROUP, &matmul::SHADER_TEXELS_SUBGROUP, &matmul::SHADER_TEXELS_F16_SUBGROUP].iter().any(|s| s.name == shader.name) {
            Some(&subgroup_entries)
        } else if shader.name == attention::SHADER_SUBGROUP.name {
            Some(&attention_sg)
        } else if shader.name == attention::SHADER_TEXELS_SUBGROUP.name {
            Some(&attention_sg_texels)
        } else {
            None
        };
        for entry in parse(shader.source).module.entry_points.iter().filter(|e| serves_only.is_none_or(|only| only.contains(&e.name.as_str()))) {
            let op = format!("{}::{}", shader.name, entry.name);
            if !launches.contains_key(&op) {
                missing.insert(op);
            }
        }
    }
    assert!(missing.is_empty(), "entry points never launched here, so never checked: {missing:?}; launch them in launch_every_kernel");
}

/// The check itself catches what it is for: a binding the entry point does not have, a binding
/// with the wrong access, a field out of order, a field missing.
#[test]
fn a_launcher_that_breaks_the_contract_fails_the_check() {
    let gpu = gpu();
    let (a, b) = (t(&gpu, &[4, 8]), t(&gpu, &[4, 8]));
    elementwise::add_forward(&a, &b).unwrap();
    let good = gpu.launches()["elementwise::add_forward"].clone();
    let parsed = parse(good.source);
    check_launch("add_forward", &good, &parsed).unwrap();

    let mut slot_15 = good.clone();
    slot_15.bindings.push((15, Access::Read));
    let err = check_launch("add_forward", &slot_15, &parsed).unwrap_err();
    assert!(err.contains("slot 15"), "{err}");

    let mut wrong_access = good.clone();
    wrong_access.bindings[0].1 = Access::ReadWrite;
    assert!(check_launch("add_forward", &wrong_access, &parsed).unwrap_err().contains("declared Read"));

    let mut unbound = good.clone();
    unbound.bindings.pop();
    assert!(check_launch("add_forward", &unbound, &parsed).unwrap_err().contains("not bound"));

    let mut swapped = good.clone();
    swapped.params.swap(0, 1);
    assert!(check_launch("add_forward", &swapped, &parsed).unwrap_err().contains("Params"));

    let mut short = good;
    short.params.pop();
    assert!(check_launch("add_forward", &short, &parsed).unwrap_err().contains("Params"));
}

/// The value of `const NAME: u32 = …u;` in a WGSL source.
fn u32_const(source: &str, name: &str) -> u32 {
    let module = naga::front::wgsl::parse_str(source).unwrap();
    let (_, c) = module.constants.iter().find(|(_, c)| c.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no const {name}"));
    let naga::Expression::Literal(naga::Literal::U32(value)) = module.global_expressions[c.init] else { panic!("{name} is not a u32 literal") };
    value
}

/// `WG` in wgsl/lib/flat.wgsl sizes the workgroups; `WG_1D` sizes the grids. They must agree.
#[test]
fn flat_workgroup_size_matches_the_launchers() {
    assert_eq!(u32_const(include_str!("../wgsl/lib/flat.wgsl"), "WG"), WG_1D, "WG in wgsl/lib/flat.wgsl vs WG_1D in src/gpu/shader.rs");
}

/// `TEXELS_PER_ROW` in wgsl/lib/texel_rows.wgsl addresses the texels `Gpu::texels` lays out
/// with src/gpu/texels.rs's: they must agree.
#[test]
fn texel_rows_match_the_loader() {
    let wgsl = u32_const(include_str!("../wgsl/lib/texel_rows.wgsl"), "TEXELS_PER_ROW");
    assert_eq!(wgsl, TEXELS_PER_ROW, "TEXELS_PER_ROW in wgsl/lib/texel_rows.wgsl vs src/gpu/texels.rs");
}
