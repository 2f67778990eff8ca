//! `sweep.json`: what a sweep was asked (the recipe every run shares, the grid), every run's
//! result as it finishes, the best pair, its refit on train + val and the test top-1. Written
//! after every run, so that a killed sweep resumes from it without rerunning a finished pair.
//! Top-1 is in percent throughout.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::grid::{best, Grid, Outcome, Pair, RunResult};
use crate::error::{setting, Error, Result};

/// The refit of the best pair on the training and validation images together.
#[derive(Clone, Debug, PartialEq)]
pub struct Refit {
    pub pair: Pair,
    /// The task file it writes (`best.safetensors` in the sweep's folder).
    pub task_file: String,
    /// Whether every epoch ran (a refit under way when the sweep was killed has not).
    pub finished: bool,
    pub train_loss: f64,
    pub train_top1: f64,
    pub images_per_second: f64,
}

/// Top-1 of the refit task on the test images.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    pub top1: f64,
    pub images: usize,
}

/// Everything `sweep.json` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRecord {
    /// The settings every run shares, by name (`lr` and `wd` aside): a sweep resumes only with
    /// the same.
    pub recipe: BTreeMap<String, String>,
    pub grid: Grid,
    /// The runs done, in grid order.
    pub runs: Vec<RunResult>,
    pub refit: Option<Refit>,
    pub test: Option<Test>,
}

impl SweepRecord {
    /// The record as `sweep.json` holds it.
    pub fn to_json(&self) -> Value {
        let chosen = best(&self.runs);
        json!({
            "recipe": self.recipe,
            "grid": { "lr": self.grid.lrs, "wd": self.grid.wds.iter().map(|&wd| decimal(wd)).collect::<Vec<_>>() },
            "runs": self.runs.iter().map(run_to_json).collect::<Vec<_>>(),
            "best": chosen.map(|r| json!({ "lr": r.pair.lr, "wd": decimal(r.pair.wd), "val_top1": r.val_top1() })),
            "refit": self.refit.as_ref().map(|r| json!({
                "lr": r.pair.lr, "wd": decimal(r.pair.wd), "task_file": r.task_file, "finished": r.finished,
                "train_loss": r.train_loss, "train_top1": r.train_top1, "images_per_second": r.images_per_second,
            })),
            "test_top1": self.test.as_ref().map(|t| t.top1),
            "test_images": self.test.as_ref().map(|t| t.images),
        })
    }

    /// Write `sweep.json` at `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json()).expect("JSON values serialise");
        crate::io::write_atomically(path, text.as_bytes())
    }

    /// Read the record a sweep wrote at `path`.
    pub fn read(path: &Path) -> Result<SweepRecord> {
        let bad = |msg: String| Error::Format { path: path.display().to_string(), msg: format!("{msg}; it is not a sweep.json that vpt sweep wrote (start again with `force`)") };
        let text = crate::io::read_regular_text(path, 64 << 20).map_err(bad)?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("does not parse as JSON ({e})")))?;
        from_json(&v).map_err(bad)
    }

    /// Error, naming each setting that differs (then and now), unless `now` is this record's
    /// recipe.
    pub fn check_same_recipe(&self, now: &BTreeMap<String, String>, path: &Path) -> Result<()> {
        let keys: std::collections::BTreeSet<&String> = self.recipe.keys().chain(now.keys()).collect();
        let absent = "(absent)".to_string();
        let differ: Vec<String> = keys
            .into_iter()
            .filter(|k| self.recipe.get(*k) != now.get(*k))
            .map(|k| format!("{}: {} then, {} now", setting(k), self.recipe.get(k).unwrap_or(&absent), now.get(k).unwrap_or(&absent)))
            .collect();
        if differ.is_empty() {
            return Ok(());
        }
        Err(Error::invalid("resume", format!("{} was written by a sweep with other settings: {}; resume with the same arguments, or start again with `force`", path.display(), differ.join("; "))))
    }
}

/// A weight decay (an f32) as the decimal it was given as: 0.001, not 0.0010000000474974513.
/// Read back and rounded to f32, it is the same weight decay.
fn decimal(wd: f32) -> f64 {
    wd.to_string().parse().expect("an f32 prints as a number")
}

fn run_to_json(run: &RunResult) -> Value {
    match run.outcome {
        Outcome::Finished { val_top1, train_loss, train_top1 } => {
            json!({ "lr": run.pair.lr, "wd": decimal(run.pair.wd), "status": "finished", "val_top1": val_top1, "train_loss": train_loss, "train_top1": train_top1 })
        }
        Outcome::Diverged { epoch, step } => json!({ "lr": run.pair.lr, "wd": decimal(run.pair.wd), "status": "diverged", "val_top1": null, "epoch": epoch, "step": step }),
    }
}

