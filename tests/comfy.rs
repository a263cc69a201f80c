//! ComfyUI end to end, against a mock ComfyUI on 127.0.0.1 (axum with a real
//! WebSocket) that follows the protocol observed on a real server: a render
//! with progress and outputs, a 400 validation error, a runtime error, a
//! socket that drops mid-run, a cached resubmission, interrupt on cancel,
//! ComfyUI down, an HTML answer, an output that is not a picture, a lost
//! prompt; the evaluation grid and its contact sheet; the MCP tools.
//!
//! An opt-in test runs the model-free templates against a real ComfyUI:
//! `COMFYUI_URL=http://127.0.0.1:8188 cargo test --test comfy real_comfyui -- --ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;
#[path = "comfy/mock.rs"]
mod mock;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ategnatos::comfy::eval::{self, EvalOutcome, EvalRequest};
use ategnatos::comfy::follow::{self, FollowOptions};
use ategnatos::comfy::register::{self, Approval};
use ategnatos::comfy::sheet;
use ategnatos::comfy::submit::{self, Outcome, Source, SubmitRequest};
use ategnatos::comfy::{ComfyClient, ComfyError, ServerUrl, Workflow};
use ategnatos::studio::Hint;
use ategnatos::studio::project::{self, TrainingType};
use ategnatos::studio::{NoProgress, Progress, Workspace};
use mock::Mode;
use serde_json::{Map, Value, json};

/// Progress that remembers every message and can be cancelled.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<String>>,
    cancel: AtomicBool,
}

