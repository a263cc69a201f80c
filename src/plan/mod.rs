//! Gate 2 work: the training plan, the model catalog, and what fits a GPU.
//!
//! [`catalog`] holds the base models as data, [`gpu`] the cards (and asks the
//! driver which one is here), [`training`] the [`TrainingPlan`] itself,
//! [`presets`] a good first plan per training type, [`validate`] the safe
//! ranges, [`vram`] the memory estimate and the shrink ladder, [`time`] the
//! duration and cost, and [`planner`] puts them together for a project.

pub mod catalog;
pub mod gpu;
pub mod planner;
pub mod presets;
pub mod time;
pub mod training;
pub mod validate;
pub mod vram;

pub use catalog::{CaptionFormat, ModelFamily, ModelSpec, UnknownModel};
pub use planner::{PlanError, PlanOutcome, PlanRequest, plan_training};
pub use training::{Backend, Optimizer, Preset, TrainingPlan};
