//! The library's settings in the command line's words: the library names a setting by its name in
//! backticks (`lr`, `out`, `img_size`; `vpt_wgsl::error::setting`) and never by a flag; here each
//! name meets the flag that sets it, and every message the command line prints from the library
//! (errors, warnings, a run's header) reads in flags: "--lr: must be positive", "pass --force".

use vpt_wgsl::Error;

/// Each setting the library names, and its flag. `main.rs`'s tests check that every flag here is
/// one a command has; this file's, that every setting the library names in a message is here (or
/// in [`NOT_SETTINGS`]).
pub const FLAGS: &[(&str, &str)] = &[
    ("adapter_reduction", "--adapter-reduction"),
    ("attention", "--attention"),
    ("batch", "--batch"),
    ("data", "--data"),
    ("depth", "--depth"),
    ("dir", "--dir"),
    ("epochs", "--epochs"),
    ("filter", "--filter"),
    ("force", "--force"),
    ("img_size", "--img-size"),
    ("keep_runs", "--keep-runs"),
    ("lora_alpha", "--lora-alpha"),
    ("lora_rank", "--lora-rank"),
    ("lr", "--lr"),
    ("mean", "--mean"),
    ("method", "--method"),
    ("methods", "--methods"),
    ("model", "--model"),
    ("no_flip", "--no-flip"),
    ("num_heads", "--num-heads"),
    ("optimizer", "--optimizer"),
    ("out", "--out"),
    ("out_dir", "--out-dir"),
    ("pool", "--pool"),
    ("port", "--port"),
    ("precision", "--precision"),
    ("prompt_dropout", "--prompt-dropout"),
    ("prompts", "--prompts"),
    ("recompute", "--recompute"),
    ("reps", "--reps"),
    ("root", "--root"),
    ("resume", "--resume"),
    ("seed", "--seed"),
    ("std", "--std"),
    ("sweep", "--sweep"),
    ("task", "--task"),
    ("test", "--test"),
    ("traces", "--traces"),
    ("web", "--web"),
    ("val", "--val"),
    ("variants", "--variants"),
    ("warmup", "--warmup"),
    ("wd", "--wd"),
    ("wgsl_dir", "--wgsl-dir"),
];

/// What the library names in backticks, or as the subject of an error, that no flag sets: ops,
/// kernel entry points, commands' own stages, backend names.
#[cfg(test)]
const NOT_SETTINGS: &[&str] =
    &["adamw_step", "backward", "check", "dropout", "dx12", "from_halves", "gl", "layernorm_backward", "metal", "patch_embed_backward", "recipe", "to_halves", "tune", "vulkan"];

/// The flag that sets `setting`, if one does.
pub fn flag_of(setting: &str) -> Option<&'static str> {
    FLAGS.iter().find(|(name, _)| *name == setting).map(|(_, flag)| *flag)
}

/// `text` with every setting in backticks that a flag sets shown as that flag: "pass `force`" →
/// "pass --force". Other backticked words (`vpt tune`) stay as they are.
pub fn in_flag_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('`').and_then(|close| flag_of(&after[..close]).map(|flag| (close, flag))) {
            Some((close, flag)) => {
                out.push_str(flag);
                rest = &after[close + 1..];
            }
            None => {
                out.push('`');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A library error as the command line prints it: a setting at fault as its flag ("--lr: …"),
/// and every setting its message names too.
pub fn error_text(err: &Error) -> String {
    match err {
        Error::Invalid { what, msg } if flag_of(what).is_some() => in_flag_words(&format!("`{what}`: {msg}")),
        other => in_flag_words(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn settings_read_as_flags() {
        assert_eq!(in_flag_words("pass `force` instead of `resume`, or `vpt tune` again"), "pass --force instead of --resume, or `vpt tune` again");
        assert_eq!(in_flag_words("`img_size` and `num_heads`: a `lone backtick"), "--img-size and --num-heads: a `lone backtick");
        assert_eq!(error_text(&Error::invalid("lr", "0 must be positive; try a lower `lr`")), "--lr: 0 must be positive; try a lower --lr");
        assert_eq!(error_text(&Error::invalid("`out` (its metrics)", "x is a folder")), "--out (its metrics): x is a folder");
        assert_eq!(error_text(&Error::invalid("WGPU_BACKEND", "names no backend")), "WGPU_BACKEND: names no backend");
        let format = Error::Format { path: "t.safetensors".into(), msg: "diverged; try a lower `lr`".into() };
        assert_eq!(error_text(&format), "t.safetensors: diverged; try a lower --lr");
    }

    /// Every word the library puts in backticks in a string, and every subject of an `Invalid`
    /// error it writes out, is a setting with a flag here, or one of [`NOT_SETTINGS`]: a setting
    /// the library names can never reach a user without its flag.
    #[test]
    fn every_setting_the_library_names_has_a_flag() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut unknown = Vec::new();
        for file in library_files(&src) {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for name in named_settings(code) {
                if flag_of(&name).is_none() && !NOT_SETTINGS.contains(&name.as_str()) {
                    unknown.push(format!("{}: `{name}`", file.strip_prefix(&src).unwrap().display()));
                }
            }
        }
        assert!(unknown.is_empty(), "add these to FLAGS (with the flag that sets them) or to NOT_SETTINGS:\n{}", unknown.join("\n"));
    }

    /// The library's files: all of `src/` but the command line's.
    fn library_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("cli") || path.ends_with("main.rs") {
                continue;
            }
            if path.is_dir() {
                out.extend(library_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        out
    }

    /// Lower-case words in backticks inside string literals, and the first argument of
    /// `Error::invalid("…"`, on lines that are not comments.
    fn named_settings(code: &str) -> Vec<String> {
        let mut names = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, literal) in line.split('"').enumerate().filter(|(i, _)| i % 2 == 1) {
                let words = literal.split('`').enumerate().filter(|(j, _)| j % 2 == 1).map(|(_, w)| w);
                names.extend(words.filter(|w| is_setting_name(w)).map(str::to_string));
                if i == 1 && line.split('"').next().unwrap().ends_with("Error::invalid(") && is_setting_name(literal) {
                    names.push(literal.to_string());
                }
            }
        }
        names
    }

    fn is_setting_name(word: &str) -> bool {
        word.starts_with(|c: char| c.is_ascii_lowercase()) && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
}
