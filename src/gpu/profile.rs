//! Profiling: how long each kernel ran, with GPU timestamps where the adapter has them and the
//! host's clock otherwise. [`Gpu::profile`] turns it on around a closure; while it is on, each
//! launch asks the GPU to write a timestamp as its pass starts and ends (see
//! [`Pending::timestamps_for`]), and the timestamps are resolved into a buffer at the end of each
//! encoder and read back when the profile ends.

use std::time::Instant;

use super::{Gpu, Pending, MAX_PENDING_DISPATCHES};
use crate::error::{Error, Result};

/// How [`Gpu::profile`] timed the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingMethod {
    /// Timestamps the GPU writes at the start and end of each kernel's compute pass
    /// (`Features::TIMESTAMP_QUERY`): the kernel's own time and nothing else.
    GpuTimestamps,
    /// For adapters without timestamp queries: each kernel submitted on its own and waited for,
    /// timed on the host. Includes the submission and the wait, so short kernels read long.
    WallClock,
}

impl TimingMethod {
    /// "gpu-timestamps" or "wall-clock", for reports.
    pub fn name(self) -> &'static str {
        match self {
            TimingMethod::GpuTimestamps => "gpu-timestamps",
            TimingMethod::WallClock => "wall-clock",
        }
    }
}

/// One kernel launch in a [`Profile`].
#[derive(Clone, Debug)]
pub struct KernelTime {
    /// "shader::entry", as in [`Gpu::dispatch_counts`].
    pub name: String,
    pub ns: u64,
}

/// Every kernel launched inside [`Gpu::profile`], in launch order, with how they were timed.
#[derive(Clone, Debug)]
pub struct Profile {
    pub method: TimingMethod,
    pub kernels: Vec<KernelTime>,
}

impl Profile {
    /// The kernels' times added up.
    pub fn total_ns(&self) -> u64 {
        self.kernels.iter().map(|k| k.ns).sum()
    }
}

/// A profile being recorded.
pub(super) struct Profiler {
    method: TimingMethod,
    /// Timestamp queries of the passes in the pending encoder: pass i writes 2i (start) and
    /// 2i + 1 (end). Created with the first timed pass of each encoder.
    queries: Option<wgpu::QuerySet>,
    /// Kernel name of each pass in the pending encoder.
    names: Vec<String>,
    /// Submitted encoders whose timestamps are on their way to a mappable buffer.
    submitted: Vec<(wgpu::Buffer, Vec<String>)>,
    /// Finished times (wall clock: as each kernel completes; timestamps: at the end).
    kernels: Vec<KernelTime>,
}

/// Room for the timestamps of every pass one encoder can hold (wgpu allows 4096 queries a set).
const TIMESTAMP_QUERIES: u32 = 2 * MAX_PENDING_DISPATCHES;

impl Profiler {
    fn new(method: TimingMethod) -> Profiler {
        Profiler { method, queries: None, names: Vec::new(), submitted: Vec::new(), kernels: Vec::new() }
    }

    /// Where the pass about to be recorded for kernel `name` writes its timestamps, if timed so.
    fn time_pass(&mut self, device: &wgpu::Device, name: &str) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        if self.method != TimingMethod::GpuTimestamps {
            return None;
        }
        let index = 2 * self.names.len() as u32;
        self.names.push(name.to_string());
        let queries =
            self.queries.get_or_insert_with(|| device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("kernel timestamps"), ty: wgpu::QueryType::Timestamp, count: TIMESTAMP_QUERIES }));
        Some(wgpu::ComputePassTimestampWrites { query_set: queries, beginning_of_pass_write_index: Some(index), end_of_pass_write_index: Some(index + 1) })
    }

    /// At the end of an encoder about to be submitted: copy its timestamps into a buffer we can
    /// map once the GPU is done.
    pub(super) fn resolve_timestamps(&mut self, device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder) {
        let Some(queries) = self.queries.take() else { return };
        let count = 2 * self.names.len() as u32;
        let bytes = count as u64 * wgpu::QUERY_SIZE as u64;
        let buffer = |label, usage| device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bytes, usage, mapped_at_creation: false });
        let resolved = buffer("timestamps", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let readback = buffer("timestamps readback", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
        self.submitted.push((readback, std::mem::take(&mut self.names)));
    }
}

