//! The timestep embedding: a sinusoidal code of the diffusion timestep
//! (`flip_sin_to_cos = true`, `freq_shift = 0` in SD1.5), then the two-layer
//! MLP `time_embedding.linear_1` / `linear_2`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::engine::nn::{Linear, silu};

/// Sinusoidal features of `timesteps`, cosines first.
///
/// # Shapes
/// - timesteps: `[batch]` → `[batch, dim]`
pub fn sinusoidal_embedding<B: Backend>(timesteps: Tensor<B, 1>, dim: usize) -> Tensor<B, 2> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f64.ln()) * i as f64 / half as f64).exp() as f32)
        .collect();
    let device = timesteps.device();
    let freqs = Tensor::<B, 1>::from_data(TensorData::new(freqs, [half]), &device);
    let args = timesteps.unsqueeze_dim::<2>(1) * freqs.unsqueeze_dim::<2>(0); // [batch, half]
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1) // [batch, dim]
}

#[derive(Module, Debug)]
pub struct TimestepEmbedding<B: Backend> {
    pub linear_1: Linear<B>,
    pub linear_2: Linear<B>,
}

impl<B: Backend> TimestepEmbedding<B> {
    pub fn init(in_dim: usize, time_dim: usize, device: &B::Device) -> Self {
        Self {
            linear_1: Linear::init(in_dim, time_dim, true, None, device),
            linear_2: Linear::init(time_dim, time_dim, true, None, device),
        }
    }

    /// # Shapes
    /// - x: `[batch, in_dim]` → `[batch, time_dim]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}
