//! Learning-rate schedules (constant and cosine, each with linear warmup)
//! and the Lion optimizer, which burn-optim 0.21 does not have. AdamW comes
//! from burn-optim.

use burn::module::AutodiffModule;
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

/// How the learning rate moves over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScheduleKind {
    Constant,
    /// Half a cosine from the peak down to zero at the last step.
    Cosine,
}

/// A learning-rate schedule: `warmup_steps` of linear ramp from 0, then the
/// kind's shape, over `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub kind: LrScheduleKind,
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LrSchedule {
    /// The rate for `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.kind {
            LrScheduleKind::Constant => self.peak,
            LrScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization
/// Algorithms"): the update is the sign of an interpolated momentum, so it
/// wants a learning rate 3–10× below AdamW's.
#[derive(Debug, Clone, Copy)]
pub struct Lion {
    pub beta_1: f64,
    pub beta_2: f64,
    pub weight_decay: f64,
}

/// Lion's only state: the momentum.
#[derive(Record, Clone)]
pub struct LionState<B: Backend, const D: usize> {
    pub momentum: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for Lion {
    type State<const D: usize> = LionState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let momentum = match state {
            Some(state) => state.momentum,
            None => grad.zeros_like(),
        };
        let direction =
            momentum.clone().mul_scalar(self.beta_1) + grad.clone().mul_scalar(1.0 - self.beta_1);
        let decayed = if self.weight_decay > 0.0 {
            tensor.mul_scalar(1.0 - lr * self.weight_decay)
        } else {
            tensor
        };
        let updated = decayed - direction.sign().mul_scalar(lr);
        let momentum = momentum.mul_scalar(self.beta_2) + grad.mul_scalar(1.0 - self.beta_2);
        (updated, Some(LionState { momentum }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        LionState {
            momentum: state.momentum.to_device(device),
        }
    }
}

impl Lion {
    /// An optimizer for `M` on the autodiff backend `B`.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(self) -> OptimizerAdaptor<Lion, M, B> {
        OptimizerAdaptor::from(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_reaches_zero() {
        let s = LrSchedule {
            kind: LrScheduleKind::Cosine,
            peak: 1.0,
            warmup_steps: 4,
            total_steps: 14,
        };
        assert_eq!(s.at(0), 0.25);
        assert_eq!(s.at(3), 1.0);
        assert_eq!(s.at(4), 1.0);
        assert!((s.at(9) - 0.5).abs() < 1e-12);
        assert!(s.at(14).abs() < 1e-12);
    }

    #[test]
    fn constant_stays_at_peak_after_warmup() {
        let s = LrSchedule {
            kind: LrScheduleKind::Constant,
            peak: 2e-4,
            warmup_steps: 0,
            total_steps: 10,
        };
        assert_eq!(s.at(0), 2e-4);
        assert_eq!(s.at(9), 2e-4);
    }
}
