//! The bounded queue: what the driver holds for work not yet run stays a few hundred MiB.
//!
//! Everything a recorded command uses stays alive in wgpu until that command has run: each
//! launch's uniform buffer and bind group, an upload's staging buffer, and every tensor buffer
//! that the engine let go of (the pool, `memory.rs`, gives back the longest idle when it holds
//! more than 512 MiB) while a pending or queued kernel still reads it. Two things can let that
//! grow without bound, and each has its bound here:
//! - **the pending submission**: launches are recorded into one encoder, submitted every 512
//!   (`MAX_PENDING_DISPATCHES`). At ViT-B/16 batch 64 one tensor is 50–200 MB, the pool holds
//!   only a few, and 512 launches let go of gigabytes: the step held 14.4 GiB resident for
//!   6.2 GiB of tensors (2026-12-05, lavapipe). So the encoder is also submitted once what was
//!   let go of while it was recorded reaches [`MAX_RELEASED_BEFORE_SUBMIT`].
//! - **the queue**: recording takes the host microseconds, running may take the GPU far longer,
//!   so submissions could pile up behind a slow GPU. After every submit, while more than
//!   [`MAX_IN_FLIGHT`] are unfinished, the host waits for the oldest; only the host waits, the
//!   GPU always has the next submission queued. (Lavapipe bounds this itself, measured: its
//!   submit returns only once the previous submission has run, so it never has more than one
//!   waiting. A GPU with a real queue does not.)
//!
//! "Unfinished" is the GPU's own word, not a guess: each submission registers
//! `Queue::on_submitted_work_done`, whose callback wgpu runs once it has seen the work done (at
//! every submit and poll), and that callback takes the submission off the count.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::Gpu;
use crate::error::{Error, Result};

/// The most submissions left queued and unfinished when the host moves on. Two: the GPU runs
/// one while the next waits queued behind it, so it never idles for want of work, and the host
/// records the one after meanwhile. Not measured against other values: on lavapipe the bound
/// never binds (see above), and no GPU with a real queue was at hand; `benches/gpu.sh` times the
/// step where one is.
pub const MAX_IN_FLIGHT: usize = 2;

/// Submit the pending commands once the buffers let go of while they were recorded (by the pool,
/// or an upload's staging buffer) add up to this many bytes: the driver can free none of them
/// before the commands that use them have run.
///
/// Without it only the count of launches (`MAX_PENDING_DISPATCHES`, 512) closed a submission, and
/// at ViT-B batch 64, where one tensor is 50–200 MB and the pool (512 MiB) holds few, 512 launches
/// let go of gigabytes. Measured on lavapipe (2026-12-05, the resident peak of a ViT-B/16 VPT-deep
/// step at batch 64, see docs/benchmarks.md "Resident memory"): without this bound 14.4 GiB for
/// 6.0 GiB of tensors; with 256 MiB, 7.7 GiB; with 64 MiB, 7.6 GiB; with `--recompute block`
/// (1.6 GiB of tensors), 3.0 GiB at 256 MiB and 2.8 GiB at 64 MiB. What the driver may hold for
/// nothing is at most about (`MAX_IN_FLIGHT` + 1) × (this + the largest tensor), so the smaller
/// the better, as long as the extra submissions cost nothing measurable (the batch-8 step's
/// time, docs/benchmarks.md).
pub const MAX_RELEASED_BEFORE_SUBMIT: u64 = 64 << 20;

/// The submissions not yet known to be finished, oldest first, and the count the GPU keeps.
#[derive(Default)]
pub(super) struct InFlight {
    submitted: VecDeque<wgpu::SubmissionIndex>,
    /// Submissions whose `on_submitted_work_done` callback has not run yet.
    unfinished: Arc<AtomicUsize>,
    /// The most [`InFlight::unfinished`] ever was when the host moved on after a submit.
    most_left: usize,
}

impl InFlight {
    /// Note a submission just made on `queue`.
    fn submitted(&mut self, index: wgpu::SubmissionIndex, queue: &wgpu::Queue) {
        self.unfinished.fetch_add(1, Ordering::SeqCst);
        let unfinished = self.unfinished.clone();
        queue.on_submitted_work_done(move || {
            unfinished.fetch_sub(1, Ordering::SeqCst);
        });
        self.submitted.push_back(index);
    }

    /// Forget the submissions the GPU has finished: a queue runs its submissions in order, so
    /// the unfinished ones are the newest.
    fn forget_finished(&mut self) {
        let unfinished = self.unfinished.load(Ordering::SeqCst);
        while self.submitted.len() > unfinished {
            self.submitted.pop_front();
        }
    }
}

impl Gpu {
    /// After a submit (called with the pending commands locked, so submissions are noted in
    /// their order): note it, then wait for the oldest unfinished submissions until at most
    /// [`MAX_IN_FLIGHT`] are left.
    pub(super) fn bound_in_flight(&self, in_flight: &mut InFlight, index: wgpu::SubmissionIndex) -> Result<()> {
        in_flight.submitted(index, &self.inner.queue);
        in_flight.forget_finished();
        while in_flight.submitted.len() > MAX_IN_FLIGHT {
            let oldest = in_flight.submitted.pop_front().expect("more than MAX_IN_FLIGHT entries");
            self.inner
                .device
                .poll(wgpu::PollType::Wait { submission_index: Some(oldest), timeout: None })
                .map_err(|e| Error::Gpu { op: "submit".into(), msg: format!("waiting for an earlier submission to finish: {e}") })?;
            in_flight.forget_finished();
        }
        let left = in_flight.unfinished.load(Ordering::SeqCst);
        in_flight.most_left = in_flight.most_left.max(left);
        Ok(())
    }

    /// The most submissions that were ever left queued and unfinished on this device when the
    /// host went on recording: at most [`MAX_IN_FLIGHT`] (what `tests/memory.rs` checks).
    pub fn most_submissions_in_flight(&self) -> usize {
        self.pending().pending.in_flight.most_left
    }
}