impl Progress for Recorder {
    fn report(&self, _done: u64, _total: Option<u64>, message: &str) {
        self.messages.lock().unwrap().push(message.to_string());
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    (dir, ws)
}

fn request(source: Source, server: &str) -> SubmitRequest {
    SubmitRequest {
        source,
        params: Map::new(),
        inputs: Vec::new(),
        project: None,
        base_model: None,
        server: Some(server.to_string()),
        timeout: Duration::from_secs(60),
    }
}

fn template(name: &str, server: &str, params: Value) -> SubmitRequest {
    let mut r = request(Source::Named(name.into()), server);
    r.params = params.as_object().unwrap().clone();
    r
}

/// Everything under `workspace/outputs/`, relative.
fn outputs(ws: &Workspace) -> Vec<String> {
    let base = ws.work_dir().join("outputs");
    let mut found = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            found.push(p.strip_prefix(&base).unwrap().display().to_string());
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_template_renders_node_by_node_and_step_by_step_into_the_workspace() {
    let comfy = mock::start(Mode::Normal).await;
    let (_d, ws) = workspace();
    let progress = Recorder::default();
    let req = template(
        "txt2img",
        &comfy.url,
        json!({"prompt": "a red fox", "seed": 7, "steps": 3}),
    );
    let report = submit::submit(&ws, &req, "render-1", &progress)
        .await
        .unwrap();

    assert_eq!(report.outcome, Outcome::Rendered);
    assert_eq!(report.outputs.len(), 1);
    let out = &report.outputs[0];
    assert!(
        out.path.starts_with("workspace/outputs/render-1/"),
        "{}",
        out.path
    );
    let picture = image::open(ws.root().join(&out.path)).unwrap().to_rgb8();
    let sent = &comfy.with(|i| i.prompts[0].clone())["prompt"];
    assert_eq!(sent["6"]["inputs"]["text"], "a red fox");
    assert_eq!(sent["3"]["inputs"]["seed"], 7);
    assert_eq!(picture.get_pixel(10, 10).0, mock::graph_colour(sent));
    assert!(
        ws.root()
            .join("workspace/outputs/render-1/workflow.json")
            .is_file()
    );
    // A small preview, never the full file.
    assert_eq!(report.previews.len(), 1);
    let p = image::load_from_memory(&report.previews[0]).unwrap();
    assert!(p.width().max(p.height()) <= 512);

    let messages = progress.messages.lock().unwrap().clone();
    for expected in [
        "CheckpointLoaderSimple (node 4)",
        "KSampler (node 3), step 1 of 3",
        "KSampler (node 3), step 3 of 3",
        "SaveImage (node 9)",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{expected} not in {messages:#?}"
        );
    }
    assert!(!report.cached);
    assert!(
        report
            .plain_summary()
            .contains("1 picture in workspace/outputs/render-1")
    );
    // Nothing but the finished folder.
    assert!(outputs(&ws).iter().all(|p| !p.contains("partial")));
}

#[tokio::test]
async fn a_missing_checkpoint_is_named_with_what_the_server_has_and_nothing_is_written() {
    let comfy = mock::start(Mode::Normal).await;
    let (_d, ws) = workspace();
    let req = template(
        "lora-test",
        &comfy.url,
        json!({"checkpoint": "nope.safetensors", "lora": "ghost.safetensors"}),
    );
    let err = submit::submit(&ws, &req, "r", &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("checkpoint 'nope.safetensors' is not installed in this ComfyUI; it has: sd_xl_base_1.0.safetensors, v1-5-pruned-emaonly.safetensors"),
        "{text}"
    );
    assert!(
        text.contains(
            "LoRA 'ghost.safetensors' is not installed in this ComfyUI; it has none in that folder"
        ),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("install the missing file"));
    assert!(outputs(&ws).is_empty(), "{:?}", outputs(&ws));
}

#[tokio::test]
async fn an_unknown_node_class_and_a_broken_graph_are_said_plainly() {
    let comfy = mock::start(Mode::Normal).await;
    let (_d, ws) = workspace();
    let graph = json!({"1": {"class_type": "FancyUpscaler", "inputs": {}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}});
    let err = submit::submit(
        &ws,
        &request(Source::Inline(graph), &comfy.url),
        "r",
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("node type `FancyUpscaler` is not installed"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("custom node"));

    let cycle = json!({"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}, "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}});
    let err = submit::submit(
        &ws,
        &request(Source::Inline(cycle), &comfy.url),
        "r",
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("loop"), "{err}");
    let ui = json!({"nodes": [], "links": [], "version": 0.4});
    let err = submit::submit(
        &ws,
        &request(Source::Inline(ui), &comfy.url),
        "r",
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.hint().unwrap().contains("Export (API)"), "{err}");
    assert!(comfy.with(|i| i.prompts.is_empty()));
    assert!(outputs(&ws).is_empty());
}

#[tokio::test]
async fn a_runtime_error_names_the_node_and_the_cause() {
    let comfy = mock::start(Mode::FailInSampler).await;
    let (_d, ws) = workspace();
    let err = submit::submit(
        &ws,
        &template("txt2img", &comfy.url, json!({})),
        "r",
        &NoProgress,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("node 3 (KSampler)"), "{text}");
    assert!(text.contains("out of memory"), "{text}");
    assert!(err.hint().unwrap().contains("--lowvram"));
    assert!(outputs(&ws).is_empty(), "{:?}", outputs(&ws));
}

#[tokio::test]
async fn a_socket_that_drops_mid_run_is_followed_through_the_history() {
    let comfy = mock::start(Mode::DropSocketMidRun).await;
    let client = ComfyClient::new(ServerUrl::parse(&comfy.url).unwrap()).unwrap();
    let wf = ategnatos::comfy::templates::find("txt2img")
        .unwrap()
        .fill(None, &Map::new())
        .unwrap();
    let options = FollowOptions {
        tick: Duration::from_millis(20),
        ..FollowOptions::default()
    };
    let mut lives = Vec::new();
    let done = follow::run_prompt(&client, &wf, &options, &|| false, &mut |l| {
        lives.push(l.clone())
    })
    .await
    .unwrap();
    assert!(done.from_history);
    assert_eq!(done.outputs.len(), 1);
    assert!(
        lives.iter().any(|l| l.polling),
        "the fall-back to polling was never reported"
    );
    // It tried the socket again (same client id) before polling.
    let opens = comfy.with(|i| i.socket_opens.clone());
    assert_eq!(opens.len(), 1, "{opens:?}");

    // And through submit, the pictures arrive all the same.
    let comfy = mock::start(Mode::DropSocketMidRun).await;
    let (_d, ws) = workspace();
    let r = submit::submit(
        &ws,
        &template("txt2img", &comfy.url, json!({})),
        "r",
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(r.outputs.len(), 1);
}

#[tokio::test]
async fn a_prompt_the_server_forgot_is_reported_lost() {
    let comfy = mock::start(Mode::Forget).await;
    let client = ComfyClient::new(ServerUrl::parse(&comfy.url).unwrap()).unwrap();
    let wf = ategnatos::comfy::templates::find("smoke")
        .unwrap()
        .fill(None, &Map::new())
        .unwrap();
    let options = FollowOptions {
        tick: Duration::from_millis(20),
        ..FollowOptions::default()
    };
    let err = follow::run_prompt(&client, &wf, &options, &|| false, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ComfyError::Lost { .. }), "{err}");
    assert!(err.to_string().contains("restarted"));
}

#[tokio::test]
async fn an_identical_resubmission_is_called_cached() {
    let comfy = mock::start(Mode::Normal).await;
    let (_d, ws) = workspace();
    let req = template("smoke", &comfy.url, json!({"color": 255}));
    let first = submit::submit(&ws, &req, "a", &NoProgress).await.unwrap();
    let second = submit::submit(&ws, &req, "b", &NoProgress).await.unwrap();
    assert!(!first.cached);
    assert!(second.cached);
    assert!(
        second.plain_summary().contains("change the seed"),
        "{}",
        second.plain_summary()
    );
    let a = std::fs::read(ws.root().join(&first.outputs[0].path)).unwrap();
    let b = std::fs::read(ws.root().join(&second.outputs[0].path)).unwrap();
    assert_eq!(a, b);
}

#[tokio::test]
async fn cancelling_interrupts_the_prompt_in_comfyui() {
    let comfy = mock::start(Mode::HoldInSampler).await;
    let (_d, ws) = workspace();
    let progress = std::sync::Arc::new(Recorder::default());
    let req = template("txt2img", &comfy.url, json!({}));
    let ws2 = ws.clone();
    let p2 = std::sync::Arc::clone(&progress);
    let held = comfy.state.held.notified();
    let task = tokio::spawn(async move { submit::submit(&ws2, &req, "c", p2.as_ref()).await });
    held.await;
    progress.cancel.store(true, Ordering::Relaxed);
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, ComfyError::Cancelled), "{err}");
    let (interrupts, pid) =
        comfy.with(|i| (i.interrupts.clone(), i.prompts[0]["prompt_id"].clone()));
    assert_eq!(interrupts, vec![json!({"prompt_id": pid})]);
    assert!(outputs(&ws).is_empty(), "{:?}", outputs(&ws));
}

