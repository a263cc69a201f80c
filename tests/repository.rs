//! What a fresh clone offers before anything is installed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use std::path::Path;

/// Claude Code reads `.mcp.json` when it opens the folder, before anyone has
/// run `cargo install`: the server it names must start from the checkout, and
/// `mcp.json` (the visible copy people read and copy from) must say the same.
#[test]
fn the_mcp_config_starts_the_server_from_the_checkout_and_both_copies_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hidden = std::fs::read_to_string(root.join(".mcp.json")).unwrap();
    let visible = std::fs::read_to_string(root.join("mcp.json")).unwrap();
    assert_eq!(hidden, visible, ".mcp.json and mcp.json differ");
    let config: serde_json::Value = serde_json::from_str(&hidden).unwrap();
    let server = &config["mcpServers"]["ategnatos"];
    assert_eq!(server["command"], "cargo", "{server}");
    let args: Vec<&str> = server["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // `cargo run` from the checkout's root builds and starts this package's
    // default binary, which must be the server's.
    let at = args.iter().position(|a| *a == "--").unwrap();
    assert_eq!(args[..at].first(), Some(&"run"), "{args:?}");
    assert_eq!(args.get(at + 1), Some(&"serve"), "{args:?}");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("default-run = \"ategnatos\""),
        "cargo run must pick the server binary"
    );
}
