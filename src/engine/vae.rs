//! The SD1.5 VAE encoder (`AutoencoderKL.encoder` + `quant_conv`): turns an
//! image in [-1, 1] into the 4-channel latents the UNet trains on. The
//! decoder is not needed to train, so its keys are reported as unused, not
//! as unexpected.
//!
//! Keys: `encoder.conv_in`, `encoder.down_blocks.N.resnets.M.*`,
//! `encoder.down_blocks.N.downsamplers.0.conv`, `encoder.mid_block.*`
//! (attention as `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0`),
//! `encoder.conv_norm_out`, `encoder.conv_out`, `quant_conv`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::{AttentionModuleOptions, PadMode};
use burn::tensor::{Distribution, Tensor};

use crate::engine::nn::{Conv2d, GroupNorm, Linear, silu};
use crate::engine::unet::LoraTargets;
use crate::engine::unet::resnet::{ResnetBlock2D, ResnetConfig};

/// The shape of the VAE encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    pub in_channels: usize,
    pub latent_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub norm_num_groups: usize,
    /// Latents are multiplied by this before the UNet sees them.
    pub scaling_factor: f64,
}

impl VaeConfig {
    /// <https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/vae/config.json>.
    pub fn sd15() -> Self {
        Self {
            in_channels: 3,
            latent_channels: 4,
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            norm_num_groups: 32,
            scaling_factor: 0.18215,
        }
    }

    /// SDXL's VAE: SD1.5's layout, retrained, with its own scale
    /// (<https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/vae/config.json>).
    pub fn sdxl() -> Self {
        Self {
            scaling_factor: 0.13025,
            ..Self::sd15()
        }
    }

    /// SD1.5's encoder layout (four stages, two resnets each: images 8×
    /// the latent size) at toy widths.
    pub fn sd15_toy() -> Self {
        Self {
            block_out_channels: vec![8, 16, 32, 32],
            layers_per_block: 2,
            ..Self::tiny()
        }
    }

    /// Two stages of 8 and 16 channels: images 2× the latent size.
    pub fn tiny() -> Self {
        Self {
            in_channels: 3,
            latent_channels: 4,
            block_out_channels: vec![8, 16],
            layers_per_block: 1,
            norm_num_groups: 4,
            scaling_factor: 0.18215,
        }
    }
}

/// Key: `downsamplers.0.conv`, a stride-2 conv after padding only the right
/// and bottom edges (diffusers' `padding=0` encoder downsampler).
#[derive(Module, Debug)]
pub struct VaeDownsample<B: Backend> {
    pub conv: Conv2d<B>,
}

#[derive(Module, Debug)]
pub struct DownEncoderBlock2D<B: Backend> {
    pub resnets: Vec<ResnetBlock2D<B>>,
    pub downsamplers: Vec<VaeDownsample<B>>,
}

/// Single-head self-attention over pixels.
#[derive(Module, Debug)]
pub struct VaeAttention<B: Backend> {
    pub group_norm: GroupNorm<B>,
    pub to_q: Linear<B>,
    pub to_k: Linear<B>,
    pub to_v: Linear<B>,
    pub to_out: Vec<Linear<B>>,
}

impl<B: Backend> VaeAttention<B> {
    /// # Shapes
    /// - x: `[batch, c, h, w]` → same
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, c, h, w] = x.dims();
        let tokens = self
            .group_norm
            .forward(x.clone())
            .reshape([batch, c, h * w])
            .swap_dims(1, 2); // [batch, hw, c]
        let q = self.to_q.forward(tokens.clone()).unsqueeze_dim::<4>(1); // [batch, 1, hw, c]
        let k = self.to_k.forward(tokens.clone()).unsqueeze_dim::<4>(1);
        let v = self.to_v.forward(tokens).unsqueeze_dim::<4>(1);
        let out =
            attention(q, k, v, None, None, AttentionModuleOptions::default()).squeeze_dim::<3>(1);
        let out = self.to_out.iter().fold(out, |o, layer| layer.forward(o)); // [batch, hw, c]
        out.swap_dims(1, 2).reshape([batch, c, h, w]) + x
    }
}

#[derive(Module, Debug)]
pub struct VaeMidBlock<B: Backend> {
    pub resnets: Vec<ResnetBlock2D<B>>,
    pub attentions: Vec<VaeAttention<B>>,
}

#[derive(Module, Debug)]
pub struct VaeEncoder<B: Backend> {
    pub conv_in: Conv2d<B>,
    pub down_blocks: Vec<DownEncoderBlock2D<B>>,
    pub mid_block: VaeMidBlock<B>,
    pub conv_norm_out: GroupNorm<B>,
    pub conv_out: Conv2d<B>,
}

/// `AutoencoderKL` without its decoder.
#[derive(Module, Debug)]
pub struct AutoencoderKlEncoder<B: Backend> {
    pub encoder: VaeEncoder<B>,
    pub quant_conv: Conv2d<B>,
    pub scaling_factor: f64,
}