#[tokio::test]
async fn a_render_that_never_ends_stops_at_its_time_limit_and_keeps_nothing() {
    // The mock holds the sampler until an interrupt that never comes.
    let comfy = mock::start(Mode::HoldInSampler).await;
    let (_d, ws) = workspace();
    let mut req = template("txt2img", &comfy.url, json!({}));
    req.timeout = Duration::from_millis(300);
    let err = submit::submit(&ws, &req, "slow", &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, ComfyError::TimedOut { .. }), "{err}");
    assert!(err.to_string().contains("did not finish within"), "{err}");
    assert!(err.hint().unwrap().contains("still be rendering"));
    assert!(outputs(&ws).is_empty(), "{:?}", outputs(&ws));
}

#[tokio::test]
async fn comfyui_down_saves_the_workflow_to_run_later() {
    let (_d, ws) = workspace();
    let url = mock::dead_url();
    let req = template("txt2img", &url, json!({"prompt": "a lighthouse"}));
    let report = submit::submit(&ws, &req, "later", &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::SavedForLater);
    let summary = report.plain_summary();
    assert!(
        summary.contains(&format!("ComfyUI is not answering at {url}")),
        "{summary}"
    );
    assert!(summary.contains("Nothing was rendered"));
    assert!(summary.contains("workspace/outputs/later/workflow.json"));
    let saved =
        std::fs::read_to_string(ws.root().join("workspace/outputs/later/workflow.json")).unwrap();
    let wf = Workflow::from_json(&saved).unwrap();
    assert_eq!(wf.input("6", "text"), Some(&json!("a lighthouse")));

    // Submitting that file once ComfyUI runs renders it.
    let comfy = mock::start(Mode::Normal).await;
    let again = request(
        Source::File(ws.root().join("workspace/outputs/later/workflow.json")),
        &comfy.url,
    );
    let r = submit::submit(&ws, &again, "now", &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(
        comfy.with(|i| i.prompts[0]["prompt"]["6"]["inputs"]["text"].clone()),
        "a lighthouse"
    );
}

#[tokio::test]
async fn a_web_page_instead_of_comfyui_is_called_a_proxy_problem() {
    let url = mock::start_html().await;
    let (_d, ws) = workspace();
    let err = submit::submit(&ws, &template("smoke", &url, json!({})), "r", &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a web page (HTML), not ComfyUI's API"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("proxy"));
    assert!(outputs(&ws).is_empty());
}

#[tokio::test]
async fn an_output_that_is_not_a_picture_is_refused_and_nothing_is_kept() {
    let comfy = mock::start(Mode::NotAnImage).await;
    let (_d, ws) = workspace();
    let err = submit::submit(
        &ws,
        &template("smoke", &comfy.url, json!({})),
        "r",
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("is not a picture"), "{err}");
    assert!(outputs(&ws).is_empty(), "{:?}", outputs(&ws));
}

#[tokio::test]
async fn inputs_are_uploaded_and_the_servers_name_is_used() {
    let comfy = mock::start(Mode::Normal).await;
    let (_d, ws) = workspace();
    // The server already holds a different picture of the same name.
    comfy.with(|i| i.uploads.insert("cat.png".into(), b"other".to_vec()));
    let pic = ws.root().join("in/cat.png");
    std::fs::create_dir_all(pic.parent().unwrap()).unwrap();
    common::picture(5, 80, 60).save(&pic).unwrap();
    let mut req = template("invert-image", &comfy.url, json!({}));
    req.inputs = vec![pic.clone()];
    let r = submit::submit(&ws, &req, "up", &NoProgress).await.unwrap();
    assert_eq!(r.uploads[0].uploaded_as, "cat (1).png");
    assert_eq!(
        comfy.with(|i| i.prompts[0]["prompt"]["1"]["inputs"]["image"].clone()),
        "cat (1).png"
    );

    let mut two = template("invert-image", &comfy.url, json!({}));
    two.inputs = vec![pic.clone(), pic];
    let err = submit::submit(&ws, &two, "up2", &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("2 input pictures given, but the workflow has 1 LoadImage node"),
        "{err}"
    );
}

/// A project with a trained LoRA in its run folder.
fn project_with_lora(ws: &Workspace, kind: TrainingType) -> PathBuf {
    let p = project::new_project("ink-fox", kind, "sdxl", "ink foxes", "zkfox", "data", "txt");
    project::save(ws, &p, "# intent\n").unwrap();
    let lora = ws
        .work_dir()
        .join("outputs/ink-fox/ink-fox-20261122-120000/ink-fox.safetensors");
    std::fs::create_dir_all(lora.parent().unwrap()).unwrap();
    std::fs::write(&lora, b"fake lora weights").unwrap();
    std::fs::write(
        lora.with_file_name("ink-fox-000005.safetensors"),
        b"earlier",
    )
    .unwrap();
    lora
}

fn comfyui_folder() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("models/loras")).unwrap();
    d
}

