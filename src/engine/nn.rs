//! The plain layers every block is built from, with PyTorch's parameter
//! names (`weight`, `bias`) so a module path is a checkpoint key.
//!
//! burn-nn has these layers too, but names the norm parameters `gamma`/`beta`
//! and stores linear weights its own way; owning them keeps loading a visible
//! one-to-one mapping and lets [`Linear`] and [`Conv2d`] carry a LoRA adapter
//! (see [`super::lora`]).

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor};

use super::lora::{ConvLora, LinearLora, LoraSpec};
use super::precision::frozen_conv2d;

/// A frozen parameter of uniform noise in ±`bound`: what a model is built
/// with before its checkpoint is loaded (and what benchmarks run on). It is
/// lazy: nothing is allocated until the value is used, so loading a
/// checkpoint never pays for the noise, and a full-size model can be built
/// just to list its layers.
pub(crate) fn init_param<B: Backend, const D: usize>(
    shape: [usize; D],
    bound: f64,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    lazy_param(shape, device, move |device| {
        Tensor::random(shape, Distribution::Uniform(-bound, bound), device)
    })
}

fn lazy_param<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
    init: impl Fn(&B::Device) -> Tensor<B, D> + Send + Sync + 'static,
) -> Param<Tensor<B, D>> {
    Param::uninitialized(
        ParamId::new(),
        move |device, _| init(device).set_require_grad(false),
        device.clone(),
        false,
        shape.into(),
    )
}

fn ones_param<B: Backend>(size: usize, device: &B::Device) -> Param<Tensor<B, 1>> {
    lazy_param([size], device, move |device| Tensor::ones([size], device))
}

fn zeros_param<B: Backend>(size: usize, device: &B::Device) -> Param<Tensor<B, 1>> {
    lazy_param([size], device, move |device| Tensor::zeros([size], device))
}

/// A linear layer. `weight` is stored `[d_in, d_out]` (burn's layout); the
/// loader transposes PyTorch's `[d_out, d_in]` once at load time.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_in, d_out]`
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The trainable low-rank adapter, when this layer is a LoRA target.
    pub lora: Option<LinearLora<B>>,
}

impl<B: Backend> Linear<B> {
    /// A layer with noise weights; `lora` attaches an adapter when given.
    pub fn init(
        d_in: usize,
        d_out: usize,
        bias: bool,
        lora: Option<&LoraSpec>,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        Self {
            weight: init_param([d_in, d_out], bound, device),
            bias: bias.then(|| init_param([d_out], bound, device)),
            lora: lora.map(|spec| LinearLora::init(d_in, d_out, spec, device)),
        }
    }

    /// # Shapes
    /// - x: `[..., d_in]` → `[..., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let delta = self.lora.as_ref().map(|lora| lora.forward(x.clone())); // [..., d_out]
        let out = frozen_linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()));
        match delta {
            None => out,
            Some(delta) => out + delta,
        }
    }
}

/// `x · weight + bias` as a matrix product with a view of `weight`
/// (`[d_in, d_out]`). burn's `linear` op gives the same values, but its
/// backward pass copies the weight transposed at every call (the flex
/// backend cannot reshape the transposed view in place): a full extra pass
/// over the frozen base weights in every step. A product's backward reads
/// the transposed view in place.
fn frozen_linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    let out = super::precision::frozen_matmul(x, weight);
    match bias {
        None => out,
        Some(bias) => out + bias.unsqueeze::<D>(),
    }
}

/// A 2-D convolution with PyTorch's weight layout `[out, in, k, k]`.
#[derive(Module, Debug)]
pub struct Conv2d<B: Backend> {
    /// `[c_out, c_in, k, k]`
    pub weight: Param<Tensor<B, 4>>,
    /// `[c_out]`
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The trainable low-rank adapter, when this layer is a LoRA target.
    pub lora: Option<ConvLora<B>>,
    pub stride: usize,
    pub padding: usize,
}

impl<B: Backend> Conv2d<B> {
    /// A square convolution with bias; `padding` is symmetric.
    pub fn init(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        lora: Option<&LoraSpec>,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        Self {
            weight: init_param([c_out, c_in, kernel, kernel], bound, device),
            bias: Some(init_param([c_out], bound, device)),
            lora: lora
                .map(|spec| ConvLora::init(c_in, c_out, kernel, stride, padding, spec, device)),
            stride,
            padding,
        }
    }

