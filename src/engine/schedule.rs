//! The DDPM noise schedule SD1.5 was trained with: 1000 steps of
//! "scaled linear" betas from 0.00085 to 0.012 (linear in √β), and what the
//! training step needs from it: noising latents, the epsilon or velocity
//! target, and min-SNR loss weights.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// What the UNet is trained to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The added noise (SD1.5).
    Epsilon,
    /// The velocity `√ᾱ·ε − √(1−ᾱ)·x₀` (SD2-v style fine-tunes).
    VPrediction,
}

/// ᾱ_t for every training timestep.
#[derive(Debug, Clone)]
pub struct NoiseSchedule {
    pub alphas_cumprod: Vec<f64>,
}

impl NoiseSchedule {
    /// SD1.5's `scaled_linear` schedule: β from 0.00085 to 0.012 over 1000
    /// steps (scheduler/scheduler_config.json of the SD1.5 repository).
    pub fn sd15() -> Self {
        Self::scaled_linear(1000, 0.00085, 0.012)
    }

    pub fn scaled_linear(steps: usize, beta_start: f64, beta_end: f64) -> Self {
        let (a, b) = (beta_start.sqrt(), beta_end.sqrt());
        let denom = steps.saturating_sub(1).max(1) as f64;
        let mut product = 1.0;
        let alphas_cumprod = (0..steps)
            .map(|i| {
                let sqrt_beta = a + (b - a) * i as f64 / denom;
                product *= 1.0 - sqrt_beta * sqrt_beta;
                product
            })
            .collect();
        Self { alphas_cumprod }
    }

    pub fn len(&self) -> usize {
        self.alphas_cumprod.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alphas_cumprod.is_empty()
    }

    /// Signal-to-noise ratio ᾱ/(1−ᾱ) at `t`.
    pub fn snr(&self, t: usize) -> f64 {
        let a = self.alphas_cumprod[t];
        a / (1.0 - a)
    }

    /// Per-sample coefficients as `[batch, 1, 1, 1]` tensors.
    fn coefficients<B: Backend>(
        &self,
        timesteps: &[usize],
        f: impl Fn(f64) -> f64,
        device: &B::Device,
    ) -> Tensor<B, 4> {
        let values: Vec<f32> = timesteps
            .iter()
            .map(|&t| f(self.alphas_cumprod[t]) as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, [timesteps.len(), 1, 1, 1]), device)
    }

    /// x_t = √ᾱ·x₀ + √(1−ᾱ)·ε.
    ///
    /// # Shapes
    /// - latents, noise: `[batch, c, h, w]`; timesteps: `batch` long
    pub fn add_noise<B: Backend>(
        &self,
        latents: Tensor<B, 4>,
        noise: Tensor<B, 4>,
        timesteps: &[usize],
    ) -> Tensor<B, 4> {
        let device = latents.device();
        let signal = self.coefficients::<B>(timesteps, f64::sqrt, &device);
        let sigma = self.coefficients::<B>(timesteps, |a| (1.0 - a).sqrt(), &device);
        latents * signal + noise * sigma
    }

    /// What the model should output for this sample.
    pub fn target<B: Backend>(
        &self,
        prediction: Prediction,
        latents: Tensor<B, 4>,
        noise: Tensor<B, 4>,
        timesteps: &[usize],
    ) -> Tensor<B, 4> {
        match prediction {
            Prediction::Epsilon => noise,
            Prediction::VPrediction => {
                let device = latents.device();
                let signal = self.coefficients::<B>(timesteps, f64::sqrt, &device);
                let sigma = self.coefficients::<B>(timesteps, |a| (1.0 - a).sqrt(), &device);
                noise * signal - latents * sigma
            }
        }
    }

    /// Min-SNR-γ loss weights (Hang et al. 2023): `min(snr, γ)/snr` for
    /// epsilon, `min(snr, γ)/(snr + 1)` for v-prediction; all ones without γ.
    pub fn loss_weights(
        &self,
        prediction: Prediction,
        timesteps: &[usize],
        gamma: Option<f64>,
    ) -> Vec<f32> {
        timesteps
            .iter()
            .map(|&t| match gamma {
                None => 1.0,
                Some(gamma) => {
                    let snr = self.snr(t);
                    let clipped = snr.min(gamma);
                    match prediction {
                        Prediction::Epsilon => (clipped / snr) as f32,
                        Prediction::VPrediction => (clipped / (snr + 1.0)) as f32,
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd15_schedule_matches_diffusers_endpoints() {
        let s = NoiseSchedule::sd15();
        assert_eq!(s.len(), 1000);
        // diffusers: alphas_cumprod[0] = 0.99915, alphas_cumprod[999] ≈ 0.0046601
        assert!((s.alphas_cumprod[0] - 0.99915).abs() < 1e-6);
        assert!(
            (s.alphas_cumprod[999] - 0.0046601).abs() < 1e-6,
            "{}",
            s.alphas_cumprod[999]
        );
    }

    #[test]
    fn min_snr_only_down_weights_easy_timesteps() {
        let s = NoiseSchedule::sd15();
        let w = s.loss_weights(Prediction::Epsilon, &[0, 999], Some(5.0));
        assert!(
            w[0] < 0.01,
            "t=0 has a huge SNR and must be down-weighted: {}",
            w[0]
        );
        assert_eq!(w[1], 1.0);
    }
}