fn eval_request(server: &str) -> EvalRequest {
    EvalRequest {
        project: "ink-fox".into(),
        lora: None,
        checkpoints: Vec::new(),
        prompts: Vec::new(),
        weights: Vec::new(),
        seed: Some(1234),
        steps: Some(2),
        server: Some(server.into()),
        comfyui_dir: None,
        cell_timeout: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn the_eval_grid_copies_the_lora_and_draws_each_cell_where_it_belongs() {
    let comfy = mock::start(Mode::Normal).await;
    let (_d, ws) = workspace();
    let lora = project_with_lora(&ws, TrainingType::Style);
    let comfyui = comfyui_folder();
    comfy.with(|i| i.loras_dir = Some(comfyui.path().join("models/loras")));
    let mut req = eval_request(&comfy.url);
    req.comfyui_dir = Some(comfyui.path().to_path_buf());
    req.checkpoints = vec![
        "sd_xl_base_1.0.safetensors".into(),
        "v1-5-pruned-emaonly.safetensors".into(),
    ];
    let progress = Recorder::default();
    let r = eval::eval_grid(&ws, &req, "grid-1", &progress)
        .await
        .unwrap();

    assert_eq!(r.outcome, EvalOutcome::Rendered);
    // The final LoRA (not the epoch-5 one) was copied into ComfyUI's folder.
    assert_eq!(r.lora, ws.display_path(&lora));
    assert_eq!(
        std::fs::read(comfyui.path().join("models/loras/ink-fox.safetensors")).unwrap(),
        b"fake lora weights"
    );
    assert_eq!(r.weights, eval::DEFAULT_WEIGHTS);
    let labels: Vec<&str> = r.prompts.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(
        labels,
        ["portrait", "landscape", "still life", "animal", "abstract"]
    );
    assert_eq!(r.cells.len(), 2 * 5 * 5);
    // Every graph had the fixed seed and the LoRA at its weight.
    let prompts = comfy.with(|i| i.prompts.clone());
    assert_eq!(prompts.len(), 50);
    assert!(
        prompts
            .iter()
            .all(|p| p["prompt"]["3"]["inputs"]["seed"] == 1234)
    );
    assert!(messages_contain(
        &progress,
        "cell 50 of 50 (abstract, weight 1.00)"
    ));

    // The sheet: its size is the layout's, and each cell shows the picture
    // of its checkpoint, prompt and weight.
    let sheet_img = image::open(ws.root().join(r.contact_sheet.as_ref().unwrap()))
        .unwrap()
        .to_rgb8();
    let blocks: Vec<sheet::Block> = r
        .checkpoints
        .iter()
        .map(|c| sheet::Block {
            title: format!("{c} + ink-fox.safetensors, seed 1234"),
            rows: labels.iter().map(|l| l.to_string()).collect(),
            columns: r.weights.iter().map(|w| format!("{w:.2}")).collect(),
            cells: Vec::new(),
        })
        .collect();
    let lay = sheet::layout("ink-fox: LoRA weight grid", &blocks, eval::SHEET_CELL);
    assert_eq!(
        (sheet_img.width(), sheet_img.height()),
        (lay.width, lay.height)
    );
    for (bi, ckpt) in r.checkpoints.iter().enumerate() {
        for (pi, row) in r.prompts.iter().enumerate() {
            for (wi, w) in r.weights.iter().enumerate() {
                let (x, y) = lay.cell_origin(bi, pi, wi).unwrap();
                let centre = sheet_img
                    .get_pixel(x + eval::SHEET_CELL / 2, y + eval::SHEET_CELL / 2)
                    .0;
                let expected = mock::colour(&row.text, f64::from(*w), ckpt);
                assert_eq!(centre, expected, "{ckpt} / {} / {w}", row.label);
            }
        }
    }
    // Each cell's own file is the picture of its graph, none written over.
    let mut files: Vec<&str> = r.cells.iter().map(|c| c.path.as_str()).collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), r.cells.len());
    for c in &r.cells {
        let text = &r.prompts.iter().find(|p| p.label == c.prompt).unwrap().text;
        let pic = image::open(ws.root().join(&c.path)).unwrap().to_rgb8();
        assert_eq!(
            pic.get_pixel(0, 0).0,
            mock::colour(text, f64::from(c.weight), &c.checkpoint),
            "{}",
            c.path
        );
    }
    let eval_md = std::fs::read_to_string(ws.root().join(&r.eval_md)).unwrap();
    assert!(eval_md.contains("## Verdict"));
    assert!(eval_md.contains("| portrait |"));
    assert!(r.preview.is_some());
    // Once given, ComfyUI's folder is remembered by the project.
    let settings = ategnatos::comfy::settings::load(&ws, "ink-fox").unwrap();
    assert_eq!(
        settings.comfyui_dir.as_deref(),
        Some(comfyui.path().to_str().unwrap())
    );
}

