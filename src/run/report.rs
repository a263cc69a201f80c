//! What a person reads about a run while it trains: `progress.md` (where it
//! stands, what was adjusted, the warnings, the checkpoints kept, the LoRA)
//! and `loss.png` (the loss by step, axes labelled, NaN steps marked), both
//! rewritten atomically as the run goes on.

use std::io::Cursor;
use std::path::Path;

use image::{ImageEncoder, Rgb, RgbImage};

use super::launch::{RunRecord, RunState, duration_words};
use super::monitor::LossPoint;
use crate::studio::font::{draw_text, text_width};
use crate::studio::{StudioError, write_atomic};

/// `progress.md` for `run`.
pub fn progress_markdown(run: &RunRecord) -> String {
    let mut md = format!(
        "# Training run {} of {}\n\n**{}** — {}\n\n",
        run.id,
        run.project,
        run.state.shown(),
        run.backend.name()
    );
    let mut line = |k: &str, v: String| md.push_str(&format!("- {k}: {v}\n"));
    line("started", run.started_at.clone());
    if let Some(e) = &run.ended_at {
        line("ended", e.clone());
    }
    if run.total_epochs > 0 {
        line("epoch", format!("{} of {}", run.epoch, run.total_epochs));
    }
    line("step", format!("{} of {}", run.steps_done, run.total_steps));
    if let (Some(a), Some(b)) = (run.first_loss, run.last_loss) {
        line("loss", format!("{b:.4} (from {a:.4})"));
    }
    if let Some(s) = run.seconds_per_step.filter(|s| *s > 0.0) {
        let speed = if s >= 1.0 {
            format!("{s:.1} s a step")
        } else {
            format!("{:.1} steps a second", 1.0 / s)
        };
        line("speed", speed);
    }
    line("elapsed", duration_words(run.elapsed_seconds));
    if run.state == RunState::Running
        && let Some(r) = run.remaining_seconds
    {
        line("left", format!("about {}", duration_words(r)));
    }
    if let Some(g) = run.gpu_memory {
        line(
            "GPU memory",
            format!("{:.1} of {:.1} GB", g.used_gib, g.total_gib),
        );
    }
    if run.batch_size > 0 {
        line(
            "batch",
            format!(
                "{} × gradient accumulation {}",
                run.batch_size,
                run.gradient_accumulation.max(1)
            ),
        );
    }
    if run.attempts > 1 {
        line("tries", run.attempts.to_string());
    }
    if run.loss_chart.is_some() {
        md.push_str("\n![loss by step](loss.png)\n");
    }
    if !run.adjustments.is_empty() {
        md.push_str("\n## What was adjusted\n\n");
        for a in &run.adjustments {
            md.push_str(&format!("- {a}\n"));
        }
    }
    if !run.warnings.is_empty() {
        md.push_str("\n## Warnings\n\n");
        for w in &run.warnings {
            md.push_str(&format!("- epoch {}: {}\n", w.epoch, w.message));
        }
    }
    if let Some(f) = &run.failure {
        md.push_str(&format!("\n## What went wrong\n\n{f}\n"));
        if let Some(w) = &run.what_to_do {
            md.push_str(&format!("\nWhat to do: {w}\n"));
        }
    }
    md.push_str("\n## Checkpoints kept (oldest first)\n\n");
    if run.checkpoints.is_empty() {
        md.push_str("none yet\n");
    }
    for c in &run.checkpoints {
        md.push_str(&format!(
            "- `{}` ({:.1} MB)\n",
            c.path,
            c.bytes as f64 / 1e6
        ));
    }
    if let Some(l) = &run.final_lora {
        md.push_str(&format!(
            "\n## The LoRA\n\n`{}` ({:.1} MB)\n",
            l.path,
            l.bytes as f64 / 1e6
        ));
    }
    if let Some(n) = &run.next_step {
        md.push_str(&format!("\nNext: {n}\n"));
    }
    if !run.tail.is_empty() && run.state == RunState::Failed {
        md.push_str("\n## The trainer's last lines\n\n```\n");
        for l in &run.tail {
            md.push_str(l);
            md.push('\n');
        }
        md.push_str("```\n");
    }
    md.push_str(&format!("\nThe whole log: `{}`\n", run.log_file));
    md
}

