//! Gate 2 work: the training plan, the model catalog, and what fits a GPU.

pub mod catalog;

pub use catalog::{CaptionFormat, ModelFamily, ModelSpec, UnknownModel};
