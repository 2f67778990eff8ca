//! The grid `vpt sweep` searches (learning rate × weight decay), what each of its runs gave, and
//! how the best is picked: the highest validation top-1, the earlier pair on a tie.

use crate::error::{Error, Result};

/// The paper's base learning rates (VPT, Jia et al. 2022, Appendix A), searched by default.
pub const PAPER_LRS: &[f64] = &[50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05];
/// The paper's weight decays, searched by default.
pub const PAPER_WDS: &[f32] = &[0.01, 0.001, 0.0001, 0.0];

/// One point of the grid: a base learning rate (`lr`, the rate used is lr × batch / 256) and a
/// weight decay (`wd`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    pub lr: f64,
    pub wd: f32,
}

impl Pair {
    /// The stem of the run's files in the sweep's `runs/` folder: `lr0.5_wd0.0001`.
    pub fn file_stem(&self) -> String {
        format!("lr{}_wd{}", short(self.lr), short(self.wd as f64))
    }
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lr {}, wd {}", short(self.lr), short(self.wd as f64))
    }
}

/// A grid value as the user would write it: `0.5`, `0.0001`, and `1e30` rather than 31 digits.
pub fn short(value: f64) -> String {
    // An f32 weight decay prints as the decimal it was given as, not its f64 widening.
    let single = value == (value as f32) as f64;
    let plain = if single { (value as f32).to_string() } else { value.to_string() };
    match (plain.len() > 10, single) {
        (false, _) => plain,
        (true, true) => format!("{:e}", value as f32),
        (true, false) => format!("{value:e}"),
    }
}

/// The learning rates and weight decays to try, each list in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub lrs: Vec<f64>,
    pub wds: Vec<f32>,
}

impl Grid {
    /// The paper's grid: 10 learning rates × 4 weight decays.
    pub fn paper() -> Grid {
        Grid { lrs: PAPER_LRS.to_vec(), wds: PAPER_WDS.to_vec() }
    }

    /// Error naming the list at fault unless both lists are non-empty, without repeats, every
    /// learning rate positive and every weight decay zero or more.
    pub fn check(&self) -> Result<()> {
        if self.lrs.is_empty() || self.wds.is_empty() {
            let what = if self.lrs.is_empty() { "lr" } else { "wd" };
            return Err(Error::invalid(what, "names no value; give a comma-separated list such as 1,0.1 (or leave it out for the paper's grid)"));
        }
        if let Some(bad) = self.lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            return Err(Error::invalid("lr", format!("{bad} is not a positive learning rate; every value in the list must be one")));
        }
        if let Some(bad) = self.wds.iter().find(|wd| !(wd.is_finite() && **wd >= 0.0)) {
            return Err(Error::invalid("wd", format!("{bad} is not a weight decay (zero or more); every value in the list must be one")));
        }
        if let Some(twice) = first_repeat(&self.lrs) {
            return Err(Error::invalid("lr", format!("names {twice} twice; give each learning rate once")));
        }
        if let Some(twice) = first_repeat(&self.wds) {
            return Err(Error::invalid("wd", format!("names {twice} twice; give each weight decay once")));
        }
        Ok(())
    }

    /// The first pair (NaN for an empty list, which [`Grid::check`] refuses): a recipe's own
    /// rate before the sweep replaces it with each pair's.
    pub fn first(&self) -> Pair {
        Pair { lr: self.lrs.first().copied().unwrap_or(f64::NAN), wd: self.wds.first().copied().unwrap_or(f32::NAN) }
    }

    /// Every pair, learning rate by learning rate (the order runs are made, and ties broken in).
    pub fn pairs(&self) -> Vec<Pair> {
        self.lrs.iter().flat_map(|&lr| self.wds.iter().map(move |&wd| Pair { lr, wd })).collect()
    }
}

fn first_repeat<T: PartialEq + Copy>(values: &[T]) -> Option<T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| *v)
}

/// How one run of the grid ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every epoch ran. Top-1 in percent, on the validation images after the last epoch.
    Finished { val_top1: f64, train_loss: f64, train_top1: f64 },
    /// The loss stopped being a number at `step` (from 1) of `epoch` (from 1): the run stopped
    /// there and counts as failed.
    Diverged { epoch: usize, step: usize },
}