fn messages_contain(p: &Recorder, needle: &str) -> bool {
    p.messages
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains(needle))
}

#[tokio::test]
async fn without_comfyuis_folder_the_user_is_told_which_file_to_put_where() {
    let comfy = mock::start(Mode::Normal).await;
    let (_d, ws) = workspace();
    project_with_lora(&ws, TrainingType::Character);
    let err = eval::eval_grid(&ws, &eval_request(&comfy.url), "g", &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("LoRA 'ink-fox.safetensors' is not installed in this ComfyUI"),
        "{text}"
    );
    assert!(
        text.contains("copy `workspace/outputs/ink-fox/ink-fox-20261122-120000/ink-fox.safetensors` into ComfyUI's `models/loras/` folder"),
        "{text}"
    );
    assert!(comfy.with(|i| i.prompts.is_empty()));
    assert!(
        outputs(&ws).iter().all(|p| p.starts_with("ink-fox")),
        "{:?}",
        outputs(&ws)
    );

    // A checkpoint it does not have is named with what it has.
    comfy.with(|i| i.loras = vec!["ink-fox.safetensors".into()]);
    let mut req = eval_request(&comfy.url);
    req.checkpoints = vec!["dreamshaper.safetensors".into()];
    let err = eval::eval_grid(&ws, &req, "g", &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("checkpoint 'dreamshaper.safetensors' is not installed in this ComfyUI; it has: sd_xl_base_1.0.safetensors"),
        "{err}"
    );
}

