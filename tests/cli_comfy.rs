//! `ategnatos comfy submit` and `ategnatos eval`: the real binary against
//! the mock ComfyUI of the comfy tests on 127.0.0.1, as an artist at a
//! terminal sees it: the output files printed and written, the grid's
//! contact sheet with each cell where it belongs, refusals with their hint
//! and nothing half-written, ComfyUI down said plainly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

#[path = "comfy/mock.rs"]
mod mock;

use std::path::{Path, PathBuf};

use ategnatos::comfy::{eval, sheet};
use ategnatos::studio::Workspace;
use ategnatos::studio::project::{self, TrainingType};
use mock::Mode;
use serde_json::json;

struct Shown {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `ategnatos --root ROOT ARGS…` from inside ROOT (paths given
/// relative, as at a terminal).
async fn ategnatos(root: &Path, args: &[&str]) -> Shown {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ategnatos"))
        .current_dir(root)
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("COMFYUI_URL")
        .output()
        .await
        .unwrap();
    Shown {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file under `workspace/outputs/`.
fn outputs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.join("workspace/outputs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// The lines of `stdout` that name files.
fn printed_files(stdout: &str) -> Vec<PathBuf> {
    stdout
        .lines()
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.is_absolute() && p.is_file())
        .collect()
}

#[tokio::test]
async fn a_template_renders_and_the_output_files_are_printed() {
    let comfy = mock::start(Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let r = ategnatos(
        root,
        &[
            "comfy",
            "submit",
            "txt2img",
            "--param",
            "prompt=a red fox",
            "-p",
            "seed=7",
            "-p",
            "steps=3",
            "--server",
            &comfy.url,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("rendered `txt2img`: 1 picture"),
        "{}",
        r.stdout
    );
    let files = printed_files(&r.stdout);
    assert_eq!(files.len(), 1, "{}", r.stdout);
    assert!(files[0].starts_with(root.join("workspace/outputs")));
    // The parameters reached the graph with their types: text, numbers.
    let sent = comfy.with(|i| i.prompts[0]["prompt"].clone());
    assert_eq!(sent["6"]["inputs"]["text"], "a red fox");
    assert_eq!(sent["3"]["inputs"]["seed"], 7);
    assert_eq!(sent["3"]["inputs"]["steps"], 3);
    // The printed file is the picture of that graph.
    let picture = image::open(&files[0]).unwrap().to_rgb8();
    assert_eq!(picture.get_pixel(10, 10).0, mock::graph_colour(&sent));
}

#[tokio::test]
async fn an_input_picture_is_uploaded_and_a_saved_workflow_runs_by_name() {
    let comfy = mock::start(Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("in")).unwrap();
    image::RgbImage::from_pixel(80, 60, image::Rgb([200, 30, 90]))
        .save(root.join("in/cat.png"))
        .unwrap();
    // The artist's own workflow, exported from ComfyUI in the API format.
    let graph = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mine"}}
    });
    std::fs::write(root.join("in/invert.json"), graph.to_string()).unwrap();
    let r = ategnatos(
        root,
        &[
            "comfy",
            "submit",
            "in/invert.json",
            "--input",
            "in/cat.png",
            "--save-as",
            "invert-mine",
            "--server",
            &comfy.url,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        comfy.with(|i| i.prompts[0]["prompt"]["1"]["inputs"]["image"].clone()),
        "cat.png"
    );
    assert_eq!(
        comfy.with(|i| i.uploads.get("cat.png").cloned()),
        Some(std::fs::read(root.join("in/cat.png")).unwrap())
    );
    assert!(
        r.stdout
            .contains("The workflow is kept as grimoire/workflows/invert-mine.json"),
        "{}",
        r.stdout
    );
    assert_eq!(printed_files(&r.stdout).len(), 1, "{}", r.stdout);
    let r = ategnatos(
        root,
        &[
            "comfy",
            "submit",
            "invert-mine",
            "-i",
            "in/cat.png",
            "--server",
            &comfy.url,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(comfy.with(|i| i.prompts.len()), 2);
}

#[tokio::test]
async fn refusals_say_what_to_do_and_write_nothing() {
    let comfy = mock::start(Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // The editor's format, saved from ComfyUI's menu: refused with how to export.
    std::fs::write(
        root.join("mine.json"),
        json!({"nodes": [], "links": []}).to_string(),
    )
    .unwrap();
    let r = ategnatos(
        root,
        &["comfy", "submit", "mine.json", "--server", &comfy.url],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("Export (API)"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);

    // A checkpoint the server lacks: named, with what it has.
    let r = ategnatos(
        root,
        &[
            "comfy",
            "submit",
            "lora-test",
            "-p",
            "checkpoint=nope.safetensors",
            "-p",
            "lora=ghost.safetensors",
            "--server",
            &comfy.url,
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("checkpoint 'nope.safetensors' is not installed in this ComfyUI; it has: sd_xl_base_1.0.safetensors"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: install the missing file"),
        "{}",
        r.stderr
    );
    // The tool's name in a hint is the command here.
    assert!(!r.stderr.contains("comfyui_submit"), "{}", r.stderr);

    // A parameter without a value.
    let r = ategnatos(
        root,
        &[
            "comfy", "submit", "txt2img", "-p", "seed", "--server", &comfy.url,
        ],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`seed` is not a parameter"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);

    // A picture outside the workspace is not uploaded.
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("x.png");
    image::RgbImage::new(8, 8).save(&outside).unwrap();
    let r = ategnatos(
        root,
        &[
            "comfy",
            "submit",
            "invert-image",
            "--input",
            outside.to_str().unwrap(),
            "--server",
            &comfy.url,
        ],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);

    assert!(comfy.with(|i| i.prompts.is_empty() && i.uploads.is_empty()));
    assert_eq!(outputs(root), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn comfyui_down_saves_the_workflow_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let url = mock::dead_url();
    let r = ategnatos(
        root,
        &[
            "comfy",
            "submit",
            "txt2img",
            "-p",
            "prompt=a lighthouse",
            "--server",
            &url,
        ],
    )
    .await;
    // Nothing rendered: not a success for a script.
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("ComfyUI is not answering at {url}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("ategnatos comfy submit"), "{}", r.stdout);
    let saved = outputs(root);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(saved[0].ends_with("workflow.json"));

    // The saved file renders once ComfyUI runs.
    let comfy = mock::start(Mode::Normal).await;
    let relative = saved[0]
        .strip_prefix(root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let r = ategnatos(
        root,
        &["comfy", "submit", &relative, "--server", &comfy.url],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        comfy.with(|i| i.prompts[0]["prompt"]["6"]["inputs"]["text"].clone()),
        "a lighthouse"
    );
    assert_eq!(printed_files(&r.stdout).len(), 1, "{}", r.stdout);
}

/// A project with a trained LoRA in its run folder.
fn project_with_lora(root: &Path) {
    let ws = Workspace::open(root).unwrap();
    let p = project::new_project(
        "ink-fox",
        TrainingType::Style,
        "sdxl",
        "ink foxes",
        "zkfox",
        "data",
        "txt",
    );
    project::save(&ws, &p, "# intent\n").unwrap();
    let lora = ws
        .work_dir()
        .join("outputs/ink-fox/ink-fox-20261122-120000/ink-fox.safetensors");
    std::fs::create_dir_all(lora.parent().unwrap()).unwrap();
    std::fs::write(&lora, b"fake lora weights").unwrap();
}

#[tokio::test]
async fn eval_draws_the_weight_grid_on_one_contact_sheet() {
    let comfy = mock::start(Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project_with_lora(root);
    let comfyui = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(comfyui.path().join("models/loras")).unwrap();
    comfy.with(|i| i.loras_dir = Some(comfyui.path().join("models/loras")));

    // Without ComfyUI's folder: told which file to put where, nothing rendered.
    let r = ategnatos(
        root,
        &[
            "eval",
            "ink-fox",
            "--weights",
            "0.5,1.0",
            "--server",
            &comfy.url,
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("LoRA 'ink-fox.safetensors' is not installed in this ComfyUI"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("or give `--comfyui-dir`"), "{}", r.stderr);
    assert!(comfy.with(|i| i.prompts.is_empty()));

    let r = ategnatos(
        root,
        &[
            "eval",
            "ink-fox",
            "--weights",
            "0.5,1.0",
            "--prompt",
            "a heron",
            "--prompt",
            "a boat at dusk",
            "--seed",
            "1234",
            "--steps",
            "1",
            "--checkpoint",
            "sd_xl_base_1.0.safetensors",
            "--server",
            &comfy.url,
            "--comfyui-dir",
            comfyui.path().to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Rendered 4 cells"), "{}", r.stdout);
    // The LoRA went into ComfyUI's folder.
    assert_eq!(
        std::fs::read(comfyui.path().join("models/loras/ink-fox.safetensors")).unwrap(),
        b"fake lora weights"
    );
    let sheet_path = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Contact sheet: "))
        .map(PathBuf::from)
        .unwrap();
    let verdict = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Verdict: "))
        .map(PathBuf::from)
        .unwrap();
    assert!(
        std::fs::read_to_string(&verdict)
            .unwrap()
            .contains("## Verdict")
    );
    // Each cell of the sheet is the picture of its prompt and weight, seed fixed.
    let sent = comfy.with(|i| i.prompts.clone());
    assert_eq!(sent.len(), 4);
    assert!(
        sent.iter()
            .all(|p| p["prompt"]["3"]["inputs"]["seed"] == 1234)
    );
    let checkpoint = "sd_xl_base_1.0.safetensors";
    let prompts = ["a heron", "a boat at dusk"];
    let weights = [0.5_f32, 1.0];
    let img = image::open(&sheet_path).unwrap().to_rgb8();
    let block = sheet::Block {
        title: format!("{checkpoint} + ink-fox.safetensors, seed 1234"),
        rows: prompts.iter().map(|p| p.to_string()).collect(),
        columns: weights.iter().map(|w| format!("{w:.2}")).collect(),
        cells: Vec::new(),
    };
    let lay = sheet::layout("ink-fox: LoRA weight grid", &[block], eval::SHEET_CELL);
    assert_eq!((img.width(), img.height()), (lay.width, lay.height));
    for (pi, prompt) in prompts.iter().enumerate() {
        for (wi, w) in weights.iter().enumerate() {
            let (x, y) = lay.cell_origin(0, pi, wi).unwrap();
            let centre = img
                .get_pixel(x + eval::SHEET_CELL / 2, y + eval::SHEET_CELL / 2)
                .0;
            let text = sent
                .iter()
                .map(|p| {
                    p["prompt"]["6"]["inputs"]["text"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .find(|t| t.contains(prompt))
                .unwrap();
            assert_eq!(
                centre,
                mock::colour(&text, f64::from(*w), checkpoint),
                "{prompt} / {w}"
            );
        }
    }
}
