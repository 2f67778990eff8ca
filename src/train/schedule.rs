//! The learning-rate schedule of the official VPT code: linear warm-up, then half a cosine.

/// KMnP/vpt's `WarmupCosineSchedule` (cycles 0.5): a linear warm-up from 0, then half a cosine
/// down to 0. `lr(step)` is the rate applied at `step`, counting from 0, so step 0 trains at 0
/// exactly as torch's LambdaLR does.
#[derive(Clone, Copy, Debug)]
pub struct WarmupCosine {
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl WarmupCosine {
    pub fn lr(&self, step: usize) -> f64 {
        let factor = if step < self.warmup_steps {
            step as f64 / (self.warmup_steps.max(1)) as f64
        } else {
            let progress = (step - self.warmup_steps) as f64 / (self.total_steps.saturating_sub(self.warmup_steps).max(1)) as f64;
            (0.5 * (1.0 + (std::f64::consts::PI * 2.0 * 0.5 * progress).cos())).max(0.0)
        };
        self.base_lr * factor
    }
}
