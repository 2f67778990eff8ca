//! `vpt info`: every GPU adapter with its backend, driver, optional features and limits, the
//! default choice and its tune cache.

use crate::cli::settings::use_tune_cache;
use vpt_wgsl::gpu::{backends_from_env, list_adapters, AdapterReport};
use vpt_wgsl::{Gpu, Result};

pub fn run() -> Result<()> {
    let backends = backends_from_env()?;
    let adapters = list_adapters(backends);
    if adapters.is_empty() {
        return Err(vpt_wgsl::Error::NoAdapter { backends: format!("{backends:?}") });
    }
    for (i, adapter) in adapters.iter().enumerate() {
        print_adapter(i, adapter);
    }
    let chosen = Gpu::new()?;
    println!("default choice: {} (override with WGPU_BACKEND / WGPU_ADAPTER_NAME)", chosen.describe());
    match (chosen.tune_cache_path(), use_tune_cache(&chosen)?) {
        (_, Some(path)) => {
            let c = chosen.choices().expect("just loaded");
            println!("tune cache: {} ({} choices, measured on {})", path.display(), c.choices.len(), c.measured_on);
        }
        (Some(path), None) => println!("tune cache: none (`vpt tune` would write {}); the fixed rule picks kernels", path.display()),
        (None, None) => println!("tune cache: none (no cache folder; set VPT_CACHE_DIR); the fixed rule picks kernels"),
    }
    Ok(())
}

fn print_adapter(index: usize, a: &AdapterReport) {
    let yes_no = |f: wgpu::Features| if a.features.contains(f) { "yes" } else { "no" };
    let l = &a.limits;
    println!("adapter {index}: {}", a.info.name);
    println!("  backend:        {:?}", a.info.backend);
    println!("  device type:    {:?}", a.info.device_type);
    println!("  driver:         {}", format!("{} {}", a.info.driver, a.info.driver_info).trim());
    println!("  vendor/device:  {:#06x}/{:#06x}", a.info.vendor, a.info.device);
    println!(
        "  features:       timestamp queries {}, timestamps inside passes {}, shader f16 {}, subgroups {}",
        yes_no(wgpu::Features::TIMESTAMP_QUERY),
        yes_no(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
        yes_no(wgpu::Features::SHADER_F16),
        yes_no(wgpu::Features::SUBGROUP)
    );
    println!("  max buffer size:                  {}", human_bytes(l.max_buffer_size));
    println!("  max storage buffer binding size:  {}", human_bytes(l.max_storage_buffer_binding_size));
    println!("  max storage buffers per stage:    {}", l.max_storage_buffers_per_shader_stage);
    println!("  max workgroup storage:            {}", human_bytes(l.max_compute_workgroup_storage_size as u64));
    println!("  max invocations per workgroup:    {}", l.max_compute_invocations_per_workgroup);
    println!("  max workgroup size (x, y, z):     ({}, {}, {})", l.max_compute_workgroup_size_x, l.max_compute_workgroup_size_y, l.max_compute_workgroup_size_z);
    println!("  max workgroups per dimension:     {}", l.max_compute_workgroups_per_dimension);
}

fn human_bytes(b: u64) -> String {
    const MIB: u64 = 1 << 20;
    if b >= MIB {
        format!("{b} bytes ({:.1} MiB)", b as f64 / MIB as f64)
    } else {
        format!("{b} bytes ({:.1} KiB)", b as f64 / 1024.0)
    }
}
