//! `sweep.svg`: validation top-1 over the grid as a heatmap, one row per learning rate and one
//! column per weight decay in the order searched, each cell coloured by its top-1 (white at the
//! lowest finished run, deep blue at the highest) and labelled with it; a failed run is grey and
//! says so; the best pair is outlined. Drawn with `plotters` into a string, written atomically.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::grid::{best, short, Grid, RunResult};
use crate::error::{Error, Result};

const CELL: (i32, i32) = (96, 34);
/// Room for the learning rates on the left and the title and weight decays above.
const LEFT: i32 = 90;
const TOP: i32 = 70;

/// Draw the runs done so far over `grid` into an SVG file at `path` (a pair not yet run is blank).
pub fn draw(grid: &Grid, runs: &[RunResult], path: &Path) -> Result<()> {
    let mut svg = String::new();
    draw_into(grid, runs, &mut svg).map_err(|e| Error::invalid("sweep.svg", format!("the heatmap could not be drawn: {e}")))?;
    crate::io::write_atomically(path, svg.as_bytes())
}

fn draw_into(grid: &Grid, runs: &[RunResult], svg: &mut String) -> std::result::Result<(), Box<dyn std::error::Error>> {
    // Wide enough for the title however few weight decays there are.
    let width = (LEFT + CELL.0 * grid.wds.len() as i32 + 20).max(360);
    let height = TOP + CELL.1 * grid.lrs.len() as i32 + 40;
    let root = SVGBackend::with_string(svg, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let centred = |size| ("sans-serif", size).into_font().into_text_style(&root).pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new("validation top-1 (%) over the grid", (width / 2, 18), centred(17)))?;
    root.draw(&Text::new("weight decay (wd)", (LEFT + CELL.0 * grid.wds.len() as i32 / 2, 40), centred(13)))?;
    root.draw(&Text::new("lr", (LEFT / 2, TOP - 14), centred(13)))?;
    for (j, wd) in grid.wds.iter().enumerate() {
        root.draw(&Text::new(short(*wd as f64), (LEFT + CELL.0 * j as i32 + CELL.0 / 2, TOP - 14), centred(13)))?;
    }
    for (i, lr) in grid.lrs.iter().enumerate() {
        root.draw(&Text::new(short(*lr), (LEFT / 2, TOP + CELL.1 * i as i32 + CELL.1 / 2), centred(13)))?;
    }
    let finished: Vec<f64> = runs.iter().filter_map(RunResult::val_top1).collect();
    let (low, high) = finished.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &t| (l.min(t), h.max(t)));
    let chosen = best(runs).map(|r| r.pair);
    for run in runs {
        let (Some(i), Some(j)) = (grid.lrs.iter().position(|&lr| lr == run.pair.lr), grid.wds.iter().position(|&wd| wd == run.pair.wd)) else { continue };
        let corner = (LEFT + CELL.0 * j as i32, TOP + CELL.1 * i as i32);
        let far = (corner.0 + CELL.0, corner.1 + CELL.1);
        let centre = (corner.0 + CELL.0 / 2, corner.1 + CELL.1 / 2);
        let (fill, label) = match run.val_top1() {
            Some(top1) => (shade(top1, low, high), format!("{top1:.1}")),
            None => (RGBColor(200, 200, 200), "failed".to_string()),
        };
        root.draw(&Rectangle::new([corner, far], fill.filled()))?;
        root.draw(&Rectangle::new([corner, far], RGBColor(225, 225, 225).stroke_width(1)))?;
        let ink = if fill.0 < 110 { WHITE } else { BLACK };
        root.draw(&Text::new(label, centre, centred(13).color(&ink)))?;
        if Some(run.pair) == chosen {
            root.draw(&Rectangle::new([(corner.0 + 1, corner.1 + 1), (far.0 - 1, far.1 - 1)], RGBColor(220, 40, 40).stroke_width(3)))?;
        }
    }
    root.draw(&Text::new("outlined: the best pair, refit on train + val", (width / 2, height - 16), centred(12)))?;
    root.present()?;
    Ok(())
}

/// White at `low`, deep blue at `high` (all one colour when they are equal).
fn shade(top1: f64, low: f64, high: f64) -> RGBColor {
    let t = if high > low { (top1 - low) / (high - low) } else { 1.0 };
    let mix = |white: f64, blue: f64| (white + (blue - white) * t).round() as u8;
    RGBColor(mix(255.0, 20.0), mix(255.0, 70.0), mix(255.0, 160.0))
}
