//! Reading a trainer's progress from its output: tqdm bars as each backend
//! draws them (`research/backends.md` §2), turned into step, total and loss.
//!
//! kohya and our engine draw `steps: 10%|█▋ | 92/920 [01:23<12:34,
//! 1.10it/s, avr_loss=0.123]`; SimpleTuner `Epoch 2/10, Steps: 12%|…|
//! 120/1000 […, lr=0.0001, step_loss=0.0912]`; ai-toolkit
//! `<job name>: 12%|…| 240/2000 […, lr: 1.0e-04 loss: 4.123e-01]`. All
//! parsers are pure functions tested on those lines.

use crate::plan::training::Backend;

/// One tqdm redraw.
#[derive(Debug, Clone, PartialEq)]
pub struct TqdmLine {
    pub desc: String,
    pub n: u64,
    pub total: u64,
    /// Steps per second, when tqdm had a rate to show.
    pub rate: Option<f64>,
    /// What follows the rate: `avr_loss=0.123`, `lr: 1.0e-04 loss: 4.1e-01`.
    pub postfix: String,
}

/// One training step as a trainer reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub step: u64,
    pub total: u64,
    /// The loss shown with it (NaN and infinity included as such).
    pub loss: Option<f64>,
    pub rate: Option<f64>,
}

/// Parses tqdm's default format: `desc: pct%|bar| n/total [elapsed<eta, rate, postfix]`.
pub fn parse_tqdm(line: &str) -> Option<TqdmLine> {
    let bar_start = line.find("%|")?;
    let head = &line[..bar_start];
    let desc = head
        .rsplit_once(':')
        .map(|(d, _)| d.trim().to_string())
        .unwrap_or_default();
    let after_bar = &line[bar_start + 2..];
    let bar_end = after_bar.find('|')?;
    let rest = after_bar[bar_end + 1..].trim_start();
    let (counts, bracket) = rest.split_once('[')?;
    let (n, total) = counts.trim().split_once('/')?;
    let n: u64 = n.trim().parse().ok()?;
    let total: u64 = total.trim().parse().ok()?;
    let inside = bracket.strip_suffix(']').unwrap_or(bracket);
    // `01:23<12:34, 1.10it/s, postfix...`
    let mut parts = inside.splitn(3, ", ");
    let _times = parts.next();
    let rate_text = parts.next().unwrap_or("").trim();
    let postfix = parts.next().unwrap_or("").trim().to_string();
    let rate = if let Some(r) = rate_text.strip_suffix("it/s") {
        r.trim().parse::<f64>().ok()
    } else if let Some(r) = rate_text.strip_suffix("s/it") {
        r.trim()
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .map(|s| 1.0 / s)
    } else {
        None
    };
    Some(TqdmLine {
        desc,
        n,
        total,
        rate,
        postfix,
    })
}

/// A number as Python prints it: `0.123`, `4.123e-01`, `nan`, `inf`.
pub fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim().trim_end_matches([',', ']']);
    match t.to_ascii_lowercase().as_str() {
        "nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// The loss in a postfix, under any of the names the backends use.
pub fn loss_in(postfix: &str) -> Option<f64> {
    for key in ["avr_loss=", "step_loss=", "loss=", "loss: "] {
        let mut search = postfix;
        while let Some(at) = search.find(key) {
            // `loss=` must not match inside `avr_loss=` / `step_loss=`.
            let before = &search[..at];
            let whole_word = !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            let after = &search[at + key.len()..];
            if whole_word {
                let value: String = after
                    .trim_start()
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != ',')
                    .collect();
                if let Some(v) = parse_number(&value) {
                    return Some(v);
                }
            }
            search = after;
        }
    }
    None
}

/// Whether a bar with this description is the training loop's.
fn is_training_bar(backend: Backend, bar: &TqdmLine) -> bool {
    match backend {
        Backend::Kohya | Backend::Native => bar.desc == "steps",
        Backend::SimpleTuner => bar.desc.ends_with("Steps"),
        // ai-toolkit names the bar after the job; its postfix always has the lr.
        Backend::AiToolkit => bar.postfix.contains("lr: ") || bar.postfix.contains("loss"),
    }
}

