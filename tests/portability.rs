//! Portability: every WGSL kernel parses, validates, and translates with naga to SPIR-V (Vulkan),
//! MSL (Metal), HLSL (DX12) and GLSL ES 3.1 (GL). Metal and DX12 cannot run on this machine; this
//! catches what would break there (reserved words, unsupported constructs) before a user sees it.
//! Needs no GPU.

use naga::back::{glsl, hlsl, msl, spv, PipelineConstants};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use vpt_wgsl::gpu::Shader;
use vpt_wgsl::kernels::ALL_SHADERS;

fn parse_and_validate(shader: &Shader) -> (naga::Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(shader.source).unwrap_or_else(|e| panic!("{}.wgsl does not parse:\n{}", shader.name, e.emit_to_string(shader.source)));
    // Only what every backend supports (no f16, no f64), plus subgroup operations for the builds
    // that need them (`Shader::needs`; wgpu compiles those only where the adapter has SUBGROUP).
    let mut validator = Validator::new(ValidationFlags::all(), capabilities(shader));
    if shader.needs.contains(wgpu::Features::SUBGROUP) {
        validator.subgroup_stages(naga::valid::ShaderStages::COMPUTE).subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    let info = validator.validate(&module).unwrap_or_else(|e| panic!("{}.wgsl does not validate:\n{}", shader.name, e.emit_to_string(shader.source)));
    // Kernels with `override` constants (matmul's specialised layouts) get their values when the
    // pipeline is created; wgpu resolves them before translating, and so do we, with the defaults.
    // Both sides of every branch they decide are still in the module, so both get translated.
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, None, &PipelineConstants::default()).unwrap_or_else(|e| panic!("{}.wgsl: override constants: {e}", shader.name));
    (module.into_owned(), info.into_owned())
}

/// What naga may accept in `shader`: nothing optional, except what a build declares it needs
/// (subgroup operations; f16 values, with the storage buffers of 16-bit values that come with
/// them; f16 packing of f32 values, a downlevel flag).
fn capabilities(shader: &Shader) -> Capabilities {
    let mut caps = Capabilities::empty();
    if shader.needs.contains(wgpu::Features::SUBGROUP) {
        caps |= Capabilities::SUBGROUP;
    }
    if shader.needs_downlevel.contains(wgpu::DownlevelFlags::SHADER_F16_IN_F32) {
        caps |= Capabilities::SHADER_FLOAT16_IN_FLOAT32; // pack2x16float and its kin, on f32 values
    }
    if shader.needs.contains(wgpu::Features::SHADER_F16) {
        caps |= Capabilities::SHADER_FLOAT16 | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    }
    caps
}

#[test]
fn every_kernel_translates_to_spirv() {
    for shader in ALL_SHADERS {
        let (module, info) = parse_and_validate(shader);
        let words = spv::write_vec(&module, &info, &spv::Options::default(), None).unwrap_or_else(|e| panic!("{} → SPIR-V: {e}", shader.name));
        assert!(words.len() > 5, "{}: empty SPIR-V", shader.name);
    }
}

#[test]
fn every_kernel_translates_to_msl() {
    for shader in ALL_SHADERS {
        let (module, info) = parse_and_validate(shader);
        let (source, translation) = msl::write_string(&module, &info, &msl::Options::default(), &msl::PipelineOptions::default()).unwrap_or_else(|e| panic!("{} → MSL: {e}", shader.name));
        for name in translation.entry_point_names {
            name.unwrap_or_else(|e| panic!("{} → MSL entry point: {e}", shader.name));
        }
        assert!(source.contains("kernel"), "{}: MSL has no kernel function", shader.name);
    }
}

#[test]
fn every_kernel_translates_to_hlsl() {
    for shader in ALL_SHADERS {
        let (module, info) = parse_and_validate(shader);
        let (options, pipeline) = (hlsl::Options::default(), hlsl::PipelineOptions::default());
        let mut source = String::new();
        hlsl::Writer::new(&mut source, &options, &pipeline).write(&module, &info, None).unwrap_or_else(|e| panic!("{} → HLSL: {e}", shader.name));
        assert!(source.contains("[numthreads("), "{}: HLSL has no compute entry point", shader.name);
    }
}

/// GLSL is written one entry point at a time, at the version wgpu's GL backend needs for compute.
/// wgpu's GL backend never offers SUBGROUP, so the subgroup builds are never compiled there.
#[test]
fn every_kernel_translates_to_glsl_es_310() {
    let options = glsl::Options { version: glsl::Version::new_gles(310), ..glsl::Options::default() };
    for shader in ALL_SHADERS.iter().filter(|s| s.needs.is_empty()) {
        let (module, info) = parse_and_validate(shader);
        for entry in &module.entry_points {
            let pipeline = glsl::PipelineOptions { shader_stage: naga::ShaderStage::Compute, entry_point: entry.name.clone(), multiview: None };
            let mut source = String::new();
            glsl::Writer::new(&mut source, &module, &info, &options, &pipeline, naga::proc::BoundsCheckPolicies::default())
                .and_then(|mut w| w.write())
                .unwrap_or_else(|e| panic!("{}::{} → GLSL ES 3.10: {e}", shader.name, entry.name));
            assert!(source.starts_with("#version 310 es"), "{}::{}: unexpected GLSL header", shader.name, entry.name);
        }
    }
}

/// Every file in wgsl/ (families) and wgsl/lib/ (what they include) is embedded and registered,
/// so none escapes these checks (or the binary).
#[test]
fn every_wgsl_file_is_registered() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wgsl");
    let stems = |dir: &std::path::Path| -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("wgsl/ directory")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    };
    let mut families: Vec<String> = ALL_SHADERS.iter().map(|s| s.file.to_string()).collect();
    families.sort();
    families.dedup();
    assert_eq!(stems(&root), families, "wgsl/ files vs kernels::ALL_SHADERS");
    let mut libs: Vec<String> = ALL_SHADERS.iter().flat_map(|s| s.uses.iter().map(|l| l.to_string())).collect();
    libs.sort();
    libs.dedup();
    assert_eq!(stems(&root.join("lib")), libs, "wgsl/lib/ files vs the files the families use");
    let read = |path: String| std::fs::read_to_string(root.join(path)).unwrap();
    for shader in ALL_SHADERS {
        let mut on_disk: String = shader.uses.iter().map(|lib| read(format!("lib/{lib}.wgsl")) + "\n").collect();
        on_disk += &read(format!("{}.wgsl", shader.file));
        assert_eq!(on_disk, shader.source, "{}.wgsl differs from the embedded copy", shader.name);
    }
}
