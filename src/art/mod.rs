//! The art side of the studio: what the artist's taste is ([`eye`]), the
//! prompts that worked and each asset's versions ([`prompts`]), and
//! finished pictures cut to the sizes the web and print need ([`export`]),
//! enlarged first by the artist's ComfyUI when it runs ([`upscale`]).
//!
//! State lives in the grimoire like every other record: `grimoire/eye.md`,
//! `grimoire/prompts/<family>.md`, `grimoire/projects/<name>/assets/<asset>/`,
//! each written atomically from a JSON record.

pub mod export;
pub mod eye;
pub mod prompts;
pub mod upscale;
