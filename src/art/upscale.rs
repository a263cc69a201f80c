//! Enlarging a picture through the artist's ComfyUI before it is cut to an
//! export size: when a ComfyUI answers and has an upscale model (ESRGAN
//! type), the `upscale` template enlarges the picture with real added
//! detail, and the export works from that. When none answers, or it has no
//! upscale model, the export stays a high-quality resize and says why.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::comfy::client::ComfyClient;
use crate::comfy::inventory;
use crate::comfy::settings;
use crate::comfy::submit::{self, Outcome, Source, SubmitRequest};
use crate::studio::{Progress, Workspace};

/// Longest an upscale may take.
const LIMIT: Duration = Duration::from_secs(600);

/// What the upscale did.
#[derive(Debug, Clone)]
pub enum Upscale {
    /// The enlarged picture (absolute path), the model and the server.
    Done {
        path: PathBuf,
        model: String,
        server: String,
    },
    /// Why no model enlarged it, in words.
    NotAvailable(String),
}

/// Enlarges `source` (absolute, inside the workspace) with ComfyUI's
/// upscale template; `model` picks one of its upscale models (default: the
/// first it lists).
pub async fn through_comfyui(
    ws: &Workspace,
    source: PathBuf,
    server: Option<&str>,
    model: Option<&str>,
    progress: &dyn Progress,
) -> Upscale {
    let (url, _) = match settings::resolve_url(server, ws, None) {
        Ok(u) => u,
        Err(e) => return Upscale::NotAvailable(format!("no ComfyUI address ({e})")),
    };
    let client = match ComfyClient::new(url.clone()) {
        Ok(c) => c,
        Err(e) => return Upscale::NotAvailable(e.to_string()),
    };
    let installed = match inventory::fetch(&client).await {
        Ok(i) => i.upscale_models,
        Err(_) => {
            return Upscale::NotAvailable(format!("no ComfyUI answered at {}", url.as_str()));
        }
    };
    let chosen = match model {
        Some(m) if installed.iter().any(|i| i == m) => m.to_string(),
        Some(m) => {
            return Upscale::NotAvailable(format!(
                "the ComfyUI at {} has no upscale model `{m}` (it has: {})",
                url.as_str(),
                if installed.is_empty() {
                    "none".into()
                } else {
                    installed.join(", ")
                }
            ));
        }
        None => match installed.first() {
            Some(m) => m.clone(),
            None => {
                return Upscale::NotAvailable(format!(
                    "the ComfyUI at {} has no upscale model (put an ESRGAN-type model such as 4x-UltraSharp in its models/upscale_models folder)",
                    url.as_str()
                ));
            }
        },
    };
    let mut params = Map::new();
    params.insert("upscale_model".into(), Value::String(chosen.clone()));
    let req = SubmitRequest {
        source: Source::Named("upscale".into()),
        params,
        inputs: vec![source],
        project: None,
        base_model: None,
        server: Some(url.as_str().to_string()),
        timeout: LIMIT,
    };
    let folder = submit::output_folder_name(ws, "upscale");
    match submit::submit(ws, &req, &folder, progress).await {
        Ok(r) if r.outcome == Outcome::Rendered => match r.outputs.first() {
            Some(out) => Upscale::Done {
                path: ws.root().join(&out.path),
                model: chosen,
                server: url.as_str().to_string(),
            },
            None => Upscale::NotAvailable("the upscale gave no picture".into()),
        },
        Ok(_) => {
            Upscale::NotAvailable(format!("the ComfyUI at {} stopped answering", url.as_str()))
        }
        Err(e) => Upscale::NotAvailable(format!("the upscale failed: {e}")),
    }
}

/// Exports `req`; when that enlarges the picture and `upscale` is on, asks
/// the artist's ComfyUI to enlarge it with a model first and exports again
/// from that, saying which happened. The blocking work runs off the async
/// runtime.
pub async fn export_upscaling(
    ws: &Workspace,
    req: &super::export::ExportRequest,
    upscale: bool,
    server: Option<&str>,
    model: Option<&str>,
    progress: &dyn Progress,
) -> Result<super::export::ExportReport, super::export::ExportError> {
    use super::export::export_asset;
    let run = |ws: Workspace, req: super::export::ExportRequest| async move {
        tokio::task::spawn_blocking(move || export_asset(&ws, &req))
            .await
            .unwrap_or_else(|e| {
                Err(super::export::ExportError::Encode {
                    path: String::new(),
                    reason: format!("the export crashed: {e}"),
                })
            })
    };
    let mut first = run(ws.clone(), req.clone()).await?;
    if !upscale || first.most_enlarged() <= 1.0 {
        return Ok(first);
    }
    let source = ws.resolve(&req.source)?;
    match through_comfyui(ws, source, server, model, progress).await {
        Upscale::Done {
            path,
            model,
            server,
        } => {
            let mut again = req.clone();
            again.source = ws.display_path(&path);
            let mut report = run(ws.clone(), again.clone()).await?;
            report.notes.insert(
                0,
                format!(
                    "Upscaled first by the ComfyUI at {server} with {model} (added detail, not only size): {}, then cut to size.",
                    again.source
                ),
            );
            report.source = first.source;
            report.source_width = first.source_width;
            report.source_height = first.source_height;
            report.upscaled_with = Some(model);
            Ok(report)
        }
        Upscale::NotAvailable(why) => {
            first.notes.push(format!(
                "No model upscale: {why}. With ComfyUI running and an upscale model installed, the export enlarges through it."
            ));
            Ok(first)
        }
    }
}
