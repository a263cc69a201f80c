//! Issue 4 end to end: a project from start to Gate 1 GO over the MCP
//! client, NO-GO for each blocking cause with its fix, staleness after a
//! caption changes, and captions that are never half-written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]
#![allow(deprecated)]

mod common;

use std::path::Path;

use ategnatos::dataset::captioning;
use ategnatos::dataset::intent::{ProjectRequest, start_project};
use ategnatos::gates::dataset::run_gate1;
use ategnatos::gates::status::{GateState, project_status};
use ategnatos::studio::project::TrainingType;
use ategnatos::studio::{NoProgress, Workspace};
use common::client::text;
use rmcp::model::*;
use serde_json::{Value, json};

/// `n` uncaptioned pictures in `root/name`.
fn pictures(root: &Path, name: &str, n: u64) {
    common::pictures(root, name, n, (500, 576, 640), None);
}

#[tokio::test]
async fn from_start_to_gate_1_go_over_mcp() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    pictures(&root, "set", 16);
    let client = common::client::connect(&root).await;
    let call = |name: &'static str, a: Value| common::client::call(&client, name, a);

    // A word CLIP keeps whole is refused as a trigger, with the reason and
    // made-up words to use instead.
    let r = call("start_project", json!({"name": "fox", "training_type": "character", "base_model": "sd15", "trigger_word": "sunset", "dataset": "set"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("`sunset` is a word the model already knows (one token)")
            && text(&r).contains("every sunset it has seen")
            && text(&r).contains("hint:")
            && text(&r).contains("`zsunsetqx` (z · sunset · qx)"),
        "{}",
        text(&r)
    );
    let r = call("start_project", json!({"name": "fox", "training_type": "character", "base_model": "sd15", "trigger_word": "zkfox", "dataset": "set", "description": "my fox character"})).await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    // The artist is told how the text encoder reads the trigger.
    assert!(
        text(&r).contains("CLIP reads `zkfox` as z · k · fox (3 tokens)."),
        "{}",
        text(&r)
    );
    let started = r.structured_content.clone().unwrap();
    assert_eq!(started["trigger"]["tokens"], json!(["z", "k", "fox"]));
    let intent = std::fs::read_to_string(root.join("grimoire/training/fox/intent.md")).unwrap();
    assert!(
        intent.contains("15–40") && intent.contains("zkfox"),
        "{intent}"
    );

    // Preview: varied pictures as images, with the rules for SD1.5 (tags).
    let r = call("caption_preview", json!({"project": "fox", "count": 3})).await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let images: Vec<&ImageContent> = r.content.iter().filter_map(|c| c.as_image()).collect();
    assert_eq!(images.len(), 3);
    assert!(images.iter().all(|i| i.mime_type == "image/jpeg"));
    let preview = r.structured_content.unwrap();
    assert!(preview["instructions"].as_str().unwrap().contains("tags"));
    let samples: Vec<String> = preview["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(
        samples,
        vec!["set/p00.png", "set/p01.png", "set/p02.png"],
        "chosen for variety, not the first three"
    );
    assert!(
        samples.iter().all(|p| root.join(p).is_file()),
        "paths are relative to the workspace, as every tool takes them: {samples:?}"
    );

    // Batch captioning is refused until a sample is approved.
    let all: Vec<String> = (0..16).map(|i| format!("set/p{i:02}.png")).collect();
    let rest: serde_json::Map<String, Value> = all
        .iter()
        .filter(|p| !samples.contains(p))
        .map(|p| {
            (
                p.clone(),
                json!(format!(
                    "fox, standing in {p}, red scarf, ink lines, soft shading"
                )),
            )
        })
        .collect();
    let r = call(
        "write_captions",
        json!({"project": "fox", "captions": rest}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("approve"), "{}", text(&r));
    assert!(!root.join("set/p00.txt").exists() || samples.contains(&"set/p00.png".to_string()));

    let sample_caps: serde_json::Map<String, Value> = samples
        .iter()
        .map(|p| {
            (
                p.clone(),
                json!(format!(
                    "fox, sitting by {p}, blue scarf, ink lines, soft shading"
                )),
            )
        })
        .collect();
    let r = call(
        "write_captions",
        json!({"project": "fox", "captions": sample_caps}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let first = std::fs::read_to_string(root.join(&samples[0]).with_extension("txt")).unwrap();
    assert!(
        first.starts_with("zkfox, fox, sitting"),
        "trigger first: {first}"
    );
    let r = call(
        "approve_captions",
        json!({"project": "fox", "paths": [samples[0]]}),
    )
    .await;
    assert_eq!(r.is_error, Some(false));
    // Paths relative to the dataset folder are accepted too.
    let rest: serde_json::Map<String, Value> = rest
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("set/").to_string(), v))
        .collect();
    let r = call(
        "write_captions",
        json!({"project": "fox", "captions": rest}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let written = r.structured_content.unwrap();
    assert!(
        written["written"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("set/"),
        "{written}"
    );

    // Outside the dataset is refused and nothing is written there.
    std::fs::write(root.join("elsewhere.png"), b"x").unwrap();
    for bad in ["../elsewhere.png", "/etc/passwd", "../../x.png"] {
        let r = call(
            "write_captions",
            json!({"project": "fox", "captions": {bad: "zkfox, x"}}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{bad}");
    }
    assert!(!root.join("elsewhere.txt").exists());

    // Gate 1: GO, with the report in the workflow's format.
    let r = call("run_gate", json!({"project": "fox", "gate": 1})).await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let s = r.structured_content.clone().unwrap();
    assert_eq!(s["result"]["decision"], "GO", "{}", text(&r));
    let report =
        std::fs::read_to_string(root.join("grimoire/training/fox/dataset-report.md")).unwrap();
    for section in [
        "## Summary",
        "## Diversity",
        "## Content and style balance",
        "## Quality issues",
        "## Decision: GO",
        "What it will train well",
        "Known limits",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    let r = call("project_status", json!({"project": "fox"})).await;
    assert_eq!(r.structured_content.unwrap()["gates"][0]["state"], "pass");

    // Changing one caption makes Gate 1 stale.
    let one = json!({ samples[0].clone(): "zkfox, fox, sleeping, ink lines" });
    let r = call("write_captions", json!({"project": "fox", "captions": one})).await;
    assert_eq!(r.is_error, Some(false));
    let r = call("project_status", json!({"project": "fox"})).await;
    let status = r.structured_content.unwrap();
    assert_eq!(status["gates"][0]["state"], "stale", "{status}");
    assert!(
        status["next_step"]
            .as_str()
            .unwrap()
            .contains("run gate 1 again")
    );
    // The gate's resource says so too: it is read fresh, not as stored.
    let gate = client
        .read_resource(ReadResourceRequestParams::new(
            "ategnatos://projects/fox/gates/1",
        ))
        .await
        .unwrap();
    let gate: Value = match &gate.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => serde_json::from_str(text).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(gate["status"], "STALE", "{gate}");
    assert_eq!(gate["recorded_status"], "PASS", "{gate}");
    assert!(gate["state_reason"].as_str().unwrap().contains("changed"));

    // And the old caption can be restored from history.
    let r = call(
        "restore_caption",
        json!({"project": "fox", "path": samples[0]}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(
        std::fs::read_to_string(root.join(&samples[0]).with_extension("txt")).unwrap(),
        first
    );
    client.cancel().await.unwrap();
}

fn project(root: &Path, kind: TrainingType, n: u64) -> Workspace {
    pictures(root, "set", n);
    let ws = Workspace::open(root).unwrap();
    let req = ProjectRequest {
        name: "p".into(),
        training_type: kind,
        base_model: "sd15".into(),
        description: String::new(),
        trigger_word: "zkfox".into(),
        dataset: "set".into(),
        caption_extension: "txt".into(),
    };
    start_project(&ws, &req).unwrap();
    for i in 0..n {
        common::caption(
            &root.join("set"),
            &format!("p{i:02}"),
            &format!("zkfox, fox {i}, forest, ink lines, soft shading"),
        );
    }
    ws
}

fn no_go_because(ws: &Workspace, words: &[&str]) {
    let g = run_gate1(ws, "p", &NoProgress).unwrap();
    assert_eq!(g.decision, "NO-GO");
    let report =
        std::fs::read_to_string(ws.root().join("grimoire/training/p/dataset-report.md")).unwrap();
    assert!(report.contains("### Fixes, in order"), "{report}");
    for w in words {
        assert!(
            g.blockers.iter().any(|b| b.message.contains(w)
                || b.what_to_do.contains(w)
                || b.files.iter().any(|f| f.contains(w))),
            "{w} not in {:?}",
            g.blockers
        );
        assert!(report.contains(w), "{w} not in report");
    }
    // The stored gate (the resource) names the files of every finding too.
    let record = ategnatos::gates::load(ws, "p", ategnatos::gates::Gate::Dataset)
        .unwrap()
        .unwrap();
    for w in words.iter().filter(|w| w.starts_with("set/")) {
        assert!(
            record
                .findings
                .iter()
                .any(|f| f.files.iter().any(|x| x == w)),
            "{w} not named in the gate record: {:?}",
            record.findings
        );
    }
}

/// A project started before triggers were checked against CLIP's
/// vocabulary may answer to a word the model knows: Gate 1 says so.
#[test]
fn gate_1_warns_about_a_trigger_the_model_already_knows() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let ws = project(&root, TrainingType::Object, 10);
    let record = root.join("grimoire/.state/projects/p/project.json");
    let mut p: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    p["trigger_word"] = json!("velvet");
    std::fs::write(&record, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    for i in 0..10 {
        common::caption(
            &root.join("set"),
            &format!("p{i:02}"),
            &format!("velvet, fox {i}, forest, ink lines, soft shading"),
        );
    }
    let g = run_gate1(&ws, "p", &NoProgress).unwrap();
    let warning = g
        .warnings
        .iter()
        .find(|w| w.message.contains("`velvet`"))
        .unwrap_or_else(|| panic!("no trigger warning in {:?}", g.warnings));
    assert!(
        warning
            .message
            .contains("a word the model already knows (one token)")
            && warning.what_to_do.contains("start_project"),
        "{warning:?}"
    );
    let report =
        std::fs::read_to_string(root.join("grimoire/training/p/dataset-report.md")).unwrap();
    assert!(report.contains("every velvet it has seen"), "{report}");
}

#[test]
fn each_blocking_cause_gives_no_go_with_its_fix() {
    // Baseline GO.
    let tmp = tempfile::tempdir().unwrap();
    let ws = project(
        &tmp.path().canonicalize().unwrap(),
        TrainingType::Object,
        10,
    );
    assert_eq!(run_gate1(&ws, "p", &NoProgress).unwrap().decision, "GO");

    type Breakage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Breakage, Vec<&str>)> = vec![
        (
            "uncaptioned",
            Box::new(|set: &Path| std::fs::remove_file(set.join("p03.txt")).unwrap()),
            vec!["no caption", "write a `.txt` caption", "set/p03.png"],
        ),
        (
            "unreadable",
            Box::new(|set: &Path| {
                let b = std::fs::read(set.join("p04.png")).unwrap();
                std::fs::write(set.join("p04.png"), &b[..b.len() / 3]).unwrap();
            }),
            vec!["cannot be decoded", "re-export", "set/p04.png"],
        ),
        (
            "duplicate",
            Box::new(|set: &Path| {
                std::fs::copy(set.join("p05.png"), set.join("p05-copy.png")).unwrap();
                common::caption(set, "p05-copy", "zkfox, copy, forest");
            }),
            vec!["copies of the same picture", "quarantine_files"],
        ),
        (
            "mirrored copy",
            Box::new(|set: &Path| {
                let img = image::open(set.join("p07.png")).unwrap().fliph().resize(
                    400,
                    400,
                    image::imageops::FilterType::Triangle,
                );
                common::write(
                    &set.join("p07-flipped.jpg"),
                    &common::encoded(&img, image::ImageFormat::Jpeg),
                );
                common::caption(set, "p07-flipped", "zkfox, flipped, forest");
            }),
            vec!["copies of the same picture", "p07"],
        ),
        (
            "no trigger",
            Box::new(|set: &Path| common::caption(set, "p06", "fox, forest, ink")),
            vec!["trigger word `zkfox`", "set/p06.png"],
        ),
        (
            "too few",
            Box::new(|set: &Path| {
                for i in 0..3 {
                    std::fs::rename(
                        set.join(format!("p{i:02}.png")),
                        set.join(format!("../away{i}.png")),
                    )
                    .unwrap();
                }
            }),
            vec!["needs at least 10", "add 3 more"],
        ),
    ];
    for (name, break_it, words) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let ws = project(&root, TrainingType::Object, 10);
        break_it(&root.join("set"));
        eprintln!("case: {name}");
        no_go_because(&ws, &words);
        let status = project_status(
            &ws,
            &ategnatos::dataset::intent::require_project(&ws, "p").unwrap(),
        )
        .unwrap();
        assert_eq!(status.gates[0].state, GateState::Fail, "{name}");
    }
}

#[test]
fn captions_are_old_or_new_never_partial_while_a_batch_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let ws = project(&root, TrainingType::Style, 60);
    // The artist approved one sample; now a long batch rewrites everything.
    captioning::approve_captions(&ws, "p", &["p00.png".to_string()]).unwrap();
    let old: Vec<String> = (0..60)
        .map(|i| format!("zkfox, fox {i}, forest, ink lines, soft shading"))
        .collect();
    let new_text = |i: usize| {
        format!(
            "zkfox, fox {i}, {}",
            "rewritten with a much longer caption, ".repeat(40)
        )
    };
    let batch: Vec<(String, String)> = (0..60)
        .map(|i| (format!("p{i:02}.png"), new_text(i)))
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..5 {
                captioning::write_captions(&ws, "p", &batch).unwrap();
                for (i, o) in old.iter().enumerate() {
                    captioning::write_captions(&ws, "p", &[(format!("p{i:02}.png"), o.clone())])
                        .unwrap();
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut reads = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            for (i, old) in old.iter().enumerate() {
                let Ok(text) = std::fs::read_to_string(root.join(format!("set/p{i:02}.txt")))
                else {
                    continue;
                };
                let (tidy_new, _) = ategnatos::dataset::caption_rules::normalise(
                    &new_text(i),
                    ategnatos::plan::CaptionFormat::Tags,
                    "zkfox",
                );
                assert!(
                    text == *old || text == tidy_new,
                    "p{i:02}.txt was half-written: {text:?}"
                );
                reads += 1;
            }
        }
        assert!(reads > 0);
    });
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(root.join("set"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_caption_that_links_outside_the_workspace_is_never_read() {
    // A caption file that is a link to a private file elsewhere on the
    // computer: its text must not reach a preview, a gate or a copy.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("diary.txt");
    std::fs::write(&secret, "zkfox, my private diary entry").unwrap();
    let ws = project(&root, TrainingType::Character, 16);
    std::fs::remove_file(root.join("set/p00.txt")).unwrap();
    std::os::unix::fs::symlink(&secret, root.join("set/p00.txt")).unwrap();

    let preview = captioning::caption_preview(&ws, "p", 1, &["p00.png".to_string()], 256).unwrap();
    assert_eq!(preview.items[0].path, "set/p00.png");
    assert_eq!(preview.items[0].current_caption, None);
    assert_eq!(preview.uncaptioned, 1);

    let g = run_gate1(&ws, "p", &NoProgress).unwrap();
    assert_eq!(g.decision, "NO-GO");
    let report =
        std::fs::read_to_string(root.join("grimoire/training/p/dataset-report.md")).unwrap();
    assert!(!report.contains("diary"), "{report}");
    assert!(report.contains("link"), "{report}");

    let options = ategnatos::dataset::structure::StructureOptions {
        destination: root.join("train"),
        concepts: vec![ategnatos::dataset::structure::Concept {
            source: root.join("set"),
            name: "zkfox".into(),
            repeats: Some(2),
        }],
        target_steps: 1000,
        epochs: 10,
        caption_extension: "txt".into(),
    };
    let err = ategnatos::dataset::structure::structure_dataset(&ws, &options).unwrap_err();
    assert!(
        err.to_string().contains("p00.png") && err.to_string().contains("link"),
        "{err}"
    );
    assert!(!root.join("train").exists());
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "zkfox, my private diary entry"
    );
}

#[test]
fn a_damaged_project_record_is_kept_aside_when_the_project_is_started_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let ws = project(&root, TrainingType::Object, 4);
    let record = root.join("grimoire/.state/projects/p/project.json");
    let good = std::fs::read(&record).unwrap();
    std::fs::write(&record, &good[..good.len() / 2]).unwrap();
    let damaged = std::fs::read(&record).unwrap();
    let err = ategnatos::studio::project::load(&ws, "p").unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");

    let req = ProjectRequest {
        name: "p".into(),
        training_type: TrainingType::Object,
        base_model: "sd15".into(),
        description: String::new(),
        trigger_word: "zkfox".into(),
        dataset: "set".into(),
        caption_extension: "txt".into(),
    };
    // A refused start (an ordinary word as trigger) changes nothing.
    let refused = ProjectRequest {
        trigger_word: "castle".into(),
        ..req.clone()
    };
    assert!(start_project(&ws, &refused).is_err());
    assert_eq!(std::fs::read(&record).unwrap(), damaged);

    let started = start_project(&ws, &req).unwrap();
    let kept = started.damaged_record_set_aside.clone().unwrap();
    assert_eq!(std::fs::read(root.join(&kept)).unwrap(), damaged);
    let summary = started.plain_summary();
    assert!(
        summary.contains(&kept) && summary.contains("an object LoRA"),
        "{summary}"
    );
    let loaded = ategnatos::studio::project::load(&ws, "p").unwrap().unwrap();
    assert_eq!(loaded.trigger_word, "zkfox");
}

/// Grain every pixel: the hardest picture there is for JPEG to shrink.
fn grainy(seed: u64, w: u32, h: u32) -> image::DynamicImage {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    image::DynamicImage::ImageRgb8(img)
}

#[tokio::test]
async fn a_caption_preview_of_twelve_large_grainy_pictures_stays_small() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    for i in 0..12 {
        common::write(
            &root.join(format!("big/p{i:02}.png")),
            &common::encoded(&grainy(i, 1600, 1200), image::ImageFormat::Png),
        );
        // A caption far longer than any trainer reads.
        common::caption(
            &root.join("big"),
            &format!("p{i:02}"),
            &"zkfox, grain, ".repeat(400),
        );
    }
    let client = common::client::connect(&root).await;
    let r = common::client::call(&client, "start_project", json!({"name": "big", "training_type": "style", "base_model": "sdxl", "trigger_word": "zkgrain", "dataset": "big"})).await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let r = common::client::call(
        &client,
        "caption_preview",
        json!({"project": "big", "count": 12, "max_side": 1024}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let images: Vec<&ImageContent> = r.content.iter().filter_map(|c| c.as_image()).collect();
    assert_eq!(images.len(), 12, "every picture is still shown");
    let whole = serde_json::to_string(&r).unwrap();
    assert!(
        whole.len() < 100_000,
        "the result is {} characters",
        whole.len()
    );
    // Each preview is still a picture one can judge a caption by.
    for i in &images {
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &i.data).unwrap();
        let shown = image::load_from_memory(&bytes).unwrap();
        assert!(
            shown.width().max(shown.height()) >= 128,
            "{}×{}",
            shown.width(),
            shown.height()
        );
    }
    client.cancel().await.unwrap();
}
