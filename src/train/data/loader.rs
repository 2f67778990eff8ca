//! Batches and the epoch loader: decoding and augmenting on background threads while the GPU
//! works, in an order that depends only on the seed and the epoch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use super::image_file::load_image;
use super::normalize::Normalization;
use super::split::{augment_seed, epoch_order};
use super::transform::Transform;
use super::Sample;
use crate::{Error, Result};

/// One batch on the host: images [B, 3, size, size] flattened, labels [B], paths for reporting.
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub paths: Vec<PathBuf>,
    pub size: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// [B, 3, size, size].
    pub fn shape(&self) -> [usize; 4] {
        [self.len(), 3, self.size, self.size]
    }
}

/// The shape, labels and paths; not the hundreds of thousands of pixel values.
impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("shape", &self.shape()).field("labels", &self.labels).field("paths", &self.paths).finish()
    }
}

/// Batches prepared ahead of the consumer: enough to hide a slow batch, little memory
/// (a 64 × 3 × 224 × 224 f32 batch is 38 MB).
const PREFETCH: usize = 2;
/// Most threads decoding one batch at once; more rarely helps and would crowd the GPU driver.
const MAX_DECODE_THREADS: usize = 8;

/// What the background thread needs to make any batch of the epoch.
struct EpochPlan {
    samples: Vec<Sample>,
    /// Sample indices in epoch order.
    order: Vec<usize>,
    transform: Transform,
    norm: Normalization,
    batch_size: usize,
    seed: u64,
    epoch: usize,
}

impl EpochPlan {
    fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Batch `k`: decoded on up to MAX_DECODE_THREADS threads, each sample with its own seed, so
    /// the result does not depend on how the work was shared out.
    fn make_batch(&self, k: usize, stop: &AtomicBool) -> Result<Batch> {
        let end = ((k + 1) * self.batch_size).min(self.order.len());
        let indices = &self.order[k * self.batch_size..end];
        let size = self.transform.size();
        let per_image = 3 * size * size;
        let mut images = vec![0f32; indices.len() * per_image];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_DECODE_THREADS);
        let chunk = indices.len().div_ceil(threads).max(1);
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = images.chunks_mut(chunk * per_image).zip(indices.chunks(chunk)).map(|(out, idx)| scope.spawn(move || self.load_into(idx, out, stop))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        // Chunks are in batch order, so the error reported is the first failing sample's.
        results.into_iter().collect::<Result<()>>()?;
        Ok(Batch { images, labels: indices.iter().map(|&i| self.samples[i].label as u32).collect(), paths: indices.iter().map(|&i| self.samples[i].path.clone()).collect(), size })
    }

    /// Load samples `idx` into `out` ([idx.len(), 3, size, size]).
    fn load_into(&self, idx: &[usize], out: &mut [f32], stop: &AtomicBool) -> Result<()> {
        let per_image = out.len() / idx.len();
        for (&i, dst) in idx.iter().zip(out.chunks_mut(per_image)) {
            if stop.load(Ordering::Relaxed) {
                return Ok(()); // the loader was dropped: nobody will see this batch
            }
            let mut rng = augment_seed(self.seed, self.epoch, i);
            let img = load_image(&self.samples[i].path, self.transform, self.norm, &mut rng)?;
            dst.copy_from_slice(&img);
        }
        Ok(())
    }
}

/// The batches of one epoch, made on a background thread (decode + augment overlap GPU work),
/// deterministic given (seed, epoch): shuffled with a per-epoch seed when `shuffle`, the random
/// crops/flips of sample i seeded from (seed, epoch, i), so batch k is the same whichever thread
/// made it, and whether or not earlier batches were consumed. `start_batch` skips the first
/// batches without decoding them (for resuming mid-epoch). The last batch may be smaller.
/// A file that fails to decode is an `Err` naming it, after which the iteration ends. Dropping
/// the loader stops its thread promptly.
pub struct EpochLoader {
    num_batches: usize,
    /// Index of the batch the next `next()` returns.
    next_batch: usize,
    rx: Option<mpsc::Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    /// An error to report instead of batches (a bad argument, a thread that would not start).
    pending: Option<Error>,
    /// Set once an error was returned: the iteration is over.
    failed: bool,
}

impl EpochLoader {
    #[allow(clippy::too_many_arguments)] // the owner's API: each argument is one plain setting
    pub fn new(samples: Vec<Sample>, transform: Transform, norm: Normalization, batch_size: usize, shuffle: bool, seed: u64, epoch: usize, start_batch: usize) -> EpochLoader {
        let mut loader = EpochLoader { num_batches: 0, next_batch: start_batch, rx: None, stop: Arc::new(AtomicBool::new(false)), worker: None, pending: None, failed: false };
        if batch_size == 0 {
            loader.pending = Some(Error::invalid("batch", "batch size is 0; use a batch size of at least 1"));
            return loader;
        }
        let order = epoch_order(samples.len(), shuffle, seed, epoch);
        let plan = EpochPlan { samples, order, transform, norm, batch_size, seed, epoch };
        loader.num_batches = plan.num_batches();
        if start_batch < loader.num_batches {
            loader.start(plan, start_batch);
        }
        loader
    }

    /// Batches in the whole epoch, including any skipped by `start_batch`.
    pub fn num_batches(&self) -> usize {
        self.num_batches
    }

    /// Start the background thread at batch `first`.
    fn start(&mut self, plan: EpochPlan, first: usize) {
        let (tx, rx) = mpsc::sync_channel(PREFETCH);
        let stop = Arc::clone(&self.stop);
        let spawned = std::thread::Builder::new().name("vpt-data".to_string()).spawn(move || produce(plan, first, tx, stop));
        match spawned {
            Ok(handle) => {
                self.worker = Some(handle);
                self.rx = Some(rx);
            }
            Err(e) => self.pending = Some(Error::Internal { what: "EpochLoader".into(), msg: format!("could not start the data loading thread: {e}") }),
        }
    }

    /// The worker hung up early: it can only have panicked (a bug), so say so with its message.
    fn worker_died(&mut self) -> Error {
        let msg = match self.worker.take().map(JoinHandle::join) {
            Some(Err(panic)) => panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "unknown panic".to_string()),
            _ => "it stopped early".to_string(),
        };
        Error::Internal { what: "EpochLoader".into(), msg: format!("the data loading thread failed: {msg}") }
    }
}

/// The background thread: make batches `first..` in order until done, an error, or a stop.
fn produce(plan: EpochPlan, first: usize, tx: mpsc::SyncSender<Result<Batch>>, stop: Arc<AtomicBool>) {
    for k in first..plan.num_batches() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let batch = plan.make_batch(k, &stop);
        let failed = batch.is_err();
        // A send error means the loader was dropped: stop quietly.
        if tx.send(batch).is_err() || failed {
            return;
        }
    }
}

impl Iterator for EpochLoader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.pending.take() {
            self.failed = true;
            return Some(Err(e));
        }
        if self.failed || self.next_batch >= self.num_batches {
            return None;
        }
        let item = match self.rx.as_ref()?.recv() {
            Ok(item) => item,
            Err(_) => Err(self.worker_died()),
        };
        self.failed = item.is_err();
        self.next_batch += 1;
        Some(item)
    }
}

impl Drop for EpochLoader {
    fn drop(&mut self) {
        // Ask the worker to stop between images, unblock a pending send by hanging up, then wait
        // for it: at most one image decode, and no thread outlives its loader.
        self.stop.store(true, Ordering::Relaxed);
        self.rx.take();
        if let Some(handle) = self.worker.take() {
            let _ = handle.join();
        }
    }
}
