//! Compiled pipelines, cached, and wgpu's error scopes turned into `Result`s.
//!
//! wgpu reports most mistakes (a wrong binding, a buffer too large, running out of memory) through
//! "error scopes" rather than return values; [`Gpu::scoped`] turns those into `Result` errors that
//! name the op, instead of the default behaviour of panicking.

use super::shader::{Constants, Shader};
use super::sources::WgslReader;
use super::Gpu;
use crate::error::{Error, Result};

/// A compiled pipeline is one entry point of one shader with one set of override constants
/// (each value kept as its bit pattern, so the key can be hashed).
pub(super) type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

impl Gpu {
    /// Run `f` inside wgpu error scopes and turn any validation, out-of-memory or internal error
    /// it raised into `Error::Gpu` naming `op`.
    ///
    /// On the browser's WebGPU a scope's verdict is a promise, which only the page's event loop
    /// can settle, and waiting for it here would freeze the page: `f` runs without scopes there,
    /// and its errors reach the device's uncaptured-error handler, which the next read-back
    /// (`Gpu::read_async`) reports.
    pub fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        if self.is_browser() {
            return Ok(f());
        }
        let _turn = self.turn();
        let device = &self.inner.device;
        // Scopes nest like a stack: pushed outer to inner, popped inner to outer.
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let errors = [validation.pop(), oom.pop(), internal.pop()].map(pollster::block_on);
        match errors.into_iter().flatten().next() {
            Some(e) => Err(Error::Gpu { op: op.to_string(), msg: e.to_string() }),
            None => Ok(value),
        }
    }

    /// The compiled pipeline for one entry point of one WGSL file, its `override` constants set to
    /// `constants` (the WGSL defaults where empty); compiled on first use, then cached.
    pub fn pipeline(&self, shader: &Shader, entry: &'static str, constants: Constants) -> Result<wgpu::ComputePipeline> {
        let _turn = self.turn();
        let key: PipelineKey = (shader.name, entry, constants.iter().map(|&(name, v)| (name, v.to_bits())).collect());
        if let Some(p) = self.inner.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(shader)?;
        let label = format!("{}::{entry}", shader.name);
        let pipeline = self.scoped(&label, || {
            self.inner.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                // `None` lets wgpu derive the bind group layout from the bindings this entry point uses.
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every kernel writes workgroup memory before reading it, so the zero-fill
                    // wgpu would otherwise insert is wasted work.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })?;
        self.inner.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Compile every kernel from the WGSL files `read` gives by their path under `wgsl/`
    /// ("lib/flat.wgsl", "matmul.wgsl") instead of the copies embedded in the binary: to try an
    /// edited kernel without rebuilding (natively, `Gpu::use_wgsl_dir`). Must come before the
    /// first launch.
    pub fn use_kernel_sources(&self, read: WgslReader) -> Result<()> {
        if !self.inner.modules.lock().unwrap().is_empty() {
            return Err(Error::invalid("kernel sources", "kernels were already compiled from the embedded sources; give the sources before the first launch"));
        }
        self.inner.aides.sources.use_reader(read);
        Ok(())
    }

    /// The shader module of one WGSL family, compiled once.
    fn module(&self, shader: &Shader) -> Result<wgpu::ShaderModule> {
        let _turn = self.turn();
        let mut modules = self.inner.modules.lock().unwrap();
        if let Some(m) = modules.get(shader.name) {
            return Ok(m.clone());
        }
        let source = self.inner.aides.sources.source(shader)?;
        let module = self.scoped(shader.name, || self.inner.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(shader.name), source: wgpu::ShaderSource::Wgsl(source) }))?;
        modules.insert(shader.name, module.clone());
        Ok(module)
    }
}
