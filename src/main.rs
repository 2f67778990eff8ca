//! The `vpt` command-line tool. Each subcommand is a thin layer over the library: parse the
//! arguments, call it, print the result; any error is printed and the exit code is non-zero.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vpt_wgsl::gpu::{backends_from_env, list_adapters, AdapterReport};
use vpt_wgsl::vit::{LoadOptions, Vit};
use vpt_wgsl::vpt::{self, VptTask};
use vpt_wgsl::{Gpu, Result, Tensor};

#[derive(Parser)]
#[command(name = "vpt", version, about = "Visual Prompt Tuning on hand-written WGSL kernels (wgpu: Vulkan, Metal, DX12, GL)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter with its backend, driver, optional features and the limits that
    /// matter for large tensors. Honours WGPU_BACKEND (e.g. `vulkan`, `gl`).
    Info,
    /// One VPT forward and backward pass: logits, loss and the gradients of prompts and head.
    ///
    /// MODEL: timm state dict (.safetensors, f32/f16/bf16); TASK: `prompts` [depth, P, D],
    /// `head.weight` [C, D], `head.bias` [C], metadata `pool`; BATCH: `images` f32 [B, 3, H, W]
    /// (normalised), `labels` i64 [B]. OUT gets `logits`, `loss`, `grad.prompts`,
    /// `grad.head.weight`, `grad.head.bias`.
    Grad {
        #[command(flatten)]
        inputs: ModelInputs,
        #[arg(long)]
        out: String,
    },
    /// Logits only (no labels needed in BATCH); OUT gets `logits`.
    Forward {
        #[command(flatten)]
        inputs: ModelInputs,
        #[arg(long)]
        out: String,
    },
}

/// The files `grad` and `forward` read.
#[derive(clap::Args)]
struct ModelInputs {
    /// Backbone checkpoint with timm names (.safetensors).
    #[arg(long)]
    model: String,
    /// Task file: prompts, head, pooling.
    #[arg(long)]
    task: String,
    /// Batch file: images (and labels).
    #[arg(long)]
    batch: String,
    /// Attention heads, when the checkpoint's metadata has neither `num_heads` nor `preset`.
    #[arg(long)]
    num_heads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Grad { inputs, out } => grad(&inputs, &out),
        Command::Forward { inputs, out } => forward(&inputs, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<()> {
    let backends = backends_from_env();
    let adapters = list_adapters(backends);
    if adapters.is_empty() {
        return Err(vpt_wgsl::Error::NoAdapter { backends: format!("{backends:?}") });
    }
    for (i, adapter) in adapters.iter().enumerate() {
        print_adapter(i, adapter);
    }
    let chosen = Gpu::new()?;
    println!("default choice: {} (override with WGPU_BACKEND / WGPU_ADAPTER_NAME)", chosen.describe());
    Ok(())
}

/// Load backbone, task and batch; the batch's image size decides the size the model runs at.
fn load_inputs(gpu: &Gpu, inputs: &ModelInputs) -> Result<(Vit, VptTask, Tensor, Vec<u32>)> {
    let (images, labels) = vpt::read_batch(gpu, &inputs.batch)?;
    let img_size = Some((images.shape()[2], images.shape()[3]));
    let vit = Vit::load(gpu, &inputs.model, &LoadOptions { num_heads: inputs.num_heads, img_size })?;
    let task = VptTask::read(gpu, &inputs.task)?;
    task.check_against(&vit)?;
    Ok((vit, task, images, labels))
}

fn grad(inputs: &ModelInputs, out: &str) -> Result<()> {
    let gpu = Gpu::new()?;
    let (vit, task, images, labels) = load_inputs(&gpu, inputs)?;
    let step = vpt::vpt_grad(&gpu, &vit, &task, &images, &labels)?;
    vpt::write_step(out, &step)?;
    println!("loss {:.6} → {out}", step.loss.to_scalar()?);
    Ok(())
}

fn forward(inputs: &ModelInputs, out: &str) -> Result<()> {
    let gpu = Gpu::new()?;
    let (vit, task, images, _) = load_inputs(&gpu, inputs)?;
    let logits = vpt::vpt_forward(&gpu, &vit, &task, &images)?;
    let data = logits.to_vec()?;
    vpt_wgsl::io::write_f32_tensors(out, &[("logits", logits.shape(), &data)], Default::default())?;
    println!("logits {:?} → {out}", logits.shape());
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
    println!(
        "  max workgroup size (x, y, z):     ({}, {}, {})",
        l.max_compute_workgroup_size_x, l.max_compute_workgroup_size_y, l.max_compute_workgroup_size_z
    );
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
