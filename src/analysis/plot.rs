//! Line plots (PNG and SVG) with plotters: accuracy against sparsity, loss against epoch. Text needs a TrueType
//! font: `$SCULPT_FONT` if set, else the first of a few common system paths (DejaVu Sans, Liberation Sans).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("SCULPT_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .collect();
        for p in &candidates {
            if let Ok(bytes) = std::fs::read(p) {
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found for plot text; set SCULPT_FONT to a .ttf file".to_string())
    })
    .clone()
    .map_err(Error::Invalid)
}

/// One line: name, points and optional symmetric error bars (one per point).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub err: Option<Vec<f64>>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    plot: &LinePlot,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| Error::Invalid(format!("plot '{}': {e}", plot.title));
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let xs = range(
        plot.series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0)),
    );
    let ys = range(plot.series.iter().flat_map(|s| {
        s.points.iter().enumerate().flat_map(move |(i, p)| {
            let e = s.err.as_ref().map_or(0.0, |e| e[i]);
            [p.1 - e, p.1 + e]
        })
    }));
    let mut chart = ChartBuilder::on(&root)
        .caption(plot.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(plot.x_label)
        .y_desc(plot.y_label)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in plot.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
        if let Some(e) = &s.err {
            chart
                .draw_series(s.points.iter().zip(e).map(|(&(x, y), &d)| {
                    PathElement::new(vec![(x, y - d), (x, y + d)], color.stroke_width(1))
                }))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A temporary file next to `target` with the same extension, persisted over `target` once `fill` wrote it.
fn atomically(target: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let ext = target.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = tempfile::Builder::new()
        .suffix(&format!(".{ext}"))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    fill(tmp.path())?;
    tmp.persist(target)
        .map_err(|e| Error::io(target, e.error))?;
    Ok(())
}

/// Writes `stem.png` and `stem.svg` (each atomically).
pub fn write_line_plot(stem: &Path, plot: &LinePlot) -> Result<()> {
    ensure_font()?;
    atomically(&stem.with_extension("png"), |p| {
        draw(BitMapBackend::new(p, (900, 600)).into_drawing_area(), plot)
    })?;
    atomically(&stem.with_extension("svg"), |p| {
        draw(SVGBackend::new(p, (900, 600)).into_drawing_area(), plot)
    })
}
