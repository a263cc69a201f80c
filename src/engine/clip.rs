//! The CLIP ViT-L/14 text encoder SD1.5 conditions on, in the layout of
//! transformers' `CLIPTextModel` (keys `text_model.embeddings.*`,
//! `text_model.encoder.layers.N.{self_attn,mlp,layer_norm1,layer_norm2}.*`,
//! `text_model.final_layer_norm.*`).
//!
//! Its LoRA targets are kohya's: `q_proj`, `k_proj`, `v_proj`, `out_proj`,
//! `fc1`, `fc2` in every layer.
//!
//! SDXL conditions on two of them: the same CLIP ViT-L and OpenCLIP ViT-bigG
//! (exact GELU, and a `text_projection` for the pooled embedding, as
//! transformers' `CLIPTextModelWithProjection`). Both give the penultimate
//! layer's hidden states without the final LayerNorm
//! ([`ClipTextModel::penultimate`]); the second also the pooled embedding:
//! the last layer, normed, at the end-of-text token, projected.

use burn::module::Module;
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Int, Tensor, TensorData};

use crate::engine::lora::LoraSpec;
use crate::engine::nn::{Embedding, LayerNorm, Linear};

/// The shape of a CLIP text encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub layer_norm_eps: f64,
    /// OpenCLIP's exact GELU instead of OpenAI CLIP's quick GELU.
    pub exact_gelu: bool,
    /// The width of `text_projection` (SDXL's second encoder); `None` for a
    /// plain `CLIPTextModel`.
    pub projection_dim: Option<usize>,
}

impl ClipConfig {
    /// openai/clip-vit-large-patch14's text tower, as SD1.5 ships it:
    /// <https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/text_encoder/config.json>.
    pub fn sd15() -> Self {
        Self {
            vocab_size: 49_408,
            max_position_embeddings: 77,
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            layer_norm_eps: 1e-5,
            exact_gelu: false,
            projection_dim: None,
        }
    }

    /// OpenCLIP ViT-bigG/14's text tower, SDXL's second encoder:
    /// <https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/text_encoder_2/config.json>.
    pub fn sdxl_bigg() -> Self {
        Self {
            vocab_size: 49_408,
            max_position_embeddings: 77,
            hidden_size: 1280,
            intermediate_size: 5120,
            num_hidden_layers: 32,
            num_attention_heads: 20,
            layer_norm_eps: 1e-5,
            exact_gelu: true,
            projection_dim: Some(1280),
        }
    }

    /// A toy second encoder: three layers of width 24, with its projection.
    pub fn tiny_bigg() -> Self {
        Self {
            hidden_size: 24,
            intermediate_size: 48,
            num_hidden_layers: 3,
            num_attention_heads: 3,
            exact_gelu: true,
            projection_dim: Some(24),
            ..Self::tiny()
        }
    }

    /// Two layers of width 16 over a 64-token vocabulary and 8 positions.
    pub fn tiny() -> Self {
        Self {
            vocab_size: 64,
            max_position_embeddings: 8,
            hidden_size: 16,
            intermediate_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            layer_norm_eps: 1e-5,
            exact_gelu: false,
            projection_dim: None,
        }
    }
}

#[derive(Module, Debug)]
pub struct ClipAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub out_proj: Linear<B>,
    pub heads: usize,
}

impl<B: Backend> ClipAttention<B> {
    /// Causal self-attention.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d]` → same
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, d] = x.dims();
        let split = |t: Tensor<B, 3>| {
            t.reshape([batch, seq, self.heads, d / self.heads])
                .swap_dims(1, 2)
        };
        let q = split(self.q_proj.forward(x.clone())); // [batch, heads, seq, head_dim]
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let out = attention(q, k, v, None, None, options); // [batch, heads, seq, head_dim]
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([batch, seq, d]))
    }
}

#[derive(Module, Debug)]
pub struct ClipMlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub exact_gelu: bool,
}

impl<B: Backend> ClipMlp<B> {
    /// `fc2(quick_gelu(fc1(x)))`, quick GELU being `x · sigmoid(1.702 x)`;
    /// OpenCLIP's encoder uses the exact GELU.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.fc1.forward(x); // [batch, seq, intermediate]
        let h = if self.exact_gelu {
            gelu(h)
        } else {
            h.clone() * sigmoid(h.mul_scalar(1.702))
        };
        self.fc2.forward(h)
    }
}

#[derive(Module, Debug)]
pub struct ClipEncoderLayer<B: Backend> {
    pub self_attn: ClipAttention<B>,
    pub layer_norm1: LayerNorm<B>,
    pub mlp: ClipMlp<B>,
    pub layer_norm2: LayerNorm<B>,
}

impl<B: Backend> ClipEncoderLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x));
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct ClipEmbeddings<B: Backend> {
    pub token_embedding: Embedding<B>,
    pub position_embedding: Embedding<B>,
}

#[derive(Module, Debug)]
pub struct ClipEncoder<B: Backend> {
    pub layers: Vec<ClipEncoderLayer<B>>,
}

#[derive(Module, Debug)]
pub struct ClipTextTransformer<B: Backend> {
    pub embeddings: ClipEmbeddings<B>,
    pub encoder: ClipEncoder<B>,
    pub final_layer_norm: LayerNorm<B>,
}

/// The text encoder; the outer struct exists so paths start `text_model.`
/// (and, for SDXL's second encoder, `text_projection.weight` beside it).
#[derive(Module, Debug)]
pub struct ClipTextModel<B: Backend> {
    pub text_model: ClipTextTransformer<B>,
    pub text_projection: Option<Linear<B>>,
}

