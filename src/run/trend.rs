//! What the loss curve says while a run goes on: the mean loss of each
//! finished epoch, and two warnings drawn from it — a plateau (the loss has
//! not moved for a window of epochs) and a divergence (it has risen epoch
//! after epoch). Neither stops a run: a diffusion loss is noisy and often
//! flat while the pictures still improve, so each warning says what to look
//! at, not that the run failed. A NaN loss does stop it (`monitor`).

use serde::{Deserialize, Serialize};

use super::monitor::LossPoint;

/// Epochs a plateau must last before it is reported.
pub const PLATEAU_WINDOW: usize = 5;
/// A change smaller than this fraction of the loss counts as no change.
pub const PLATEAU_CHANGE: f64 = 0.01;
/// Consecutive epochs of rising loss that make a divergence.
pub const DIVERGENCE_EPOCHS: usize = 3;
/// How far above its lowest epoch mean the loss must have climbed.
pub const DIVERGENCE_RISE: f64 = 0.10;

/// Which warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrendKind {
    Plateau,
    Divergence,
}

/// One warning about the loss, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrendWarning {
    pub kind: TrendKind,
    /// The epoch at which it was seen.
    pub epoch: u64,
    pub message: String,
}

/// The mean finite loss of each finished epoch, epoch 1 first. Steps count
/// from 1; `steps_per_epoch` of 0 gives nothing.
pub fn epoch_means(points: &[LossPoint], steps_per_epoch: u64) -> Vec<f64> {
    if steps_per_epoch == 0 {
        return Vec::new();
    }
    let last_step = points.last().map(|p| p.step).unwrap_or(0);
    let finished = last_step / steps_per_epoch;
    let mut sums = vec![(0.0f64, 0u64); finished as usize];
    for p in points {
        let Some(loss) = p.loss else { continue };
        let epoch = (p.step.max(1) - 1) / steps_per_epoch;
        if let Some(slot) = sums.get_mut(epoch as usize) {
            slot.0 += loss;
            slot.1 += 1;
        }
    }
    // An epoch with no reported loss takes its neighbour's mean, so one
    // quiet epoch does not read as a jump.
    let mut means = Vec::with_capacity(sums.len());
    for (sum, n) in sums {
        if n > 0 {
            means.push(sum / n as f64);
        } else if let Some(&prev) = means.last() {
            means.push(prev);
        }
    }
    means
}

/// The warnings the epoch means give now (at most one of each kind).
pub fn warnings(means: &[f64]) -> Vec<TrendWarning> {
    let mut out = Vec::new();
    let epoch = means.len() as u64;
    if means.len() > DIVERGENCE_EPOCHS {
        let tail = &means[means.len() - DIVERGENCE_EPOCHS - 1..];
        let rising = tail.windows(2).all(|w| w[1] > w[0]);
        let lowest = means.iter().copied().fold(f64::INFINITY, f64::min);
        let last = means[means.len() - 1];
        if rising && lowest > 0.0 && last > lowest * (1.0 + DIVERGENCE_RISE) {
            out.push(TrendWarning {
                kind: TrendKind::Divergence,
                epoch,
                message: format!(
                    "the loss has risen for {DIVERGENCE_EPOCHS} epochs in a row (epoch {epoch}: {last:.4}, its lowest was {lowest:.4}): the learning rate may be too high — compare the latest checkpoint with an earlier one, and if the pictures got worse, stop and retrain with half the learning rate"
                ),
            });
        }
    }
    if means.len() > PLATEAU_WINDOW && out.is_empty() {
        let window = &means[means.len() - PLATEAU_WINDOW - 1..];
        let first = window[0];
        let moved = window
            .iter()
            .map(|m| (m - first).abs())
            .fold(0.0f64, f64::max);
        if first > 0.0 && moved / first < PLATEAU_CHANGE {
            let last = means[means.len() - 1];
            out.push(TrendWarning {
                kind: TrendKind::Plateau,
                epoch,
                message: format!(
                    "the loss has not moved for {PLATEAU_WINDOW} epochs ({first:.4} → {last:.4}); a diffusion loss often stays flat while the pictures still improve, so look at the latest checkpoints: if they stopped getting better, the remaining epochs add little and an earlier checkpoint will do"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(losses: &[f64], per_epoch: u64) -> Vec<LossPoint> {
        losses
            .iter()
            .enumerate()
            .flat_map(|(e, &l)| {
                (0..per_epoch).map(move |i| LossPoint {
                    step: e as u64 * per_epoch + i + 1,
                    // A little noise inside each epoch, the same mean.
                    loss: Some(l + if i % 2 == 0 { 0.002 } else { -0.002 }),
                })
            })
            .collect()
    }

    #[test]
    fn epoch_means_average_each_finished_epoch() {
        let mut points = series(&[0.1, 0.08], 4);
        // Half of a third epoch is not counted yet.
        points.push(LossPoint {
            step: 9,
            loss: Some(5.0),
        });
        let means = epoch_means(&points, 4);
        assert_eq!(means.len(), 2);
        assert!((means[0] - 0.1).abs() < 1e-9 && (means[1] - 0.08).abs() < 1e-9);
    }

    #[test]
    fn a_falling_loss_gives_no_warning() {
        let losses: Vec<f64> = (0..12).map(|e| 0.1 * 0.93f64.powi(e)).collect();
        assert!(warnings(&epoch_means(&series(&losses, 5), 5)).is_empty());
    }

    #[test]
    fn a_flat_loss_over_five_epochs_is_a_plateau() {
        let losses = [
            0.12, 0.1, 0.09, 0.0851, 0.085, 0.0849, 0.0852, 0.085, 0.0851,
        ];
        let w = warnings(&epoch_means(&series(&losses, 5), 5));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].kind, TrendKind::Plateau);
        assert_eq!(w[0].epoch, 9);
        assert!(w[0].message.contains("5 epochs"), "{}", w[0].message);
        // Four flat epochs are not enough yet.
        assert!(warnings(&epoch_means(&series(&losses[..7], 5), 5)).is_empty());
    }

    #[test]
    fn a_rising_loss_is_a_divergence() {
        let losses = [0.1, 0.09, 0.085, 0.09, 0.097, 0.11];
        let w = warnings(&epoch_means(&series(&losses, 5), 5));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].kind, TrendKind::Divergence);
        assert!(w[0].message.contains("learning rate"), "{}", w[0].message);
        // Rising a little (under 10 % above the lowest) is noise.
        let small = [0.1, 0.09, 0.085, 0.086, 0.087, 0.088];
        assert!(warnings(&epoch_means(&series(&small, 5), 5)).is_empty());
    }
}