#[tokio::test]
async fn the_eval_grid_is_saved_to_run_later_when_comfyui_is_down() {
    let (_d, ws) = workspace();
    project_with_lora(&ws, TrainingType::Object);
    let r = eval::eval_grid(&ws, &eval_request(&mock::dead_url()), "later", &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.outcome, EvalOutcome::SavedForLater);
    assert_eq!(r.saved_workflows.len(), 25);
    for f in &r.saved_workflows {
        let wf = Workflow::from_json(&std::fs::read_to_string(ws.root().join(f)).unwrap()).unwrap();
        assert_eq!(
            wf.input("10", "lora_name"),
            Some(&json!("ink-fox.safetensors"))
        );
        assert!(
            wf.input("6", "text")
                .unwrap()
                .as_str()
                .unwrap()
                .contains("zkfox")
        );
    }
    let summary = r.plain_summary();
    assert!(
        summary.contains("not answering") && summary.contains("models/loras/"),
        "{summary}"
    );
}

#[tokio::test]
async fn an_approved_lora_joins_the_studio_and_completes_the_project() {
    let (_d, ws) = workspace();
    project_with_lora(&ws, TrainingType::Style);
    let approval = Approval {
        lora: None,
        recommended_weight: 0.7,
        good_for: Some("ink illustrations".into()),
    };
    let r = register::register_lora(&ws, "ink-fox", &approval).unwrap();
    assert_eq!(r.project_status, "COMPLETE");
    let studio = std::fs::read_to_string(ws.root().join("grimoire/studio.md")).unwrap();
    assert!(studio.contains("| ink-fox.safetensors | style | zkfox | 0.7 | Stable Diffusion XL 1.0 | ink illustrations |"), "{studio}");
    assert_eq!(
        register::completion(&ws, "ink-fox")
            .unwrap()
            .unwrap()
            .status,
        "COMPLETE"
    );
    // Registering again replaces the entry.
    let again = register::register_lora(&ws, "ink-fox", &approval).unwrap();
    assert!(again.replaced);
    assert_eq!(register::load_loras(&ws).unwrap().len(), 1);
    let bad = Approval {
        recommended_weight: 5.0,
        ..approval
    };
    assert!(
        register::register_lora(&ws, "ink-fox", &bad)
            .unwrap_err()
            .to_string()
            .contains("`5`")
    );
}

mod over_mcp {
    use super::common::client::{call, connect, text};
    use super::*;

