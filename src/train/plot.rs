//! `compare.svg`: top-1 against trainable parameters on a log scale, one labelled point per
//! method, as the paper's Figure 3 draws it. Drawn with `plotters` into a string, then written
//! atomically.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// One method's point: its label, trainable parameters and top-1 in [0, 1].
pub struct Point<'a> {
    pub label: &'a str,
    pub trainable: usize,
    pub top1: f64,
}

/// Draw the points (trainable parameters, top-1) into an SVG file at `path`.
pub fn accuracy_against_parameters(rows: &[Point], path: &Path) -> Result<()> {
    let mut svg = String::new();
    draw(rows, &mut svg).map_err(|e| Error::invalid("compare.svg", format!("the plot could not be drawn: {e}")))?;
    crate::io::write_atomically(path, svg.as_bytes())
}

fn draw(rows: &[Point], svg: &mut String) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (720, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    // A decade of room on each side of the smallest and largest counts.
    let most = rows.iter().map(|r| r.trainable).max().unwrap_or(1).max(1) as f64;
    let least = rows.iter().map(|r| r.trainable).min().unwrap_or(1).max(1) as f64;
    let x_range = (least / 3.0).max(1.0)..most * 3.0;
    let mut chart = ChartBuilder::on(&root)
        .caption("top-1 against trainable parameters", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range.log_scale(), 0f64..100f64)?;
    chart.configure_mesh().x_desc("trainable parameters (log scale)").y_desc("top-1 (%)").x_label_formatter(&|x| format!("{x:.0}")).y_label_formatter(&|y| format!("{y:.0}")).draw()?;
    chart.draw_series(rows.iter().map(|r| Circle::new((r.trainable.max(1) as f64, 100.0 * r.top1), 5, BLUE.filled())))?;
    chart.draw_series(rows.iter().map(|r| Text::new(r.label.to_string(), (r.trainable.max(1) as f64 * 1.08, 100.0 * r.top1 + 1.5), ("sans-serif", 13))))?;
    root.present()?;
    Ok(())
}