/// One run of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    pub pair: Pair,
    pub outcome: Outcome,
}

impl RunResult {
    /// Validation top-1 in percent; `None` for a run that failed.
    pub fn val_top1(&self) -> Option<f64> {
        match self.outcome {
            Outcome::Finished { val_top1, .. } => Some(val_top1),
            Outcome::Diverged { .. } => None,
        }
    }
}

/// The run with the highest validation top-1, the earliest of them on a tie; `None` when every
/// run failed.
pub fn best(runs: &[RunResult]) -> Option<&RunResult> {
    let mut best: Option<&RunResult> = None;
    for run in runs {
        if let Some(top1) = run.val_top1() {
            if best.and_then(RunResult::val_top1).is_none_or(|b| top1 > b) {
                best = Some(run);
            }
        }
    }
    best
}

/// The runs as a table, in grid order, the best marked.
pub fn table(runs: &[RunResult]) -> String {
    let chosen = best(runs).map(|r| r.pair);
    let mut out = format!("{:>8} {:>8} {:>9} {:>11}\n", "lr", "wd", "val top-1", "train loss");
    for run in runs {
        let mark = if Some(run.pair) == chosen { "  ← best" } else { "" };
        let line = match run.outcome {
            Outcome::Finished { val_top1, train_loss, .. } => format!("{:>8} {:>8} {:>8.2}% {:>11.4}{mark}", short(run.pair.lr), short(run.pair.wd as f64), val_top1, train_loss),
            Outcome::Diverged { epoch, step } => format!("{:>8} {:>8} {:>9} {:>11}  (diverged at epoch {epoch}, step {step})", short(run.pair.lr), short(run.pair.wd as f64), "failed", "-"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(lr: f64, wd: f32, val_top1: f64) -> RunResult {
        RunResult { pair: Pair { lr, wd }, outcome: Outcome::Finished { val_top1, train_loss: 1.0, train_top1: 50.0 } }
    }

    #[test]
    fn the_best_is_the_highest_top1_and_the_earlier_pair_on_a_tie() {
        let failed = RunResult { pair: Pair { lr: 50.0, wd: 0.0 }, outcome: Outcome::Diverged { epoch: 1, step: 2 } };
        let runs = vec![failed.clone(), finished(1.0, 0.0, 70.0), finished(0.5, 0.0, 80.0), finished(0.1, 0.0, 80.0)];
        assert_eq!(best(&runs).unwrap().pair, Pair { lr: 0.5, wd: 0.0 });
        assert_eq!(best(&[failed]), None);
        let table = table(&runs);
        assert!(table.lines().nth(3).unwrap().ends_with("← best") && table.contains("diverged at epoch 1, step 2"), "{table}");
    }

    #[test]
    fn the_grid_runs_learning_rate_by_learning_rate_and_refuses_bad_lists() {
        let grid = Grid { lrs: vec![1.0, 0.1], wds: vec![0.0, 0.01] };
        let pairs: Vec<String> = grid.pairs().iter().map(Pair::file_stem).collect();
        assert_eq!(pairs, ["lr1_wd0", "lr1_wd0.01", "lr0.1_wd0", "lr0.1_wd0.01"]);
        assert_eq!(Grid::paper().pairs().len(), 40);
        assert_eq!(Pair { lr: 1e30, wd: 0.0001 }.to_string(), "lr 1e30, wd 0.0001");
        assert_eq!(Pair { lr: 0.1, wd: 1e30 }.to_string(), "lr 0.1, wd 1e30");
        for (grid, words) in [
            (Grid { lrs: vec![], wds: vec![0.0] }, "names no value"),
            (Grid { lrs: vec![1.0, -1.0], wds: vec![0.0] }, "-1 is not a positive"),
            (Grid { lrs: vec![1.0], wds: vec![f32::NAN] }, "NaN is not a weight decay"),
            (Grid { lrs: vec![1.0, 1.0], wds: vec![0.0] }, "names 1 twice"),
        ] {
            let err = grid.check().unwrap_err().to_string();
            assert!(err.contains(words), "{err}");
        }
    }
}
