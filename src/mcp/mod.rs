//! MCP protocol layer.
