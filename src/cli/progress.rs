//! What `vpt train` and `vpt demo` show while they train: a progress bar with loss, accuracy
//! and images/s, one line per epoch, and the first Ctrl-C turned into a clean stop after the
//! step in progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vpt_wgsl::train::observer::{EpochSummary, Observer, StepInfo};

/// Progress bar with loss, accuracy and images/s; one summary line per epoch.
pub struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
    /// Set by Ctrl-C (see [`stop_on_ctrl_c`]): training stops after the step in progress.
    stop: Option<Arc<AtomicBool>>,
}

impl ProgressBar {
    pub fn new() -> Self {
        ProgressBar { bar: None, stop: None }
    }
    /// This observer, stopping the run after the step in progress at the first Ctrl-C.
    pub fn stopping_on_ctrl_c(self) -> Self {
        ProgressBar { stop: stop_on_ctrl_c(), ..self }
    }
    /// Clear the bar (the epoch lines stay).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A flag the first Ctrl-C sets (and says so); a second one ends the process at once, as Ctrl-C
/// usually does. None if the handler cannot be installed (then Ctrl-C ends the process, and
/// `--resume` continues from the last finished epoch all the same).
fn stop_on_ctrl_c() -> Option<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping after the step in progress (press again to quit at once)");
    });
    installed.ok().map(|()| stop)
}

impl Observer for ProgressBar {
    fn should_stop(&mut self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
    fn start(&mut self, message: &str) {
        println!("{}", super::flags::in_flag_words(message));
    }
    fn step(&mut self, s: &StepInfo) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(s.batches as u64);
            bar.set_style(indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}").expect("valid template").progress_chars("=> "));
            bar
        });
        bar.set_length(s.batches as u64);
        bar.set_prefix(s.epoch.to_string());
        bar.set_position(s.batch as u64);
        bar.set_message(format!("loss {:.4} acc {:.1}% {:.1} img/s", s.loss, 100.0 * s.accuracy, s.images_per_second));
    }
    fn epoch(&mut self, e: &EpochSummary) {
        // A run that validates on nothing (a sweep's refit on train + val) says so.
        let val = if e.val_accuracy.is_nan() { "no val".to_string() } else { format!("val acc {:5.1}%", 100.0 * e.val_accuracy) };
        let line = format!(
            "epoch {:>3}/{}: lr {:.5}  loss {:.4}  train acc {:5.1}%  {val}  {:.1} img/s  {:.1} s",
            e.epoch,
            e.epochs,
            e.lr,
            e.train_loss,
            100.0 * e.train_accuracy,
            e.images_per_second,
            e.seconds
        );
        match &self.bar {
            // A hidden bar (output is not a terminal) would swallow println: print directly.
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => println!("{line}"),
        }
    }
}

impl Default for ProgressBar {
    fn default() -> Self {
        Self::new()
    }
}