impl<B: Backend> ClipTextModel<B> {
    pub fn init(config: &ClipConfig, lora: Option<&LoraSpec>, device: &B::Device) -> Self {
        let d = config.hidden_size;
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|_| ClipEncoderLayer {
                self_attn: ClipAttention {
                    q_proj: Linear::init(d, d, true, lora, device),
                    k_proj: Linear::init(d, d, true, lora, device),
                    v_proj: Linear::init(d, d, true, lora, device),
                    out_proj: Linear::init(d, d, true, lora, device),
                    heads: config.num_attention_heads,
                },
                layer_norm1: LayerNorm::init(d, eps, device),
                mlp: ClipMlp {
                    fc1: Linear::init(d, config.intermediate_size, true, lora, device),
                    fc2: Linear::init(config.intermediate_size, d, true, lora, device),
                    exact_gelu: config.exact_gelu,
                },
                layer_norm2: LayerNorm::init(d, eps, device),
            })
            .collect();
        Self {
            text_model: ClipTextTransformer {
                embeddings: ClipEmbeddings {
                    token_embedding: Embedding::init(config.vocab_size, d, device),
                    position_embedding: Embedding::init(config.max_position_embeddings, d, device),
                },
                encoder: ClipEncoder { layers },
                final_layer_norm: LayerNorm::init(d, eps, device),
            },
            text_projection: config
                .projection_dim
                .map(|p| Linear::init(d, p, false, None, device)),
        }
    }

    /// The hidden states SD conditions on. `clip_skip` 1 is the last layer
    /// (SD1.5's default); 2 stops one layer early, as kohya's
    /// `--clip_skip 2` does, and still applies the final LayerNorm.
    ///
    /// # Shapes
    /// - input_ids: `[batch, seq]` (seq ≤ max_position_embeddings) → `[batch, seq, hidden]`
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>, clip_skip: usize) -> Tensor<B, 3> {
        let used = self
            .text_model
            .encoder
            .layers
            .len()
            .saturating_sub(clip_skip.max(1) - 1);
        let h = self.run_layers(input_ids, used);
        self.text_model.final_layer_norm.forward(h)
    }

    /// The embeddings through the first `used` layers.
    fn run_layers(&self, input_ids: Tensor<B, 2, Int>, used: usize) -> Tensor<B, 3> {
        let tm = &self.text_model;
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .unsqueeze::<2>()
            .expand([batch, seq]); // [batch, seq]
        let mut h = tm.embeddings.token_embedding.forward(input_ids)
            + tm.embeddings.position_embedding.forward(positions); // [batch, seq, hidden]
        for layer in tm.encoder.layers.iter().take(used) {
            h = layer.forward(h);
        }
        h
    }

    /// What SDXL conditions on: the penultimate layer's hidden states
    /// (no final LayerNorm), and, where the model has `text_projection`,
    /// the pooled embedding: the last layer's output, normed, at the first
    /// position holding the row's largest id (the end-of-text token, as
    /// transformers picks it), projected.
    ///
    /// # Shapes
    /// - input_ids: `[batch, seq]` → (`[batch, seq, hidden]`, `[batch, projection]`)
    pub fn penultimate(
        &self,
        input_ids: Tensor<B, 2, Int>,
    ) -> (Tensor<B, 3>, Option<Tensor<B, 2>>) {
        let layers = self.text_model.encoder.layers.len();
        let [batch, seq] = input_ids.dims();
        let Some(projection) = &self.text_projection else {
            return (self.run_layers(input_ids, layers.saturating_sub(1)), None);
        };
        let ids: Vec<i64> = input_ids
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap_or_default();
        let eos: Vec<i64> = ids
            .chunks(seq.max(1))
            .map(|row| {
                let max = row.iter().copied().max().unwrap_or(0);
                row.iter().position(|&v| v == max).unwrap_or(0) as i64
            })
            .collect();
        let device = input_ids.device();
        let tm = &self.text_model;
        let mut h = self.run_layers(input_ids, layers.saturating_sub(1));
        let penultimate = h.clone();
        if let Some(last) = tm.encoder.layers.last() {
            h = last.forward(h);
        }
        let h = tm.final_layer_norm.forward(h); // [batch, seq, hidden]
        let hidden = h.dims()[2];
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(eos, [batch]), &device)
            .reshape([batch, 1, 1])
            .expand([batch, 1, hidden]); // [batch, 1, hidden]
        let pooled = h.gather(1, index).reshape([batch, hidden]); // [batch, hidden]
        (penultimate, Some(projection.forward(pooled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TestBackend;

    #[test]
    fn later_tokens_do_not_change_earlier_outputs() {
        let device = Default::default();
        let clip = ClipTextModel::<TestBackend>::init(&ClipConfig::tiny(), None, &device);
        let a = Tensor::<TestBackend, 2, Int>::from_data(
            TensorData::new(vec![1i64, 5, 9, 3], [1, 4]),
            &device,
        );
        let b = Tensor::<TestBackend, 2, Int>::from_data(
            TensorData::new(vec![1i64, 5, 9, 60], [1, 4]),
            &device,
        );
        let ha = clip.forward(a, 1).slice([0..1, 0..3, 0..16]);
        let hb = clip.forward(b, 1).slice([0..1, 0..3, 0..16]);
        ha.into_data()
            .assert_approx_eq::<f32>(&hb.into_data(), burn::tensor::Tolerance::absolute(1e-5));
    }
}
