//! ComfyUI: rendering through the artist's own ComfyUI, local or remote.
//!
//! [`client`] speaks its HTTP API and [`socket`] its `/ws` events;
//! [`follow`] runs one prompt from submission to the files on disk, with
//! `/history` as the truth when the socket fails. [`workflow`] checks and
//! fills API-format graphs, [`templates`] are ours (txt2img, img2img,
//! ControlNet, upscale, LoRA test, batch variations), and [`submit`] is the
//! `comfyui_submit` work. [`eval`] renders a trained LoRA on a weight grid and
//! [`sheet`] draws its labelled contact sheet (with the bitmap [`font`]).
//! [`inventory`] keeps what the ComfyUI has installed in `grimoire/studio.md`,
//! [`register`] adds an approved LoRA to it, and [`settings`] says which
//! server to talk to.

pub mod client;
mod error;
pub mod eval;
pub mod follow;
pub mod inventory;
pub mod preview;
pub mod register;
pub mod settings;
pub mod sheet;
pub mod socket;
mod staging;
pub mod submit;
pub mod templates;
pub mod workflow;

pub use client::ComfyClient;
pub use error::{ComfyError, NodeProblem};
pub use settings::ServerUrl;
pub use workflow::{Workflow, WorkflowError};
