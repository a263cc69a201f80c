//! Gate 2 work: the training plan, the model catalog, and what fits a GPU.

pub mod catalog;
pub mod vram;

pub use catalog::{Architecture, CaptionFormat, ModelFamily, ModelSize, ModelSpec, UnknownModel};
