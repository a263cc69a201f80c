//! `ResnetBlock2D`: two norm-SiLU-conv stages with an optional timestep
//! projection between them and a 1×1 shortcut when the channel count
//! changes. The UNet and the VAE both use it (the VAE without a timestep).
//!
//! Keys: `norm1`, `conv1`, `time_emb_proj`, `norm2`, `conv2`, `conv_shortcut`.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::engine::lora::LoraSpec;
use crate::engine::nn::{Conv2d, GroupNorm, Linear, silu};
use crate::engine::unet::LoraTargets;

/// The numbers one resnet block is built from.
#[derive(Debug, Clone, Copy)]
pub struct ResnetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// The timestep embedding's width; `None` in the VAE.
    pub temb_channels: Option<usize>,
    pub groups: usize,
    pub eps: f64,
}

#[derive(Module, Debug)]
pub struct ResnetBlock2D<B: Backend> {
    pub norm1: GroupNorm<B>,
    pub conv1: Conv2d<B>,
    pub time_emb_proj: Option<Linear<B>>,
    pub norm2: GroupNorm<B>,
    pub conv2: Conv2d<B>,
    pub conv_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResnetBlock2D<B> {
    /// kohya's LoCon targets: 3×3 convs get the conv spec, the timestep
    /// projection and the 1×1 shortcut get the linear spec — but only when
    /// conv training is on at all.
    pub fn init(config: &ResnetConfig, lora: &LoraTargets, device: &B::Device) -> Self {
        let conv: Option<&LoraSpec> = lora.conv3x3.as_ref();
        let small: Option<&LoraSpec> = conv.and(lora.linear.as_ref());
        let ResnetConfig {
            in_channels,
            out_channels,
            ..
        } = *config;
        Self {
            norm1: GroupNorm::init(config.groups, in_channels, config.eps, device),
            conv1: Conv2d::init(in_channels, out_channels, 3, 1, 1, conv, device),
            time_emb_proj: config
                .temb_channels
                .map(|temb| Linear::init(temb, out_channels, true, small, device)),
            norm2: GroupNorm::init(config.groups, out_channels, config.eps, device),
            conv2: Conv2d::init(out_channels, out_channels, 3, 1, 1, conv, device),
            conv_shortcut: (in_channels != out_channels)
                .then(|| Conv2d::init(in_channels, out_channels, 1, 1, 0, small, device)),
        }
    }

    /// # Shapes
    /// - x: `[batch, c_in, h, w]`
    /// - temb: `[batch, temb_channels]` (ignored by a block without `time_emb_proj`)
    /// - returns `[batch, c_out, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>, temb: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone()))); // [batch, c_out, h, w]
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(temb)) => {
                let t = proj.forward(silu(temb)); // [batch, c_out]
                h + t.unsqueeze_dims::<4>(&[2, 3]) // broadcast over [h, w]
            }
            _ => h,
        };
        let h = self.conv2.forward(silu(self.norm2.forward(h))); // [batch, c_out, h, w]
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        shortcut + h
    }
}