impl Gpu {
    /// Run `ops` and time every kernel it launches, with GPU timestamps where the adapter has
    /// them and the host's clock otherwise ([`TimingMethod`]). Work recorded before is finished
    /// first and not counted. Launches from other threads on this device in the meantime are
    /// timed too: profile on a device of your own.
    ///
    /// ```no_run
    /// # fn main() -> vpt_wgsl::Result<()> {
    /// # use vpt_wgsl::{Gpu, Tensor, kernels::gelu::gelu_forward};
    /// let gpu = Gpu::new()?;
    /// let x = Tensor::zeros(&gpu, &[1024, 1024])?;
    /// let (_y, profile) = gpu.profile(|| gelu_forward(&x))?;
    /// println!("{} ns by {}", profile.total_ns(), profile.method.name());
    /// # Ok(()) }
    /// ```
    pub fn profile<T>(&self, ops: impl FnOnce() -> Result<T>) -> Result<(T, Profile)> {
        let method = if self.inner.features.contains(wgpu::Features::TIMESTAMP_QUERY) { TimingMethod::GpuTimestamps } else { TimingMethod::WallClock };
        self.profile_with(method, ops)
    }

    /// [`Gpu::profile`] with the method chosen by the caller; `GpuTimestamps` is an error on an
    /// adapter without timestamp queries.
    pub fn profile_with<T>(&self, method: TimingMethod, ops: impl FnOnce() -> Result<T>) -> Result<(T, Profile)> {
        let _turn = self.turn();
        if method == TimingMethod::GpuTimestamps && !self.inner.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Gpu { op: "profile".into(), msg: format!("{} has no timestamp queries (Features::TIMESTAMP_QUERY); time on the host clock instead", self.describe()) });
        }
        self.flush()?;
        self.wait()?;
        {
            let mut pending = self.inner.pending.lock().unwrap();
            if pending.profiler.is_some() {
                return Err(Error::Gpu { op: "profile".into(), msg: "this device is already being profiled".into() });
            }
            pending.profiler = Some(Profiler::new(method));
        }
        // Submit what `ops` recorded, then stop profiling whatever happened, so that an error
        // inside `ops` does not leave the device profiling for ever.
        let value = ops();
        let flushed = self.flush();
        let profiler = self.inner.pending.lock().unwrap().profiler.take().expect("profiler set above");
        let (value, ()) = (value?, flushed?);
        let kernels = self.read_profile(profiler)?;
        Ok((value, Profile { method, kernels }))
    }

    /// Wait for the GPU, then turn every submitted encoder's timestamps into kernel times.
    fn read_profile(&self, mut profiler: Profiler) -> Result<Vec<KernelTime>> {
        let map_error = |msg: String| Error::Gpu { op: "profile".into(), msg };
        let (tx, rx) = std::sync::mpsc::channel();
        for (readback, _) in &profiler.submitted {
            let tx = tx.clone();
            readback.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
        }
        self.wait()?;
        for _ in &profiler.submitted {
            rx.recv().map_err(|_| map_error("map callback never ran".into()))?.map_err(|e| map_error(e.to_string()))?;
        }
        // Ticks to nanoseconds.
        let period = self.inner.queue.get_timestamp_period() as f64;
        for (readback, names) in &profiler.submitted {
            let view = readback.get_mapped_range(..).map_err(|e| map_error(e.to_string()))?;
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
            for (name, pair) in names.iter().zip(ticks.chunks_exact(2)) {
                // A clock that wraps or goes backwards gives 0, not a huge number.
                let ns = (pair[1].saturating_sub(pair[0]) as f64 * period) as u64;
                profiler.kernels.push(KernelTime { name: name.clone(), ns });
            }
        }
        Ok(profiler.kernels)
    }

    /// The method of the profile being recorded, if one is.
    fn profiling(&self) -> Option<TimingMethod> {
        self.inner.pending.lock().unwrap().profiler.as_ref().map(|p| p.method)
    }

    /// Record one launch with `record`, timed if a profile on the host clock is running: then
    /// everything before it is finished first, and it is submitted alone and waited for.
    pub(super) fn timed_on_host(&self, op: &str, record: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.profiling() != Some(TimingMethod::WallClock) {
            return record();
        }
        self.flush()?;
        self.wait()?;
        record()?;
        let start = Instant::now();
        self.flush()?;
        self.wait()?;
        let ns = start.elapsed().as_nanos() as u64;
        if let Some(p) = self.inner.pending.lock().unwrap().profiler.as_mut() {
            p.kernels.push(KernelTime { name: op.to_string(), ns });
        }
        Ok(())
    }
}

impl Pending {
    /// Where the pass about to be recorded for kernel `op` writes its timestamps: somewhere while
    /// a profile with GPU timestamps runs, nowhere otherwise.
    pub(super) fn timestamps_for(&mut self, device: &wgpu::Device, op: &str) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        self.profiler.as_mut().and_then(|p| p.time_pass(device, op))
    }
}
