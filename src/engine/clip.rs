//! The CLIP ViT-L/14 text encoder SD1.5 conditions on, in the layout of
//! transformers' `CLIPTextModel` (keys `text_model.embeddings.*`,
//! `text_model.encoder.layers.N.{self_attn,mlp,layer_norm1,layer_norm2}.*`,
//! `text_model.final_layer_norm.*`).
//!
//! Its LoRA targets are kohya's: `q_proj`, `k_proj`, `v_proj`, `out_proj`,
//! `fc1`, `fc2` in every layer.

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Int, Tensor};

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
}

impl<B: Backend> ClipMlp<B> {
    /// `fc2(quick_gelu(fc1(x)))`, quick GELU being `x · sigmoid(1.702 x)`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.fc1.forward(x); // [batch, seq, intermediate]
        let h = h.clone() * sigmoid(h.mul_scalar(1.702));
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

/// The text encoder; the outer struct exists so paths start `text_model.`.
#[derive(Module, Debug)]
pub struct ClipTextModel<B: Backend> {
    pub text_model: ClipTextTransformer<B>,
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
        }
    }

    /// The hidden states SD conditions on. `clip_skip` 1 is the last layer
    /// (SD1.5's default); 2 stops one layer early, as kohya's
    /// `--clip_skip 2` does, and still applies the final LayerNorm.
    ///
    /// # Shapes
    /// - input_ids: `[batch, seq]` (seq ≤ max_position_embeddings) → `[batch, seq, hidden]`
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>, clip_skip: usize) -> Tensor<B, 3> {
        let tm = &self.text_model;
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .unsqueeze::<2>()
            .expand([batch, seq]); // [batch, seq]
        let mut h = tm.embeddings.token_embedding.forward(input_ids)
            + tm.embeddings.position_embedding.forward(positions); // [batch, seq, hidden]
        let used = tm.encoder.layers.len().saturating_sub(clip_skip.max(1) - 1);
        for layer in tm.encoder.layers.iter().take(used) {
            h = layer.forward(h);
        }
        tm.final_layer_norm.forward(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TestBackend;
    use burn::tensor::TensorData;

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
