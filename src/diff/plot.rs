//! Plots of a curve comparison (plotters): both loss curves on top, their difference with the
//! tolerance band below, the first point outside the band marked in both panels.
//!
//! PNG text is drawn with DejaVu Sans, bundled in `fonts/` (Bitstream Vera licence, see
//! `fonts/LICENSE-DejaVu.txt`) and registered with plotters' `ab_glyph` backend, so no system
//! font library is needed. SVG text is left to the viewer's sans-serif font.

use super::comparison::Comparison;
use super::curves::{Axis, CurveDiff, CurveRow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (1100, 760);
const COLOR_A: RGBColor = RGBColor(31, 119, 180);
const COLOR_B: RGBColor = RGBColor(230, 110, 0);
const COLOR_BAD: RGBColor = RGBColor(200, 30, 30);
const COLOR_BAND: RGBColor = RGBColor(120, 190, 120);

/// A plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {message}")]
pub struct PlotError {
    pub path: String,
    pub message: String,
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid; a failure would only lose the text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Write the PNG.
pub fn write_png(c: &Comparison, path: &Path) -> Result<(), PlotError> {
    let cd = c.curves.as_ref().ok_or_else(|| PlotError {
        path: path.display().to_string(),
        message: "no curves".into(),
    })?;
    register_font();
    let err = |e: String| PlotError {
        path: path.display().to_string(),
        message: e,
    };
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw(&root, c, cd).map_err(|e| err(format!("{e:?}")))?;
    root.present().map_err(|e| err(format!("{e:?}")))
}

/// Render the SVG as a string.
pub fn svg(c: &Comparison) -> Result<String, PlotError> {
    let cd = c.curves.as_ref().ok_or_else(|| PlotError {
        path: "svg".into(),
        message: "no curves".into(),
    })?;
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
        draw(&root, c, cd).map_err(|e| PlotError {
            path: "svg".into(),
            message: format!("{e:?}"),
        })?;
        root.present().map_err(|e| PlotError {
            path: "svg".into(),
            message: format!("{e:?}"),
        })?;
    }
    Ok(s)
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
    if hi - lo < 1e-12 {
        let pad = lo.abs().max(1.0) * 1e-3;
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.06;
    (lo - pad, hi + pad)
}

fn tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e5 || v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The corner of the plot area with the fewest data points, for the legend.
fn emptiest_corner(
    points: &[(f64, f64)],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let frac = |v: f64, lo: f64, hi: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    let mut count = [0usize; 4]; // upper right, upper left, lower right, lower left
    for &(x, y) in points {
        let (fx, fy) = (frac(x, x0, x1), frac(y, y0, y1));
        let (right, left, upper, lower) = (fx > 0.55, fx < 0.45, fy > 0.6, fy < 0.4);
        for (i, hit) in [right && upper, left && upper, right && lower, left && lower]
            .into_iter()
            .enumerate()
        {
            count[i] += hit as usize;
        }
    }
    match (0..4).min_by_key(|&i| count[i]).unwrap_or(0) {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &Comparison,
    cd: &CurveDiff,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let by = if cd.by == Axis::Step {
        "step"
    } else {
        "tokens seen"
    };
    let title = format!(
        "Loss by {by}: A = {} vs B = {}   [{}]",
        c.a.label,
        c.b.label,
        if c.verdict.pass { "PASS" } else { "DIFFERS" }
    );
    let root = root.titled(&title, (FAMILY, 22).into_font())?;
    let (upper, lower) = root.split_vertically((SIZE.1 as f64 * 0.56) as u32);
    let first_x = cd.first_divergent_row().map(|r| r.x);
    let xs = range(all_points(cd).map(|p| p.0).filter(|x| x.is_finite()));
    draw_losses(&upper, c, cd, by, xs, first_x)?;
    draw_difference(&lower, cd, by, xs, first_x)
}

/// Top: both loss curves (smoothed over faint raw ones with EMA), and where they first leave
/// the band.
fn draw_losses<DB: DrawingBackend>(
    upper: &DrawingArea<DB, Shift>,
    c: &Comparison,
    cd: &CurveDiff,
    by: &str,
    (x0, x1): (f64, f64),
    first_x: Option<f64>,
) -> DrawResult<DB> {
    let sa = cd.series_a.smoothed.as_ref().unwrap_or(&cd.series_a.raw);
    let sb = cd.series_b.smoothed.as_ref().unwrap_or(&cd.series_b.raw);
    let all = || all_points(cd);
    let (y0, y1) = range(all().map(|p| p.1));
    let mut ch = ChartBuilder::on(upper)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption(
            match cd.ema {
                Some(w) => format!("loss (EMA {w}; raw curves faint)"),
                None => "loss".to_string(),
            },
            (FAMILY, 16),
        )
        .build_cartesian_2d(x0..x1, y0..y1)?;
    ch.configure_mesh()
        .x_desc(by)
        .y_desc("loss")
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(248, 248, 248))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    if cd.ema.is_some() {
        ch.draw_series(LineSeries::new(
            cd.series_a.raw.iter().copied(),
            COLOR_A.mix(0.25),
        ))?;
        ch.draw_series(LineSeries::new(
            cd.series_b.raw.iter().copied(),
            COLOR_B.mix(0.25),
        ))?;
    }
    ch.draw_series(LineSeries::new(sa.iter().copied(), COLOR_A.stroke_width(2)))?
        .label(format!("A: {}", c.a.label))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLOR_A.stroke_width(3)));
    ch.draw_series(DashedLineSeries::new(
        sb.iter().copied(),
        8,
        4,
        COLOR_B.stroke_width(2),
    ))?
    .label(format!("B: {}", c.b.label))
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLOR_B.stroke_width(3)));
    if let Some(e) = &cd.eval {
        // eval losses: A as rings on a thin line, B as filled dots
        ch.draw_series(LineSeries::new(
            e.series_a.iter().copied(),
            COLOR_A.stroke_width(1),
        ))?;
        ch.draw_series(
            e.series_a
                .iter()
                .map(|&p| Circle::new(p, 5, COLOR_A.stroke_width(2))),
        )?
        .label("A: eval loss")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, COLOR_A.stroke_width(2)));
        ch.draw_series(
            e.series_b
                .iter()
                .map(|&p| Circle::new(p, 3, COLOR_B.filled())),
        )?
        .label("B: eval loss")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, COLOR_B.filled()));
    }
    if let Some(x) = first_x {
        let unit = if cd.by == Axis::Step {
            format!("step {}", tick(x))
        } else {
            format!("{} tokens", tick(x))
        };
        ch.draw_series(DashedLineSeries::new(
            vec![(x, y0), (x, y1)],
            6,
            4,
            COLOR_BAD.stroke_width(2),
        ))?
        .label(format!("first outside band: {unit}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLOR_BAD.stroke_width(2)));
    }
    ch.configure_series_labels()
        .position(emptiest_corner(
            &all().copied().collect::<Vec<_>>(),
            (x0, x1),
            (y0, y1),
        ))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 14))
        .draw()?;

    Ok(())
}

