//! Ategnatos: from a folder of pictures to an evaluated LoRA, behind four gates.
//!
//! The same domain functions serve the MCP server (`mcp`) and the command line
//! (`src/cli/`, behind `main.rs`). Arrows point one way: `mcp` and the CLI →
//! domain modules → `studio`; the picture readers are the `thumbs` crate,
//! which knows nothing of ours.
//!
//! The domain: [`dataset`] (a folder of pictures and its captions: Gate 1's
//! audit), [`likeness`] (which pictures look alike: duplicates, variety,
//! quarantine), [`plan`] and [`backends`] (the training plan, its memory
//! estimate, the trainers' configs: Gate 2), [`gates`] (the gate records),
//! [`engine`] (the native LoRA trainer); [`bench`] measures them on generated
//! sets.

// Tests write their fixtures with plain `std::fs` calls; shipped code goes
// through `studio::write_atomic` (see `clippy.toml`).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod advice;
pub mod art;
pub mod backends;
pub mod bench;
pub mod clip_bpe;
pub mod cloud;
pub mod comfy;
pub mod dataset;
pub mod engine;
pub mod environment;
pub mod gates;
pub mod knowledge;
pub mod likeness;
pub mod mcp;
pub mod plan;
pub mod run;
pub mod studio;
