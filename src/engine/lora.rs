//! LoRA adapters: the only trainable parameters of the engine.
//!
//! An adapter adds `scale · B(A(x))` to a frozen layer's output, with
//! `scale = alpha / rank · multiplier`. It works on the activations (x·A,
//! then ·B) and never forms the dense `A·B` weight, so the memory it costs is
//! the two thin matrices and one `[..., rank]` activation. `down` (A) starts
//! as kohya's Kaiming-uniform noise and `up` (B) as zeros, so a fresh adapter
//! changes nothing until it is trained.
//!
//! Layouts: a linear adapter stores `down: [d_in, rank]`, `up: [rank, d_out]`
//! (burn's `x @ W` convention); kohya's files hold the transposes. A conv
//! adapter stores kohya's own layout: `down: [rank, c_in, k, k]` with the base
//! layer's stride and padding, `up: [c_out, rank, 1, 1]`.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, linear};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor};

/// How to build an adapter: its rank, alpha and dropout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraSpec {
    pub rank: usize,
    pub alpha: f64,
    /// Dropout on the rank-sized activation during training (kohya's
    /// `network_dropout`); 0 turns it off.
    pub dropout: f64,
}

fn trainable<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::from_tensor(tensor).set_require_grad(true)
}

/// The adapter of a [`super::nn::Linear`].
#[derive(Module, Debug)]
pub struct LinearLora<B: Backend> {
    /// A, `[d_in, rank]`
    pub down: Param<Tensor<B, 2>>,
    /// B, `[rank, d_out]`
    pub up: Param<Tensor<B, 2>>,
    pub alpha: f64,
    /// How strongly the adapter is applied: 1 in training, the user's LoRA
    /// strength at inference, 0 to switch it off.
    pub multiplier: f64,
    pub dropout: Dropout,
}

impl<B: Backend> LinearLora<B> {
    pub fn init(d_in: usize, d_out: usize, spec: &LoraSpec, device: &B::Device) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        Self {
            down: trainable(Tensor::random(
                [d_in, spec.rank],
                Distribution::Uniform(-bound, bound),
                device,
            )),
            up: trainable(Tensor::zeros([spec.rank, d_out], device)),
            alpha: spec.alpha,
            multiplier: 1.0,
            dropout: DropoutConfig::new(spec.dropout).init(),
        }
    }

    pub fn rank(&self) -> usize {
        self.down.shape().as_slice()[1]
    }

    /// `alpha / rank · multiplier`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank() as f64 * self.multiplier
    }

    /// # Shapes
    /// - x: `[..., d_in]` → the delta, `[..., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let hidden = linear(x, self.down.val(), None); // [..., rank]
        let hidden = self.dropout.forward(hidden);
        linear(hidden, self.up.val(), None).mul_scalar(self.scale()) // [..., d_out]
    }
}

/// The adapter of a [`super::nn::Conv2d`] (1×1 or 3×3).
#[derive(Module, Debug)]
pub struct ConvLora<B: Backend> {
    /// A, `[rank, c_in, k, k]`
    pub down: Param<Tensor<B, 4>>,
    /// B, `[c_out, rank, 1, 1]`
    pub up: Param<Tensor<B, 4>>,
    pub alpha: f64,
    /// See [`LinearLora::multiplier`].
    pub multiplier: f64,
    pub dropout: Dropout,
    pub stride: usize,
    pub padding: usize,
}

impl<B: Backend> ConvLora<B> {
    pub fn init(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        spec: &LoraSpec,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        Self {
            down: trainable(Tensor::random(
                [spec.rank, c_in, kernel, kernel],
                Distribution::Uniform(-bound, bound),
                device,
            )),
            up: trainable(Tensor::zeros([c_out, spec.rank, 1, 1], device)),
            alpha: spec.alpha,
            multiplier: 1.0,
            dropout: DropoutConfig::new(spec.dropout).init(),
            stride,
            padding,
        }
    }

    pub fn rank(&self) -> usize {
        self.down.shape().as_slice()[0]
    }

