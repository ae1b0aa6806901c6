//! SVG charts with plotters: loss curves and method comparisons.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

type Series = [(String, Vec<(f64, f64)>)];

/// Draws `series` into an SVG: lines on linear axes, or labelled points on a log-scale x axis.
fn chart(path: &Path, title: &str, labels: (&str, &str), series: &Series, points_log_x: bool) -> Result<()> {
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    if pts.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let root: DrawingArea<SVGBackend, Shift> = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
    if points_log_x {
        let (x0, x1) = bounds(pts.iter().map(|p| p.0.log10()));
        let (y0, y1) = bounds(pts.iter().map(|p| p.1).chain([0.0]));
        let mut c = builder
            .build_cartesian_2d((10f64.powf(x0 - 0.2)..10f64.powf(x1 + 0.2)).log_scale(), y0..y1)
            .map_err(e)?;
        c.configure_mesh().x_desc(labels.0).y_desc(labels.1).draw().map_err(e)?;
        for (i, (name, s)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            c.draw_series(s.iter().map(|&p| Circle::new(p, 6, color.filled())))
                .map_err(e)?
                .label(name.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(e)?;
    } else {
        let (x0, x1) = bounds(pts.iter().map(|p| p.0));
        let (y0, y1) = bounds(pts.iter().map(|p| p.1));
        let mut c = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(e)?;
        c.configure_mesh().x_desc(labels.0).y_desc(labels.1).draw().map_err(e)?;
        for (i, (name, s)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            c.draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
                .map_err(e)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// One line per series (x, y) into an SVG file.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &Series) -> Result<()> {
    chart(path, title, (x_label, y_label), series, false)
}

/// One labelled point group per series on a log-scale x axis, into an SVG file.
pub fn scatter_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &Series) -> Result<()> {
    chart(path, title, (x_label, y_label), series, true)
}

fn bounds(it: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = it.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if hi > lo {
        (lo, hi + (hi - lo) * 0.02)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}
