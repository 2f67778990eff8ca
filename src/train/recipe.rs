//! A training recipe given as `name=value` settings: how a browser page (its query string, its
//! form) says what `vpt train`'s flags say, with the flags' names and defaults. The CLI parses
//! its flags with clap (`src/cli/args/`); a test there holds the two to the same defaults.

use std::path::PathBuf;

use super::config::TrainConfig;
use super::data::Normalization;
use super::Optimizer;
use crate::error::{Error, Result};
use crate::model::methods::method::Method;
use crate::model::methods::options::MethodOptions;
use crate::model::plan::BlockPlan;

/// Every setting a recipe takes, by the name of its `vpt train` flag (without `--`), with the
/// flag's default ("" where it has none). The backbone, the data and the output are not
/// settings here: a page gives them as files.
pub const RECIPE_SETTINGS: &[(&str, &str)] = &[
    ("method", "prompt"),
    ("prompts", "50"),
    ("depth", "deep"),
    ("pool", "cls"),
    ("epochs", "100"),
    ("batch", "64"),
    ("lr", "0.5"),
    ("wd", "0.0001"),
    ("warmup", "10"),
    ("optimizer", "sgd"),
    ("seed", "0"),
    ("img-size", ""),
    ("no-flip", "false"),
    ("prompt-dropout", "0"),
    ("mean", ""),
    ("std", ""),
    ("attention", "auto"),
    ("recompute", "none"),
    ("precision", "f32"),
    ("num-heads", ""),
    ("adapter-reduction", "8"),
    ("lora-rank", "8"),
    ("lora-alpha", ""),
];

/// The training configuration `settings` give (each `(name, value)` as [`RECIPE_SETTINGS`]
/// names it; the others take their defaults), training `model` on `data`. An unknown name, or a
/// value its flag would refuse, is an error naming the setting.
pub fn config_from_settings(settings: &[(String, String)], model: &str, data: &str) -> Result<TrainConfig> {
    for (name, _) in settings {
        if !RECIPE_SETTINGS.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = RECIPE_SETTINGS.iter().map(|(n, _)| *n).collect();
            return Err(Error::invalid("recipe", format!("{name:?} is not a setting of `vpt train`; the settings are {}", known.join(", "))));
        }
    }
    let get = |name: &str| -> &str {
        let default = RECIPE_SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d).unwrap_or("");
        settings.iter().rev().find(|(n, _)| n == name).map_or(default, |(_, v)| v.as_str())
    };
    let optional = |name: &str| Some(get(name)).filter(|v| !v.is_empty());
    let norm = match (optional("mean"), optional("std")) {
        (Some(m), Some(s)) => Some(Normalization::parse(m, s)?),
        (None, None) => None,
        _ => return Err(Error::invalid("mean", "`mean` and `std` go together: give both or neither")),
    };
    let wd: f32 = number(get("wd"), "wd")?;
    let optimizer = match get("optimizer") {
        "sgd" => Optimizer::sgd(wd),
        "adamw" => Optimizer::adamw(wd),
        other => return Err(Error::invalid("optimizer", format!("{other:?} is not an optimizer; use sgd or adamw"))),
    };
    let mut options = MethodOptions::default()
        .with("adapter_reduction", number::<usize>(get("adapter-reduction"), "adapter_reduction")? as f64)
        .with("lora_rank", number::<usize>(get("lora-rank"), "lora_rank")? as f64);
    if let Some(alpha) = optional("lora-alpha") {
        options = options.with("lora_alpha", number::<f32>(alpha, "lora_alpha")? as f64);
    }
    Ok(TrainConfig {
        model: model.to_string(),
        data: PathBuf::from(data),
        val: None,
        root: None,
        train_on_val: false,
        out: String::new(),
        num_prompts: number(get("prompts"), "prompts")?,
        depth: get("depth").parse()?,
        pool: get("pool").parse()?,
        epochs: number(get("epochs"), "epochs")?,
        batch: number(get("batch"), "batch")?,
        base_lr: number(get("lr"), "lr")?,
        warmup_epochs: number(get("warmup"), "warmup")?,
        optimizer,
        seed: number(get("seed"), "seed")?,
        img_size: optional("img-size").map(|v| number(v, "img_size")).transpose()?,
        flip: !switch(get("no-flip"), "no_flip")?,
        prompt_dropout: number(get("prompt-dropout"), "prompt_dropout")?,
        norm,
        num_heads: optional("num-heads").map(|v| number(v, "num_heads")).transpose()?,
        resume: false,
        force: false,
        plan: BlockPlan { attention: get("attention").parse()?, recompute: get("recompute").parse()?, max_images: None },
        precision: get("precision").parse()?,
        method: Method::parse(get("method"), &options)?,
    })
}

/// A number, or an error naming the setting.
fn number<T: std::str::FromStr>(value: &str, setting: &str) -> Result<T> {
    value.trim().parse().map_err(|_| Error::invalid(setting, format!("{value:?} is not a number of the kind this setting takes")))
}

/// A switch given as a query parameter: "", "1", "true", "on" set it; "0", "false", "off" do not.
fn switch(value: &str, setting: &str) -> Result<bool> {
    match value {
        "" | "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        other => Err(Error::invalid(setting, format!("{other:?} is not on or off; use 1 or 0"))),
    }
}

#[cfg(test)]
mod tests {
    use super::config_from_settings;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn settings_set_what_their_flags_set_and_bad_ones_are_named() {
        let cfg = config_from_settings(&pairs(&[("prompts", "5"), ("no-flip", "1"), ("lr", "1"), ("optimizer", "adamw")]), "m", "d").unwrap();
        assert_eq!((cfg.num_prompts, cfg.flip, cfg.base_lr, cfg.optimizer.name()), (5, false, 1.0, "AdamW"));
        let err = config_from_settings(&pairs(&[("epoch", "2")]), "m", "d").err().unwrap().to_string();
        assert!(err.contains("\"epoch\" is not a setting") && err.contains("epochs"), "{err}");
        let err = config_from_settings(&pairs(&[("batch", "many")]), "m", "d").err().unwrap().to_string();
        assert!(err.contains("batch") && err.contains("\"many\""), "{err}");
        let err = config_from_settings(&pairs(&[("mean", "0.5,0.5,0.5")]), "m", "d").err().unwrap().to_string();
        assert!(err.contains("`std`"), "{err}");
    }
}