/// Every plotted (x, loss): the raw train curves and the evals.
fn all_points(cd: &CurveDiff) -> impl Iterator<Item = &(f64, f64)> {
    let evals = cd
        .eval
        .iter()
        .flat_map(|e| e.series_a.iter().chain(&e.series_b));
    cd.series_a.raw.iter().chain(&cd.series_b.raw).chain(evals)
}

/// Bottom: the difference B − A against the tolerance band, points outside marked.
fn draw_difference<DB: DrawingBackend>(
    lower: &DrawingArea<DB, Shift>,
    cd: &CurveDiff,
    by: &str,
    (x0, x1): (f64, f64),
    first_x: Option<f64>,
) -> DrawResult<DB> {
    let rows = &cd.rows;
    let dmax = rows
        .iter()
        .map(|r| r.abs.max(r.band))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let dmax = if dmax > 0.0 { dmax * 1.15 } else { 1e-6 };
    let mut ch = ChartBuilder::on(lower)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .caption(
            format!(
                "difference loss B − loss A, with the band ±(atol {} + rtol {}·|loss A|)",
                tick(cd.atol),
                tick(cd.rtol)
            ),
            (FAMILY, 16),
        )
        .build_cartesian_2d(x0..x1, -dmax..dmax)?;
    ch.configure_mesh()
        .x_desc(by)
        .y_desc("Δ loss")
        .x_label_formatter(&|v| tick(*v))
        // A tick at zero can come out as ±1e-17 from the axis arithmetic: print it as 0.
        .y_label_formatter(&|v| tick(if v.abs() < dmax * 1e-9 { 0.0 } else { *v }))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(248, 248, 248))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    if !rows.is_empty() {
        ch.draw_series(std::iter::once(Polygon::new(
            band_polygon(rows, (x0, x1)),
            COLOR_BAND.mix(0.35).filled(),
        )))?
        .label("tolerance band")
        .legend(|(x, y)| {
            Rectangle::new([(x, y - 5), (x + 20, y + 5)], COLOR_BAND.mix(0.5).filled())
        });
    }
    ch.draw_series(LineSeries::new(
        vec![(x0, 0.0), (x1, 0.0)],
        RGBColor(120, 120, 120),
    ))?;
    ch.draw_series(LineSeries::new(
        rows.iter().map(|r| (r.x, r.loss_b - r.loss_a)),
        BLACK.stroke_width(2),
    ))?
    .label("B − A")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    let outside: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| !r.within)
        .map(|r| (r.x, r.loss_b - r.loss_a))
        .collect();
    if !outside.is_empty() {
        ch.draw_series(
            outside
                .iter()
                .map(|&p| Circle::new(p, 3, COLOR_BAD.filled())),
        )?
        .label("outside the band")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, COLOR_BAD.filled()));
    }
    if let Some(x) = first_x {
        ch.draw_series(DashedLineSeries::new(
            vec![(x, -dmax), (x, dmax)],
            6,
            4,
            COLOR_BAD.stroke_width(2),
        ))?;
    }
    ch.configure_series_labels()
        .position(emptiest_corner(
            &rows
                .iter()
                .map(|r| (r.x, r.loss_b - r.loss_a))
                .collect::<Vec<_>>(),
            (x0, x1),
            (-dmax, dmax),
        ))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 14))
        .draw()?;
    Ok(())
}

/// The band ±(atol + rtol·|loss A|) as a closed polygon: along the top, back along the
/// bottom. A single row gets a thin box so it stays visible.
fn band_polygon(rows: &[CurveRow], (x0, x1): (f64, f64)) -> Vec<(f64, f64)> {
    if rows.len() == 1 {
        let (x, b) = (rows[0].x, rows[0].band);
        let w = (x1 - x0) * 0.005;
        return vec![(x - w, b), (x + w, b), (x + w, -b), (x - w, -b)];
    }
    let mut poly: Vec<(f64, f64)> = rows.iter().map(|r| (r.x, r.band)).collect();
    poly.extend(rows.iter().rev().map(|r| (r.x, -r.band)));
    poly
}