impl<B: Backend> AutoencoderKlEncoder<B> {
    pub fn init(config: &VaeConfig, device: &B::Device) -> Self {
        let none = LoraTargets::default();
        let groups = config.norm_num_groups;
        let resnet = |c_in, c_out| ResnetConfig {
            in_channels: c_in,
            out_channels: c_out,
            temb_channels: None,
            groups,
            eps: 1e-6,
        };
        let channels = &config.block_out_channels;
        let n = channels.len();
        let mut in_c = channels[0];
        let mut down_blocks = Vec::with_capacity(n);
        for (i, &out_c) in channels.iter().enumerate() {
            let resnets = (0..config.layers_per_block)
                .map(|j| {
                    ResnetBlock2D::init(
                        &resnet(if j == 0 { in_c } else { out_c }, out_c),
                        &none,
                        device,
                    )
                })
                .collect();
            let downsamplers = if i + 1 < n {
                vec![VaeDownsample {
                    conv: Conv2d::init(out_c, out_c, 3, 2, 0, None, device),
                }]
            } else {
                Vec::new()
            };
            down_blocks.push(DownEncoderBlock2D {
                resnets,
                downsamplers,
            });
            in_c = out_c;
        }
        let last = channels[n - 1];
        let latent2 = config.latent_channels * 2;
        Self {
            encoder: VaeEncoder {
                conv_in: Conv2d::init(config.in_channels, channels[0], 3, 1, 1, None, device),
                down_blocks,
                mid_block: VaeMidBlock {
                    resnets: (0..2)
                        .map(|_| ResnetBlock2D::init(&resnet(last, last), &none, device))
                        .collect(),
                    attentions: vec![VaeAttention {
                        group_norm: GroupNorm::init(groups, last, 1e-6, device),
                        to_q: Linear::init(last, last, true, None, device),
                        to_k: Linear::init(last, last, true, None, device),
                        to_v: Linear::init(last, last, true, None, device),
                        to_out: vec![Linear::init(last, last, true, None, device)],
                    }],
                },
                conv_norm_out: GroupNorm::init(groups, last, 1e-6, device),
                conv_out: Conv2d::init(last, latent2, 3, 1, 1, None, device),
            },
            quant_conv: Conv2d::init(latent2, latent2, 1, 1, 0, None, device),
            scaling_factor: config.scaling_factor,
        }
    }

    /// The latent distribution's mean and log-variance.
    ///
    /// # Shapes
    /// - images: `[batch, 3, H, W]` in [-1, 1] → two `[batch, 4, H/8, W/8]` (SD1.5)
    pub fn encode_moments(&self, images: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let enc = &self.encoder;
        let mut h = enc.conv_in.forward(images);
        for block in &enc.down_blocks {
            for resnet in &block.resnets {
                h = resnet.forward(h, None);
            }
            for down in &block.downsamplers {
                let padded = h.pad((0, 1, 0, 1), PadMode::Constant(0.0)); // right and bottom only
                h = down.conv.forward(padded);
            }
        }
        let mut resnets = enc.mid_block.resnets.iter();
        if let Some(first) = resnets.next() {
            h = first.forward(h, None);
        }
        for (attn, resnet) in enc.mid_block.attentions.iter().zip(resnets) {
            h = resnet.forward(attn.forward(h), None);
        }
        h = enc.conv_out.forward(silu(enc.conv_norm_out.forward(h))); // [batch, 8, h, w]
        let moments = self.quant_conv.forward(h);
        let [batch, c2, hh, ww] = moments.dims();
        let c = c2 / 2;
        let mean = moments.clone().slice([0..batch, 0..c, 0..hh, 0..ww]);
        let logvar = moments
            .slice([0..batch, c..c2, 0..hh, 0..ww])
            .clamp(-30.0, 20.0);
        (mean, logvar)
    }

    /// Scaled latents: a sample of the latent distribution (or its mean when
    /// `sample` is false), times the scaling factor.
    pub fn encode(&self, images: Tensor<B, 4>, sample: bool) -> Tensor<B, 4> {
        let (mean, logvar) = self.encode_moments(images);
        let latents = if sample {
            let noise = mean.random_like(Distribution::Normal(0.0, 1.0));
            mean + logvar.mul_scalar(0.5).exp() * noise
        } else {
            mean
        };
        latents.mul_scalar(self.scaling_factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TestBackend;

    #[test]
    fn tiny_vae_halves_the_image_per_stage() {
        let device = Default::default();
        let vae = AutoencoderKlEncoder::<TestBackend>::init(&VaeConfig::tiny(), &device);
        let images = Tensor::random([1, 3, 16, 16], Distribution::Uniform(-1.0, 1.0), &device);
        assert_eq!(vae.encode(images, false).dims(), [1, 4, 8, 8]);
    }
}
