//! What a launch consults besides the device, each a type of its own, behind this one struct:
//! where kernel sources come from (`sources.rs`), the kernel choices `vpt tune` measured
//! (`tuning.rs`), and who hears of each launch: the log of the tests and benchmarks
//! (`launch_log.rs`) and the trace being recorded, if any (`trace.rs`). `Gpu` is the device.

use std::sync::Arc;

use super::launch::Launch;
use super::launch_log::LaunchLog;
use super::sources::KernelSources;
use super::trace::TraceRecorder;
use super::tuning::TuneChoices;

#[derive(Default)]
pub struct Aides {
    pub sources: KernelSources,
    pub choices: TuneChoices,
    pub log: LaunchLog,
    /// Shared with the devices reopened from this one.
    pub trace: Arc<TraceRecorder>,
}

impl Aides {
    /// Tell the log and the trace that `launch` was recorded.
    pub fn launched(&self, launch: &Launch) {
        self.trace.launched(launch, || self.sources.compiled(launch.shader));
        self.log.note(launch);
    }

    /// The aides of a device reopened from this one: the same sources, choices and trace; a log
    /// of its own.
    pub fn reopened(&self) -> Aides {
        Aides { sources: self.sources.copy(), choices: self.choices.copy(), log: LaunchLog::default(), trace: self.trace.clone() }
    }
}