fn from_json(v: &Value) -> std::result::Result<SweepRecord, String> {
    let recipe: BTreeMap<String, String> = serde_json::from_value(v["recipe"].clone()).map_err(|e| format!("its recipe: {e}"))?;
    let grid = Grid { lrs: numbers(&v["grid"]["lr"], "grid.lr")?, wds: numbers(&v["grid"]["wd"], "grid.wd")?.into_iter().map(|w| w as f32).collect() };
    let runs = v["runs"].as_array().ok_or("it has no list of runs")?.iter().enumerate().map(|(i, r)| run_from_json(r).map_err(|e| format!("runs[{i}]: {e}"))).collect::<std::result::Result<_, _>>()?;
    let refit = match &v["refit"] {
        Value::Null => None,
        r => Some(Refit {
            pair: pair_from_json(r)?,
            task_file: r["task_file"].as_str().ok_or("refit.task_file is missing")?.to_string(),
            finished: r["finished"].as_bool().ok_or("refit.finished is missing")?,
            train_loss: number(&r["train_loss"], "refit.train_loss")?,
            train_top1: number(&r["train_top1"], "refit.train_top1")?,
            images_per_second: number(&r["images_per_second"], "refit.images_per_second")?,
        }),
    };
    let test = match (&v["test_top1"], &v["test_images"]) {
        (Value::Null, _) => None,
        (top1, images) => Some(Test { top1: number(top1, "test_top1")?, images: images.as_u64().ok_or("test_images is missing")? as usize }),
    };
    Ok(SweepRecord { recipe, grid, runs, refit, test })
}

fn run_from_json(r: &Value) -> std::result::Result<RunResult, String> {
    let pair = pair_from_json(r)?;
    let count = |key: &str| r[key].as_u64().map(|n| n as usize).ok_or(format!("{key} is missing"));
    let outcome = match r["status"].as_str() {
        Some("finished") => {
            Outcome::Finished { val_top1: number(&r["val_top1"], "val_top1")?, train_loss: number(&r["train_loss"], "train_loss")?, train_top1: number(&r["train_top1"], "train_top1")? }
        }
        Some("diverged") => Outcome::Diverged { epoch: count("epoch")?, step: count("step")? },
        other => return Err(format!("status {other:?} is neither \"finished\" nor \"diverged\"")),
    };
    Ok(RunResult { pair, outcome })
}

fn pair_from_json(r: &Value) -> std::result::Result<Pair, String> {
    Ok(Pair { lr: number(&r["lr"], "lr")?, wd: number(&r["wd"], "wd")? as f32 })
}

fn number(v: &Value, what: &str) -> std::result::Result<f64, String> {
    v.as_f64().ok_or(format!("{what} is not a number"))
}

fn numbers(v: &Value, what: &str) -> std::result::Result<Vec<f64>, String> {
    v.as_array().ok_or(format!("{what} is not a list"))?.iter().map(|x| number(x, what)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is written is read back as it was: a resumed sweep sees exactly the runs it had.
    #[test]
    fn a_record_reads_back_as_written() {
        let dir = std::env::temp_dir().join(format!("vpt-sweep-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pair = Pair { lr: 0.25, wd: 0.0001 };
        let record = SweepRecord {
            recipe: BTreeMap::from([("epochs".to_string(), "3".to_string())]),
            grid: Grid { lrs: vec![50.0, 0.25], wds: vec![0.0001] },
            runs: vec![
                RunResult { pair: Pair { lr: 50.0, wd: 0.0001 }, outcome: Outcome::Diverged { epoch: 1, step: 4 } },
                RunResult { pair, outcome: Outcome::Finished { val_top1: 100.0 / 3.0, train_loss: 0.123456789, train_top1: 87.5 } },
            ],
            refit: Some(Refit { pair, task_file: "best.safetensors".into(), finished: true, train_loss: 0.1, train_top1: 90.0, images_per_second: 12.5 }),
            test: Some(Test { top1: 88.125, images: 160 }),
        };
        let path = dir.join("sweep.json");
        record.write(&path).unwrap();
        assert_eq!(SweepRecord::read(&path).unwrap(), record);
        let json = record.to_json();
        assert_eq!(json["best"]["lr"], 0.25);
        let other = BTreeMap::from([("epochs".to_string(), "4".to_string())]);
        let err = record.check_same_recipe(&other, &path).unwrap_err().to_string();
        assert!(err.contains("`epochs`: 3 then, 4 now"), "{err}");
        std::fs::write(&path, "{\"runs\": 3}").unwrap();
        let err = SweepRecord::read(&path).unwrap_err().to_string();
        assert!(err.contains("not a sweep.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
