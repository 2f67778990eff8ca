//! The sizes the methods make their tensors with, by setting name: each method reads its own
//! (the adapter its reduction, the low-rank methods their rank and α). The command line fills them from its flags.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Settings by name; a setting not given takes its method's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MethodOptions(BTreeMap<&'static str, f64>);

impl MethodOptions {
    /// These options with `setting` set to `value`.
    pub fn with(mut self, setting: &'static str, value: f64) -> MethodOptions {
        self.0.insert(setting, value);
        self
    }

    /// The setting's value, if given: an error (naming the setting) unless it is a finite number.
    pub fn number(&self, setting: &str) -> Result<Option<f64>> {
        match self.0.get(setting) {
            Some(v) if !v.is_finite() => Err(Error::invalid(setting, format!("{v} is not a finite number"))),
            other => Ok(other.copied()),
        }
    }

    /// The setting as a count, or `default`: an error (naming the setting) unless a whole
    /// number ≥ 0.
    pub fn count(&self, setting: &str, default: usize) -> Result<usize> {
        match self.number(setting)? {
            None => Ok(default),
            Some(v) if v >= 0.0 && v.fract() == 0.0 && v <= usize::MAX as f64 => Ok(v as usize),
            Some(v) => Err(Error::invalid(setting, format!("{v} is not a whole number"))),
        }
    }
}
