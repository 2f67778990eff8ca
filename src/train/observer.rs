//! What a run reports as it goes ([`Observer`]): each step, each epoch, and whether to stop.

/// Progress of one step, for a progress bar.
pub struct StepInfo {
    pub epoch: usize,
    pub batch: usize,
    pub batches: usize,
    pub loss: f32,
    pub accuracy: f64,
    pub images_per_second: f64,
}

/// One line per epoch.
#[derive(Clone, Debug)]
pub struct EpochSummary {
    pub epoch: usize,
    pub epochs: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    pub images_per_second: f64,
    pub seconds: f64,
    /// Tensor storage the engine holds at the end of the epoch, pool included
    /// ([`Gpu::held_bytes`]): flat from one epoch to the next in a healthy run.
    pub gpu_bytes: u64,
}

/// Where training reports: the CLI draws a progress bar, tests stay quiet.
pub trait Observer {
    fn start(&mut self, _message: &str) {}
    fn step(&mut self, _info: &StepInfo) {}
    fn epoch(&mut self, _summary: &EpochSummary) {}
    /// Asked after every step: true stops the run there (the CLI: Ctrl-C). The files keep the
    /// last finished epoch, and `--resume` continues from it.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// An observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}