    #[tokio::test]
    async fn comfyui_submit_returns_paths_and_previews() {
        let comfy = mock::start(Mode::Normal).await;
        let (_d, ws) = workspace();
        let client = connect(ws.root()).await;
        let r = call(
            &client,
            "comfyui_submit",
            json!({"workflow": "smoke", "params": {"width": 96}, "server": comfy.url}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        let s = r.structured_content.clone().unwrap();
        assert_eq!(s["status"], "done");
        let path = s["result"]["outputs"][0]["path"].as_str().unwrap();
        assert!(ws.root().join(path).is_file());
        assert!(path.starts_with("workspace/outputs/smoke-"), "{path}");
        assert!(r.content.iter().any(|c| c.as_image().is_some()));
        assert!(text(&r).contains("rendered `smoke`"), "{}", text(&r));

        // The editor's format is refused with how to export the API one.
        let r = call(
            &client,
            "comfyui_submit",
            json!({"graph": {"nodes": [], "links": []}, "server": comfy.url}),
        )
        .await;
        assert_eq!(r.is_error, Some(true));
        assert!(text(&r).contains("Export (API)"));
    }

    #[tokio::test]
    async fn a_render_that_outlasts_the_first_wait_brings_its_previews_to_job_status() {
        let comfy = mock::start(Mode::HoldUntilReleased).await;
        let (_d, ws) = workspace();
        let client = connect(ws.root()).await;
        let r = call(
            &client,
            "comfyui_submit",
            json!({"workflow": "txt2img", "params": {"steps": 2}, "server": comfy.url, "wait_seconds": 0}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        let s = r.structured_content.clone().unwrap();
        // Held in the sampler: the first answer is a job still running.
        assert_eq!(s["status"], "running", "{s}");
        assert!(r.content.iter().all(|c| c.as_image().is_none()));
        let job_id = s["job_id"].as_str().unwrap().to_string();

        comfy.state.held.notified().await;
        comfy.state.release.notify_one();
        let r = call(
            &client,
            "job_status",
            json!({"job_id": job_id, "wait_seconds": 240}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        let s = r.structured_content.clone().unwrap();
        assert_eq!(s["status"], "done", "{s}");
        let path = s["result"]["outputs"][0]["path"].as_str().unwrap();
        assert!(ws.root().join(path).is_file());
        // The finished render shows itself, as it would have in the first answer.
        let images: Vec<_> = r.content.iter().filter_map(|c| c.as_image()).collect();
        assert_eq!(images.len(), 1, "{}", text(&r));
        use base64::Engine;
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(&images[0].data)
            .unwrap();
        let p = image::load_from_memory(&jpeg).unwrap();
        assert!(p.width().max(p.height()) <= 512);
    }

    #[tokio::test]
    async fn saved_workflows_are_listed_and_run_by_name() {
        let comfy = mock::start(Mode::Normal).await;
        let (_d, ws) = workspace();
        let client = connect(ws.root()).await;
        let graph = json!({"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0}},
                           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "mine"}}});
        // Rendered once and kept under a name...
        let r = call(
            &client,
            "comfyui_submit",
            json!({"graph": graph, "save_as": "black-square", "server": comfy.url}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        assert!(
            text(&r).contains("grimoire/workflows/black-square.json"),
            "{}",
            text(&r)
        );
        assert!(
            ws.root()
                .join("grimoire/workflows/black-square.json")
                .is_file()
        );
        // ...it is listed beside our templates and the server's models...
        let r = call(&client, "comfyui_submit", json!({"server": comfy.url})).await;
        let s = r.structured_content.clone().unwrap();
        assert!(
            s["saved"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "black-square")
        );
        assert!(
            s["templates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "lora-test")
        );
        assert_eq!(
            s["inventory"]["checkpoints"][0],
            "sd_xl_base_1.0.safetensors"
        );
        assert!(
            std::fs::read_to_string(ws.root().join("grimoire/studio.md"))
                .unwrap()
                .contains("## Models")
        );
        // ...and runs by name.
        let r = call(
            &client,
            "comfyui_submit",
            json!({"workflow": "black-square", "params": {"1.width": 40}, "server": comfy.url}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        assert_eq!(
            comfy.with(|i| i.prompts[1]["prompt"]["1"]["inputs"]["width"].clone()),
            40
        );
    }

    #[tokio::test]
    async fn export_asset_enlarges_through_comfyuis_upscale_model_when_it_runs() {
        let comfy = mock::start(Mode::Normal).await;
        let (_d, ws) = workspace();
        let src = ws.root().join("art/fox.png");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(300, 200, image::Rgb([200, 120, 40]))
            .save(&src)
            .unwrap();
        let client = connect(ws.root()).await;

        // ComfyUI runs with an upscale model: it enlarges first.
        let r = call(
            &client,
            "export_asset",
            json!({"source": "art/fox.png", "spec": "og", "server": comfy.url}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        let s = r.structured_content.clone().unwrap();
        assert_eq!(s["upscaled_with"], "4x-UltraSharp.pth", "{s}");
        assert_eq!(s["source"], "art/fox.png", "{s}");
        assert!(
            text(&r).contains("Upscaled first by the ComfyUI"),
            "{}",
            text(&r)
        );
        let out = image::open(ws.root().join(s["files"][0]["path"].as_str().unwrap())).unwrap();
        assert_eq!((out.width(), out.height()), (1200, 630));
        let asked = comfy.with(|i| i.prompts.clone());
        let upscale = asked
            .iter()
            .find(|p| p["prompt"]["2"]["class_type"] == "UpscaleModelLoader")
            .expect("an upscale prompt");
        assert_eq!(
            upscale["prompt"]["2"]["inputs"]["model_name"],
            "4x-UltraSharp.pth"
        );

        // No ComfyUI: a resize, and the result says why.
        let r = call(
            &client,
            "export_asset",
            json!({"source": "art/fox.png", "spec": "og", "server": mock::dead_url()}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        let s = r.structured_content.clone().unwrap();
        assert!(s.get("upscaled_with").is_none(), "{s}");
        let said = text(&r);
        assert!(
            said.contains("No model upscale: no ComfyUI answered") && said.contains("Lanczos"),
            "{said}"
        );
        let out = image::open(ws.root().join(s["files"][0]["path"].as_str().unwrap())).unwrap();
        assert_eq!((out.width(), out.height()), (1200, 630));
    }

    #[tokio::test]
    async fn eval_grid_and_register_lora_over_mcp() {
        let comfy = mock::start(Mode::Normal).await;
        let (_d, ws) = workspace();
        project_with_lora(&ws, TrainingType::Style);
        comfy.with(|i| i.loras = vec!["ink-fox.safetensors".into()]);
        let client = connect(ws.root()).await;
        // The artist's taste shows beside the grid they judge.
        let r = call(
            &client,
            "remember_preference",
            json!({"text": "muddy greens", "aspect": "colour", "stance": "never"}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        let r = call(&client, "eval_grid", json!({"project": "ink-fox", "weights": [0.5, 1.0], "prompts": ["a heron"], "steps": 1, "server": comfy.url})).await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        assert!(text(&r).contains("muddy greens"), "{}", text(&r));
        let s = r.structured_content.clone().unwrap();
        assert!(
            s["result"]["artist_eye"][0]
                .as_str()
                .unwrap()
                .contains("muddy greens"),
            "{s}"
        );
        assert_eq!(s["result"]["cells"].as_array().unwrap().len(), 2);
        assert!(r.content.iter().any(|c| c.as_image().is_some()));
        assert!(text(&r).contains("register_lora"));
        let r = call(
            &client,
            "register_lora",
            json!({"project": "ink-fox", "recommended_weight": 0.5}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        assert!(text(&r).contains("COMPLETE"));
    }
}

/// Against a real ComfyUI (no model weights needed): start one as in the
/// research notes (`python main.py --cpu --listen 127.0.0.1 --port 8188`),
/// then `COMFYUI_URL=http://127.0.0.1:8188 cargo test --test comfy real_comfyui -- --ignored`.
#[tokio::test]
#[ignore = "needs a running ComfyUI at COMFYUI_URL"]
async fn real_comfyui_runs_the_model_free_templates() {
    let url = std::env::var("COMFYUI_URL").expect("set COMFYUI_URL to a running ComfyUI");
    let (_d, ws) = workspace();
    let progress = Recorder::default();
    let r = submit::submit(
        &ws,
        &template("smoke", &url, json!({"color": 65280})),
        "smoke",
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(r.outputs.len(), 1);
    let pic = image::open(ws.root().join(&r.outputs[0].path))
        .unwrap()
        .to_rgb8();
    // EmptyImage green, inverted by ImageInvert.
    assert_eq!(pic.get_pixel(1, 1).0, [255, 0, 255]);
    let input = ws.root().join("in.png");
    common::picture(9, 64, 48).save(&input).unwrap();
    let mut req = template("invert-image", &url, json!({}));
    req.inputs = vec![input];
    let r = submit::submit(&ws, &req, "invert", &NoProgress)
        .await
        .unwrap();
    assert_eq!((r.outputs[0].width, r.outputs[0].height), (64, 48));
    // A missing checkpoint is named with what the server has.
    let err = submit::submit(
        &ws,
        &template(
            "txt2img",
            &url,
            json!({"checkpoint": "no-such-model.safetensors"}),
        ),
        "x",
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("'no-such-model.safetensors' is not installed"),
        "{err}"
    );
    let _ = Path::new(".");
}