const W: u32 = 720;
const H: u32 = 400;
const LEFT: u32 = 70;
const RIGHT: u32 = 20;
const TOP: u32 = 36;
const BOTTOM: u32 = 50;
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const CURVE: Rgb<u8> = Rgb([30, 90, 200]);
const NAN: Rgb<u8> = Rgb([210, 40, 40]);

/// The loss chart of `points` (step, loss; `None` for NaN), `None` when
/// there is no finite loss to draw.
pub fn loss_chart(title: &str, points: &[LossPoint], total_steps: u64) -> Option<RgbImage> {
    let finite: Vec<(u64, f64)> = points
        .iter()
        .filter_map(|p| p.loss.filter(|l| l.is_finite()).map(|l| (p.step, l)))
        .collect();
    if finite.is_empty() {
        return None;
    }
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let max_step = total_steps
        .max(points.last().map(|p| p.step).unwrap_or(1))
        .max(1);
    let lo = finite.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.01).max(1e-6);
    let (lo, hi) = (lo - pad, hi + pad);
    let px = |step: u64| x0 + ((step as f64 / max_step as f64) * f64::from(x1 - x0)) as u32;
    let py = |loss: f64| y1 - (((loss - lo) / (hi - lo)) * f64::from(y1 - y0)).round() as u32;

    // Grid and labels: four loss levels, five steps.
    for i in 0..=4u32 {
        let loss = lo + (hi - lo) * f64::from(i) / 4.0;
        let y = py(loss);
        hline(&mut img, x0, x1, y, GRID);
        let label = format!("{loss:.4}");
        let w = text_width(&label, 1);
        draw_text(
            &mut img,
            x0.saturating_sub(w + 6),
            y.saturating_sub(3),
            &label,
            1,
            INK,
        );
    }
    for i in 0..=4u64 {
        let step = max_step * i / 4;
        let x = px(step);
        vline(&mut img, x, y0, y1, GRID);
        let label = step.to_string();
        let w = text_width(&label, 1);
        draw_text(&mut img, x.saturating_sub(w / 2), y1 + 6, &label, 1, INK);
    }
    hline(&mut img, x0, x1, y1, INK);
    vline(&mut img, x0, y0, y1, INK);
    let xl = "step";
    draw_text(
        &mut img,
        (x0 + x1) / 2 - text_width(xl, 2) / 2,
        y1 + 20,
        xl,
        2,
        INK,
    );
    draw_text(&mut img, 8, TOP - 24, "loss", 2, INK);
    let t: String = title.chars().take(70).collect();
    draw_text(
        &mut img,
        W - RIGHT - text_width(&t, 1),
        TOP - 18,
        &t,
        1,
        INK,
    );

    // The curve: one point per pixel column (the mean of its steps).
    let mut columns: Vec<(f64, u32)> = vec![(0.0, 0); (x1 - x0 + 1) as usize];
    for &(step, loss) in &finite {
        let c = (px(step) - x0) as usize;
        if let Some(slot) = columns.get_mut(c) {
            slot.0 += loss;
            slot.1 += 1;
        }
    }
    let mut prev: Option<(u32, u32)> = None;
    for (c, (sum, n)) in columns.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let p = (x0 + c as u32, py(sum / f64::from(*n)));
        match prev {
            Some(q) => line(&mut img, q, p, CURVE),
            None => dot(&mut img, p, CURVE),
        }
        prev = Some(p);
    }
    for p in points.iter().filter(|p| p.loss.is_none()) {
        let x = px(p.step);
        vline(&mut img, x, y0, y1, NAN);
        draw_text(&mut img, x + 3, y0 + 2, "NaN", 1, NAN);
    }
    Some(img)
}

