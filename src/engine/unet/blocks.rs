//! The UNet's stages: down blocks (resnets, optional spatial transformers,
//! a stride-2 downsampler), the mid block, and up blocks (resnets that eat
//! the skip connections, optional transformers, a nearest-2× upsampler).
//!
//! diffusers has separate classes for the stages with and without
//! attention (`CrossAttnDownBlock2D` / `DownBlock2D`); their keys differ only
//! in whether `attentions.N` exists, so one struct with a possibly empty
//! `attentions` list serves both.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::engine::nn::{Conv2d, upsample_nearest_2x};
use crate::engine::unet::LoraTargets;
use crate::engine::unet::resnet::ResnetBlock2D;
use crate::engine::unet::transformer::Transformer2DModel;

/// Key: `downsamplers.0.conv` — a 3×3 stride-2 convolution.
#[derive(Module, Debug)]
pub struct Downsample2D<B: Backend> {
    pub conv: Conv2d<B>,
}

impl<B: Backend> Downsample2D<B> {
    pub fn init(channels: usize, lora: &LoraTargets, device: &B::Device) -> Self {
        Self {
            conv: Conv2d::init(channels, channels, 3, 2, 1, lora.conv3x3.as_ref(), device),
        }
    }

    /// # Shapes
    /// - x: `[batch, c, h, w]` → `[batch, c, h/2, w/2]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.conv.forward(x)
    }
}

/// Key: `upsamplers.0.conv` — nearest 2× then a 3×3 convolution.
#[derive(Module, Debug)]
pub struct Upsample2D<B: Backend> {
    pub conv: Conv2d<B>,
}

impl<B: Backend> Upsample2D<B> {
    pub fn init(channels: usize, lora: &LoraTargets, device: &B::Device) -> Self {
        Self {
            conv: Conv2d::init(channels, channels, 3, 1, 1, lora.conv3x3.as_ref(), device),
        }
    }

    /// # Shapes
    /// - x: `[batch, c, h, w]` → `[batch, c, 2h, 2w]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.conv.forward(upsample_nearest_2x(x))
    }
}

/// `down_blocks.N`: resnets (each followed by a transformer when the block
/// has attention), then an optional downsampler.
#[derive(Module, Debug)]
pub struct DownBlock2D<B: Backend> {
    pub resnets: Vec<ResnetBlock2D<B>>,
    pub attentions: Vec<Transformer2DModel<B>>,
    pub downsamplers: Vec<Downsample2D<B>>,
}

impl<B: Backend> DownBlock2D<B> {
    /// # Shapes
    /// - x: `[batch, c_in, h, w]`, temb: `[batch, temb]`, context: `[batch, ctx_seq, ctx_dim]`
    /// - returns the block's output and every intermediate state the up
    ///   path will concatenate, in order.
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        temb: Tensor<B, 2>,
        context: Tensor<B, 3>,
    ) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
        let mut h = x;
        let mut states = Vec::with_capacity(self.resnets.len() + 1);
        for (i, resnet) in self.resnets.iter().enumerate() {
            h = resnet.forward(h, Some(temb.clone())); // [batch, c_out, h, w]
            if let Some(attn) = self.attentions.get(i) {
                h = attn.forward(h, context.clone());
            }
            states.push(h.clone());
        }
        for down in &self.downsamplers {
            h = down.forward(h); // [batch, c_out, h/2, w/2]
            states.push(h.clone());
        }
        (h, states)
    }
}

/// `mid_block`: resnet, transformer, resnet.
#[derive(Module, Debug)]
pub struct UNetMidBlock2DCrossAttn<B: Backend> {
    pub resnets: Vec<ResnetBlock2D<B>>,
    pub attentions: Vec<Transformer2DModel<B>>,
}

impl<B: Backend> UNetMidBlock2DCrossAttn<B> {
    /// # Shapes
    /// - x: `[batch, c, h, w]` → same
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        temb: Tensor<B, 2>,
        context: Tensor<B, 3>,
    ) -> Tensor<B, 4> {
        let mut resnets = self.resnets.iter();
        let mut h = match resnets.next() {
            Some(first) => first.forward(x, Some(temb.clone())),
            None => x,
        };
        for (attn, resnet) in self.attentions.iter().zip(resnets) {
            h = attn.forward(h, context.clone());
            h = resnet.forward(h, Some(temb.clone()));
        }
        h
    }
}

/// `up_blocks.N`: each resnet first concatenates one skip state on the
/// channel axis; then an optional transformer; an optional upsampler last.
#[derive(Module, Debug)]
pub struct UpBlock2D<B: Backend> {
    pub resnets: Vec<ResnetBlock2D<B>>,
    pub attentions: Vec<Transformer2DModel<B>>,
    pub upsamplers: Vec<Upsample2D<B>>,
}

impl<B: Backend> UpBlock2D<B> {
    /// Pops as many skip states from the end of `skips` as it has resnets.
    ///
    /// # Shapes
    /// - x: `[batch, c_prev, h, w]` → `[batch, c_out, h', w']` (h' = 2h with an upsampler)
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        skips: &mut Vec<Tensor<B, 4>>,
        temb: Tensor<B, 2>,
        context: Tensor<B, 3>,
    ) -> Tensor<B, 4> {
        let mut h = x;
        for (i, resnet) in self.resnets.iter().enumerate() {
            if let Some(skip) = skips.pop() {
                h = Tensor::cat(vec![h, skip], 1); // [batch, c_prev + c_skip, h, w]
            }
            h = resnet.forward(h, Some(temb.clone())); // [batch, c_out, h, w]
            if let Some(attn) = self.attentions.get(i) {
                h = attn.forward(h, context.clone());
            }
        }
        for up in &self.upsamplers {
            h = up.forward(h);
        }
        h
    }
}
