//! Ategnatos: from a folder of pictures to an evaluated LoRA, behind four gates.
//!
//! The same domain functions serve the MCP server (`mcp`) and the command line
//! (`main.rs`). Arrows point one way: `mcp` → domain modules → `studio`.

pub mod backends;
pub mod clip_bpe;
pub mod comfy;
pub mod dataset;
pub mod engine;
pub mod gates;
pub mod mcp;
pub mod plan;
pub mod studio;
