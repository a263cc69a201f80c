//! Which ComfyUI to talk to, and where it lives on disk.
//!
//! The address comes from, in order: the tool's argument, the project's
//! remembered setting (`grimoire/.state/projects/<name>/comfyui.json`), the
//! `COMFYUI_URL` environment variable, and `http://127.0.0.1:8188`. A project
//! remembers an address (and ComfyUI's folder) once a server answered there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ComfyError;
use crate::studio::{StudioError, Workspace, write_json_atomic};

/// ComfyUI's own default address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8188";
/// The environment variable that names the server.
pub const ENV_URL: &str = "COMFYUI_URL";

/// A checked ComfyUI base address: `http(s)://host[:port][/base]`, no
/// trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Checks an address a person typed; `127.0.0.1:8188` gets `http://`.
    pub fn parse(given: &str) -> Result<ServerUrl, ComfyError> {
        let bad = |reason: &str| ComfyError::BadUrl {
            given: given.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = given.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let url = reqwest::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http:// and https:// addresses are ComfyUI's"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host name"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it must not have a `?` query or `#` part"));
        }
        let mut text = url.to_string();
        while text.ends_with('/') {
            text.pop();
        }
        Ok(ServerUrl(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of an API path (`/prompt`, `/history/x`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The WebSocket URL for `client_id`.
    pub fn socket(&self, client_id: &str) -> String {
        let ws = if let Some(rest) = self.0.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.0.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.0.clone()
        };
        format!("{ws}/ws?clientId={client_id}")
    }

    /// True when the server runs on this computer (its files are ours to place).
    pub fn is_loopback(&self) -> bool {
        let Ok(url) = reqwest::Url::parse(&self.0) else {
            return false;
        };
        let host = url.host_str().unwrap_or("");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an address came from, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UrlSource {
    Argument,
    Project,
    Environment,
    Default,
}

/// What a project remembers about its ComfyUI.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComfySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// ComfyUI's folder on this computer (the one with `models/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comfyui_dir: Option<String>,
}

fn settings_file(ws: &Workspace, project: &str) -> Result<PathBuf, StudioError> {
    Ok(ws.project_state_dir(project)?.join("comfyui.json"))
}

/// The project's remembered settings (empty when none).
pub fn load(ws: &Workspace, project: &str) -> Result<ComfySettings, StudioError> {
    Ok(ws
        .read_json(&settings_file(ws, project)?)?
        .unwrap_or_default())
}

/// Remembers `settings` for the project.
pub fn save(ws: &Workspace, project: &str, settings: &ComfySettings) -> Result<(), StudioError> {
    write_json_atomic(&settings_file(ws, project)?, settings)
}

/// The server to use, and why that one.
pub fn resolve_url(
    argument: Option<&str>,
    ws: &Workspace,
    project: Option<&str>,
) -> Result<(ServerUrl, UrlSource), ComfyError> {
    resolve_url_with_env(argument, ws, project, std::env::var(ENV_URL).ok())
}

/// [`resolve_url`] with the environment's value given (for tests).
pub fn resolve_url_with_env(
    argument: Option<&str>,
    ws: &Workspace,
    project: Option<&str>,
    env: Option<String>,
) -> Result<(ServerUrl, UrlSource), ComfyError> {
    if let Some(a) = argument.filter(|a| !a.trim().is_empty()) {
        return Ok((ServerUrl::parse(a)?, UrlSource::Argument));
    }
    if let Some(p) = project
        && let Some(url) = load(ws, p)?.url
    {
        return Ok((ServerUrl::parse(&url)?, UrlSource::Project));
    }
    if let Some(e) = env.filter(|e| !e.trim().is_empty()) {
        return Ok((ServerUrl::parse(&e)?, UrlSource::Environment));
    }
    Ok((ServerUrl::parse(DEFAULT_URL)?, UrlSource::Default))
}

/// Checks that `dir` is a ComfyUI folder (it has `models/loras`, or
/// `main.py` beside `models/`) and returns its LoRA folder.
pub fn loras_folder(dir: &Path) -> Result<PathBuf, ComfyError> {
    let loras = dir.join("models").join("loras");
    if loras.is_dir() {
        return Ok(loras);
    }
    Err(ComfyError::Invalid {
        message: format!(
            "`{}` does not look like a ComfyUI folder: it has no `models/loras` folder",
            dir.display()
        ),
        hint: "give the folder that holds ComfyUI's `main.py` and `models/`".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studio::Hint;

    #[test]
    fn addresses_are_checked_and_normalised() {
        assert_eq!(
            ServerUrl::parse("127.0.0.1:8188").unwrap().as_str(),
            "http://127.0.0.1:8188"
        );
        let proxied = ServerUrl::parse("https://pod-8188.proxy.example/comfy/").unwrap();
        assert_eq!(proxied.as_str(), "https://pod-8188.proxy.example/comfy");
        assert_eq!(
            proxied.socket("abc"),
            "wss://pod-8188.proxy.example/comfy/ws?clientId=abc"
        );
        assert!(!proxied.is_loopback());
        assert!(
            ServerUrl::parse("http://localhost:8188")
                .unwrap()
                .is_loopback()
        );
        for bad in ["", "ftp://x", "http://", "http://x/?a=1"] {
            let e = ServerUrl::parse(bad).unwrap_err();
            assert!(e.hint().unwrap().contains("8188"), "{bad}");
        }
    }

    #[test]
    fn argument_then_project_then_environment_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let env = Some("http://10.0.0.9:8188".to_string());
        let (u, s) = resolve_url_with_env(None, &ws, Some("p"), None).unwrap();
        assert_eq!((u.as_str(), s), (DEFAULT_URL, UrlSource::Default));
        let (u, s) = resolve_url_with_env(None, &ws, Some("p"), env.clone()).unwrap();
        assert_eq!(
            (u.as_str(), s),
            ("http://10.0.0.9:8188", UrlSource::Environment)
        );
        save(
            &ws,
            "p",
            &ComfySettings {
                url: Some("http://127.0.0.1:9000".into()),
                comfyui_dir: None,
            },
        )
        .unwrap();
        let (u, s) = resolve_url_with_env(None, &ws, Some("p"), env.clone()).unwrap();
        assert_eq!(
            (u.as_str(), s),
            ("http://127.0.0.1:9000", UrlSource::Project)
        );
        let (u, s) = resolve_url_with_env(Some("localhost:1"), &ws, Some("p"), env).unwrap();
        assert_eq!((u.as_str(), s), ("http://localhost:1", UrlSource::Argument));
    }
}