/// A training step in `line`, when it is the training loop's progress bar.
pub fn parse_step(backend: Backend, line: &str) -> Option<StepReport> {
    let bar = parse_tqdm(line)?;
    if !is_training_bar(backend, &bar) {
        return None;
    }
    Some(StepReport {
        step: bar.n,
        total: bar.total,
        loss: loss_in(&bar.postfix),
        rate: bar.rate,
    })
}

/// Pictures the trainer says it will train on, from its start-up lines.
pub fn images_in(backend: Backend, line: &str) -> Option<u64> {
    let after = |key: &str| -> Option<u64> {
        let at = line.find(key)?;
        let rest = &line[at + key.len()..];
        let digits: String = rest
            .trim_start_matches([':', ' ', '='])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    match backend {
        Backend::Kohya | Backend::Native => line
            .contains("num train images * repeats")
            .then(|| {
                line.rsplit_once(':')
                    .and_then(|(_, n)| n.trim().parse().ok())
            })
            .flatten(),
        Backend::SimpleTuner => after("-  Num batches ="),
        // ai-toolkit prints no count we have seen in its source; its steps say it.
        Backend::AiToolkit => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The lines below are the real tqdm's output for each backend's call
    // (`research/backends.md` §2).
    const KOHYA: &str =
        "steps:  10%|█▋              | 92/920 [01:23<12:34,  1.10it/s, avr_loss=0.123]";
    const KOHYA_NAN: &str = "steps:  20%|██              | 2/10 [00:03<00:12,  1.60s/it, Average key norm=0.0123, Keys Scaled=3, avr_loss=nan]";
    const KOHYA_START: &str = "steps:   0%|          | 0/920 [00:00<?, ?it/s]";
    const SIMPLETUNER: &str = "Epoch 2/10, Steps:  12%|█▏        | 120/1000 [02:10<15:53,  1.08s/it, lr=0.0001, step_loss=0.0912]";
    const AI_TOOLKIT: &str = "mychar_flux_v1:  12%|█▏        | 240/2000 [03:21<24:36,  1.19it/s, lr: 1.0e-04 loss: 4.123e-01]";
    const CACHING: &str = "caching latents: 100%|██████████| 20/20 [00:04<00:00,  4.61it/s]";

    #[test]
    fn each_backends_training_bar_gives_step_total_and_loss() {
        let k = parse_step(Backend::Kohya, KOHYA).unwrap();
        assert_eq!((k.step, k.total, k.loss), (92, 920, Some(0.123)));
        assert!((k.rate.unwrap() - 1.10).abs() < 1e-9);
        let s = parse_step(Backend::SimpleTuner, SIMPLETUNER).unwrap();
        assert_eq!((s.step, s.total, s.loss), (120, 1000, Some(0.0912)));
        assert!((s.rate.unwrap() - 1.0 / 1.08).abs() < 1e-9);
        let a = parse_step(Backend::AiToolkit, AI_TOOLKIT).unwrap();
        assert_eq!((a.step, a.total, a.loss), (240, 2000, Some(0.4123)));
    }

    #[test]
    fn a_nan_loss_reads_as_nan_and_other_bars_are_not_steps() {
        let k = parse_step(Backend::Kohya, KOHYA_NAN).unwrap();
        assert!(k.loss.unwrap().is_nan());
        assert_eq!(parse_step(Backend::Kohya, KOHYA_START).unwrap().loss, None);
        assert_eq!(parse_step(Backend::Kohya, CACHING), None);
        assert_eq!(parse_step(Backend::AiToolkit, CACHING), None);
        assert_eq!(parse_step(Backend::Kohya, "epoch 1/10"), None);
    }

    #[test]
    fn the_engines_own_bar_parses_as_kohyas() {
        let line = crate::engine::cli::tqdm_line(
            "steps",
            3,
            4,
            std::time::Duration::from_secs(2),
            "avr_loss=0.0567",
        );
        let s = parse_step(Backend::Native, &line).unwrap();
        assert_eq!((s.step, s.total, s.loss), (3, 4, Some(0.0567)));
    }

    #[test]
    fn picture_counts_come_from_the_start_up_lines() {
        assert_eq!(
            images_in(
                Backend::Kohya,
                "  num train images * repeats / 学習画像の数×繰り返し回数: 410"
            ),
            Some(410)
        );
        assert_eq!(
            images_in(Backend::SimpleTuner, "-  Num batches = 34"),
            Some(34)
        );
        assert_eq!(images_in(Backend::Kohya, "epoch 1/2"), None);
    }
}