    /// The options every convolution of this layer (base and LoRA down) uses.
    pub fn options(&self) -> ConvOptions<2> {
        ConvOptions::new(
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }

    /// # Shapes
    /// - x: `[batch, c_in, h, w]` → `[batch, c_out, h', w']`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let bias = self.bias.as_ref().map(|b| b.val());
        match &self.lora {
            None => frozen_conv2d(x, self.weight.val(), bias, self.options()),
            Some(lora) => {
                let delta = lora.forward(x.clone()); // [batch, c_out, h', w']
                frozen_conv2d(x, self.weight.val(), bias, self.options()) + delta
            }
        }
    }
}

/// Group normalisation over `[batch, channels, ...]` with a per-channel affine.
#[derive(Module, Debug)]
pub struct GroupNorm<B: Backend> {
    /// `[channels]`
    pub weight: Param<Tensor<B, 1>>,
    /// `[channels]`
    pub bias: Param<Tensor<B, 1>>,
    pub num_groups: usize,
    pub eps: f64,
}

impl<B: Backend> GroupNorm<B> {
    pub fn init(num_groups: usize, channels: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: ones_param(channels, device),
            bias: zeros_param(channels, device),
            num_groups,
            eps,
        }
    }

    /// # Shapes
    /// - x: `[batch, channels, h, w]` → same
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, channels, h, w] = x.dims();
        let grouped = x.reshape([batch, self.num_groups, (channels / self.num_groups) * h * w]);
        let (var, mean) = grouped.clone().var_mean_bias(2); // [batch, groups, 1]
        let normed = (grouped - mean).div((var + self.eps).sqrt());
        let normed = normed.reshape([batch, channels, h, w]);
        let weight = self.weight.val().reshape([1, channels, 1, 1]);
        let bias = self.bias.val().reshape([1, channels, 1, 1]);
        normed * weight + bias
    }
}

/// Layer normalisation over the last dimension.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// `[d_model]`
    pub weight: Param<Tensor<B, 1>>,
    /// `[d_model]`
    pub bias: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    pub fn init(d_model: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: ones_param(d_model, device),
            bias: zeros_param(d_model, device),
            eps,
        }
    }

    /// # Shapes
    /// - x: `[batch, seq, d_model]` → same
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (var, mean) = x.clone().var_mean_bias(2); // [batch, seq, 1]
        let normed = (x - mean).div((var + self.eps).sqrt());
        normed * self.weight.val().unsqueeze::<3>() + self.bias.val().unsqueeze::<3>()
    }
}

/// An embedding table, `weight: [vocab, d_model]`.
#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
}

impl<B: Backend> Embedding<B> {
    pub fn init(vocab: usize, d_model: usize, device: &B::Device) -> Self {
        Self {
            weight: init_param([vocab, d_model], 0.02, device),
        }
    }

    /// # Shapes
    /// - ids: `[batch, seq]` → `[batch, seq, d_model]`
    pub fn forward(&self, ids: Tensor<B, 2, burn::tensor::Int>) -> Tensor<B, 3> {
        burn::tensor::module::embedding(self.weight.val(), ids)
    }
}

/// SiLU, `x · sigmoid(x)`, as the UNet and VAE use it.
pub fn silu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    activation::silu(x)
}

/// Nearest-neighbour 2× upsampling written with reshape and expand, so its
/// backward pass is a plain sum on every backend.
///
/// # Shapes
/// - x: `[batch, c, h, w]` → `[batch, c, 2h, 2w]`
pub fn upsample_nearest_2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, c, h, w] = x.dims();
    x.reshape([batch, c, h, 1, w, 1])
        .expand([batch, c, h, 2, w, 2])
        .reshape([batch, c, h * 2, w * 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TestBackend;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn group_norm_normalises_each_group() {
        let device = Default::default();
        let norm = GroupNorm::<TestBackend>::init(2, 4, 1e-5, &device);
        let x =
            Tensor::<TestBackend, 4>::random([2, 4, 3, 3], Distribution::Normal(3.0, 2.0), &device);
        let y = norm.forward(x);
        // group 0 = channels 0..2 of batch 0
        let group = y.slice([0..1, 0..2, 0..3, 0..3]).flatten::<1>(0, 3);
        let (var, mean) = group.var_mean_bias(0);
        mean.into_data()
            .assert_approx_eq::<f32>(&TensorData::from([0.0f32]), Tolerance::absolute(1e-4));
        var.into_data()
            .assert_approx_eq::<f32>(&TensorData::from([1.0f32]), Tolerance::absolute(1e-3));
    }

    #[test]
    fn upsample_repeats_each_pixel_twice_both_ways() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device,
        );
        let y = upsample_nearest_2x(x);
        let expected = TensorData::new(
            vec![
                1.0f32, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0,
            ],
            [1, 1, 4, 4],
        );
        y.into_data().assert_eq(&expected, true);
    }
}