/// Writes `img` as PNG to `path`, atomically.
pub fn write_png(path: &Path, img: &RgbImage) -> Result<(), StudioError> {
    let mut bytes = Vec::new();
    let encoded = image::codecs::png::PngEncoder::new(Cursor::new(&mut bytes)).write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    );
    if let Err(e) = encoded {
        return Err(StudioError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        });
    }
    write_atomic(path, &bytes)
}

fn hline(img: &mut RgbImage, x0: u32, x1: u32, y: u32, c: Rgb<u8>) {
    for x in x0..=x1 {
        put(img, x, y, c);
    }
}

fn vline(img: &mut RgbImage, x: u32, y0: u32, y1: u32, c: Rgb<u8>) {
    for y in y0..=y1 {
        put(img, x, y, c);
    }
}

fn put(img: &mut RgbImage, x: u32, y: u32, c: Rgb<u8>) {
    if x < img.width() && y < img.height() {
        img.put_pixel(x, y, c);
    }
}

fn dot(img: &mut RgbImage, (x, y): (u32, u32), c: Rgb<u8>) {
    for dx in 0..2 {
        for dy in 0..2 {
            put(img, x + dx, y + dy, c);
        }
    }
}

/// A two-pixel-wide line (Bresenham).
fn line(img: &mut RgbImage, (ax, ay): (u32, u32), (bx, by): (u32, u32), c: Rgb<u8>) {
    let (mut x, mut y) = (i64::from(ax), i64::from(ay));
    let (tx, ty) = (i64::from(bx), i64::from(by));
    let dx = (tx - x).abs();
    let dy = -(ty - y).abs();
    let sx = if x < tx { 1 } else { -1 };
    let sy = if y < ty { 1 } else { -1 };
    let mut err = dx + dy;
    loop {
        if x >= 0 && y >= 0 {
            dot(img, (x as u32, y as u32), c);
        }
        if x == tx && y == ty {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: u64) -> Vec<LossPoint> {
        (1..=n)
            .map(|s| LossPoint {
                step: s,
                loss: Some(0.1 * 0.98f64.powi(s as i32)),
            })
            .collect()
    }

    fn blue_at_column(img: &RgbImage, x: u32) -> Option<u32> {
        (0..img.height()).find(|&y| *img.get_pixel(x, y) == CURVE)
    }

    #[test]
    fn the_chart_draws_a_falling_loss_falling_with_labelled_axes() {
        let img = loss_chart("fox", &points(100), 100).unwrap();
        assert_eq!((img.width(), img.height()), (W, H));
        // Early steps sit higher (smaller y) than late ones.
        let early = blue_at_column(&img, LEFT + 10).unwrap();
        let late = blue_at_column(&img, W - RIGHT - 5).unwrap();
        assert!(early + 100 < late, "{early} vs {late}");
        // Axis labels are ink below the plot and left of it.
        let ink_below = (LEFT..W - RIGHT)
            .any(|x| (H - BOTTOM + 6..H - BOTTOM + 14).any(|y| *img.get_pixel(x, y) == INK));
        let ink_left =
            (0..LEFT - 6).any(|x| (TOP..H - BOTTOM).any(|y| *img.get_pixel(x, y) == INK));
        assert!(ink_below && ink_left);
        // Half way through a run, the curve stops half way across.
        let half = loss_chart("fox", &points(50), 100).unwrap();
        assert!(blue_at_column(&half, W - RIGHT - 5).is_none());
    }

    #[test]
    fn nan_steps_are_marked_and_no_loss_draws_nothing() {
        let mut p = points(10);
        p.push(LossPoint {
            step: 11,
            loss: None,
        });
        let img = loss_chart("fox", &p, 20).unwrap();
        assert!(img.pixels().any(|px| *px == NAN));
        assert!(
            loss_chart(
                "fox",
                &[LossPoint {
                    step: 1,
                    loss: None
                }],
                20
            )
            .is_none()
        );
    }
}