    /// `alpha / rank · multiplier`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank() as f64 * self.multiplier
    }

    /// # Shapes
    /// - x: `[batch, c_in, h, w]` → the delta, `[batch, c_out, h', w']`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let options = ConvOptions::new(
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        );
        let hidden = conv2d(x, self.down.val(), None, options); // [batch, rank, h', w']
        let hidden = self.dropout.forward(hidden);
        let up = conv2d(
            hidden,
            self.up.val(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        up.mul_scalar(self.scale()) // [batch, c_out, h', w']
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nn::{Conv2d, Linear};
    use crate::engine::{TestAutodiff, TestBackend};
    use burn::tensor::Tolerance;

    const SPEC: LoraSpec = LoraSpec {
        rank: 4,
        alpha: 2.0,
        dropout: 0.0,
    };

    #[test]
    fn a_fresh_adapter_changes_nothing() {
        let device = Default::default();
        let plain = Linear::<TestBackend>::init(8, 6, true, None, &device);
        // base params are lazy: clone them only once they hold a value
        let adapted = Linear {
            weight: Param::from_tensor(plain.weight.val()),
            bias: plain.bias.as_ref().map(|b| Param::from_tensor(b.val())),
            lora: Some(LinearLora::init(8, 6, &SPEC, &device)),
        };
        let x = Tensor::<TestBackend, 3>::random([2, 5, 8], Distribution::Default, &device);
        adapted
            .forward(x.clone())
            .into_data()
            .assert_eq(&plain.forward(x).into_data(), true);
    }

    #[test]
    fn linear_adapter_equals_the_dense_update() {
        let device = Default::default();
        let mut layer = Linear::<TestBackend>::init(8, 6, false, Some(&SPEC), &device);
        let lora = layer.lora.take().unwrap();
        let lora = LinearLora {
            up: Param::from_tensor(Tensor::random([4, 6], Distribution::Default, &device)),
            ..lora
        };
        let dense = layer.weight.val()
            + lora
                .down
                .val()
                .matmul(lora.up.val())
                .mul_scalar(SPEC.alpha / SPEC.rank as f64);
        layer.lora = Some(lora);
        let x = Tensor::<TestBackend, 2>::random([3, 8], Distribution::Default, &device);
        let expected = x.clone().matmul(dense);
        layer
            .forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn conv_adapter_equals_the_dense_update_for_3x3() {
        let device = Default::default();
        let mut layer = Conv2d::<TestBackend>::init(3, 5, 3, 1, 1, Some(&SPEC), &device);
        let lora = layer.lora.take().unwrap();
        let lora = ConvLora {
            up: Param::from_tensor(Tensor::random([5, 4, 1, 1], Distribution::Default, &device)),
            ..lora
        };
        // dense delta[o, i, kh, kw] = Σ_r up[o, r] · down[r, i, kh, kw]
        let up = lora.up.val().reshape([5, 4]);
        let down = lora.down.val().reshape([4, 3 * 9]);
        let delta = up.matmul(down).reshape([5, 3, 3, 3]).mul_scalar(0.5);
        let dense = Conv2d {
            weight: Param::from_tensor(layer.weight.val() + delta),
            bias: layer.bias.as_ref().map(|b| Param::from_tensor(b.val())),
            lora: None,
            stride: 1,
            padding: 1,
        };
        layer.lora = Some(lora);
        let x = Tensor::<TestBackend, 4>::random([2, 3, 6, 6], Distribution::Default, &device);
        layer
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&dense.forward(x).into_data(), Tolerance::absolute(1e-4));
    }

    #[test]
    fn only_the_adapter_receives_gradients() {
        let device = Default::default();
        let layer = Linear::<TestAutodiff>::init(8, 6, true, Some(&SPEC), &device);
        let x = Tensor::<TestAutodiff, 2>::random([3, 8], Distribution::Default, &device);
        let grads = layer.forward(x).sum().backward();
        let lora = layer.lora.as_ref().unwrap();
        assert!(layer.weight.val().grad(&grads).is_none());
        assert!(layer.bias.as_ref().unwrap().val().grad(&grads).is_none());
        // up is zero at init, so only up gets a non-zero gradient on step one
        assert!(lora.up.val().grad(&grads).is_some());
        assert!(lora.down.val().grad(&grads).is_some());
    }
}
