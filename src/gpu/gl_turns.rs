//! On the GL backend only: one thread at a time in wgpu.
//!
//! wgpu's GL backend guards the GL context with a lock that it waits on for at most 6 s before
//! panicking ("Could not lock adapter context"), and it holds that lock for as long as a shader
//! compiles or the GPU takes to finish the work a `poll` waits for. Two threads sharing one GL
//! device (the test suite's do) then crash whenever one of them compiles or waits for long, e.g.
//! with Mesa's shader cache still cold, where llvmpipe compiles each matmul pipeline for seconds.
//! So on GL each `Gpu` method that reaches wgpu first takes its turn here, and a thread waits for
//! its turn as long as it takes. A thread may take its turn again while it holds it (a method
//! calling another); the turn passes on when the outermost one ends.
//!
//! The turns are one per process, not one per device: every device opened on a GL adapter (a
//! test's private device, the same adapter reopened without subgroups) shares that adapter's
//! context lock, so they must take turns with each other too. Opening a device takes a turn as
//! well ([`shared`]).
//!
//! On every other backend [`Gpu::turn`] is a no-op.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::ThreadId;

use super::Gpu;

/// Whose turn it is to call into wgpu, on one GL device.
#[derive(Default, Debug)]
pub(super) struct Turns {
    /// The thread whose turn it is, and how many nested turns it holds.
    holder: Mutex<(Option<ThreadId>, usize)>,
    passed_on: Condvar,
}

/// The process's turns for the GL backend, shared by every GL device.
pub(super) fn shared() -> Arc<Turns> {
    static TURNS: OnceLock<Arc<Turns>> = OnceLock::new();
    TURNS.get_or_init(Arc::default).clone()
}

/// A turn taken with [`Turns::take`]; passes it on when dropped.
pub(super) struct Turn<'a>(&'a Turns);

impl Turns {
    pub(super) fn take(&self) -> Turn<'_> {
        let me = std::thread::current().id();
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        while holder.0.is_some_and(|other| other != me) {
            holder = self.passed_on.wait(holder).unwrap_or_else(|e| e.into_inner());
        }
        *holder = (Some(me), holder.1 + 1);
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut holder = self.0.holder.lock().unwrap_or_else(|e| e.into_inner());
        holder.1 -= 1;
        if holder.1 == 0 {
            holder.0 = None;
            self.0.passed_on.notify_one();
        }
    }
}

impl Gpu {
    /// This thread's turn to call into wgpu, on GL; nothing elsewhere. Every method that reaches
    /// wgpu, or takes a lock that one which does may take after it, starts here, so that the turn
    /// is always the first lock a thread takes. Buffers the full pool let go of on another thread
    /// are destroyed here, in this thread's turn (see `memory.rs`).
    pub(super) fn turn(&self) -> Option<Turn<'_>> {
        let turn = self.inner.turns.as_deref().map(Turns::take)?;
        self.inner.memory.release_pending();
        Some(turn)
    }
}

#[cfg(test)]
mod tests {
    use super::Turns;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A thread may take its turn again while holding it; another thread waits until the
    /// outermost turn ends.
    #[test]
    fn turns_are_reentrant_and_exclusive() {
        let turns = Arc::new(Turns::default());
        let other_ran = Arc::new(AtomicBool::new(false));
        let outer = turns.take();
        let inner = turns.take(); // the same thread again: must not block
        let other = {
            let (turns, other_ran) = (turns.clone(), other_ran.clone());
            std::thread::spawn(move || {
                let _turn = turns.take();
                other_ran.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!other_ran.load(Ordering::SeqCst), "another thread took the turn while this one held it");
        drop(inner);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!other_ran.load(Ordering::SeqCst), "the turn passed on before the outermost one ended");
        drop(outer);
        other.join().unwrap();
        assert!(other_ran.load(Ordering::SeqCst));
    }
}
