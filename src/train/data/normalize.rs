//! Per-channel normalisation of pixels, as torchvision's `Normalize`, and its text form.

use crate::{Error, Result};

/// Per-channel normalisation: x = (pixel/255 − mean) / std.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's ImageNet statistics, what timm's ImageNet-21k/1k ViTs were trained with.
    pub const IMAGENET: Normalization = Normalization { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// Parse `"0.5,0.5,0.5"`-style mean and std. Each needs three finite numbers; std must be > 0.
    pub fn parse(mean: &str, std: &str) -> Result<Normalization> {
        let mean = parse_triple("mean", mean)?;
        let std = parse_triple("std", std)?;
        if std.iter().any(|&s| s <= 0.0) {
            return Err(Error::invalid("std", format!("{std:?} has a value ≤ 0; every channel's std must be positive, e.g. 0.229,0.224,0.225")));
        }
        Ok(Normalization { mean, std })
    }

    /// The inverse of [`Normalization::parse`]: `{}` prints the shortest decimal that parses back
    /// to the same f32, so a round trip is exact (what a checkpoint stores is what it loads).
    pub fn to_strings(&self) -> (String, String) {
        let join = |v: &[f32; 3]| format!("{},{},{}", v[0], v[1], v[2]);
        (join(&self.mean), join(&self.std))
    }
}

/// Three comma-separated finite numbers.
fn parse_triple(what: &str, text: &str) -> Result<[f32; 3]> {
    let bad = |why: String| Error::invalid(what, format!("{text:?}: {why}; give three comma-separated numbers, one per RGB channel, e.g. 0.485,0.456,0.406"));
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(bad(format!("found {} values", parts.len())));
    }
    let mut out = [0f32; 3];
    for (o, p) in out.iter_mut().zip(&parts) {
        *o = p.parse::<f32>().map_err(|_| bad(format!("{p:?} is not a number")))?;
        if !o.is_finite() {
            return Err(bad(format!("{p:?} is not finite")));
        }
    }
    Ok(out)
}
