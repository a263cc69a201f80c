//! What the studio knows and tells, apart from what its tools compute:
//! [`guides`] (plain-language markdown pages built into the binary, served as
//! `ategnatos://guides/{topic}`), and [`briefing`] (a project's real state,
//! read from the workspace, for each phase of the conversation: what the MCP
//! prompts fill in).

pub mod briefing;
pub mod guides;
