//! The artist's eye: preferences kept through `remember_preference`, read by
//! `recall_preferences` and shown beside a caption preview; they survive a
//! new server on the same folder and a damaged record, and a file that
//! cannot be read is never written over.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use common::client::{call, connect, text};
use serde_json::{Value, json};

fn structured(r: &rmcp::model::CallToolResult) -> Value {
    r.structured_content.clone().unwrap()
}

async fn remember(root: &std::path::Path, args: Value) -> rmcp::model::CallToolResult {
    let client = connect(root).await;
    let r = call(&client, "remember_preference", args).await;
    client.cancel().await.unwrap();
    r
}

#[tokio::test]
async fn preferences_survive_a_new_server_and_their_count_rises_with_each_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let r = remember(
        root,
        json!({"text": "warm ochre light", "aspect": "colour"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    remember(
        root,
        json!({"text": "neon pink", "aspect": "colour", "stance": "never"}),
    )
    .await;
    remember(
        root,
        json!({"text": "busy backgrounds", "aspect": "composition", "stance": "avoid"}),
    )
    .await;
    // Said again, in other capitals and spacing, by a later server.
    let again = remember(
        root,
        json!({"text": "Warm  ochre light", "aspect": "colour"}),
    )
    .await;
    assert_eq!(structured(&again)["action"], "confirmed");
    assert_eq!(structured(&again)["preference"]["confirmed"], 2);

    let client = connect(root).await;
    let r = call(&client, "recall_preferences", json!({})).await;
    let prefs = structured(&r)["preferences"].as_array().unwrap().clone();
    let texts: Vec<&str> = prefs.iter().map(|p| p["text"].as_str().unwrap()).collect();
    // NEVER first, then AVOID, then the likes.
    assert_eq!(texts, ["neon pink", "busy backgrounds", "warm ochre light"]);
    assert_eq!(prefs[2]["confirmed"], 2);
    let md = std::fs::read_to_string(root.join("grimoire/eye.md")).unwrap();
    assert!(
        md.contains("- neon pink — NEVER, colour, confirmed 1×"),
        "{md}"
    );
    assert!(md.contains("## Dislikes"), "{md}");

    // A softer line replaces a hard one on the same words, counted again.
    let changed = call(
        &client,
        "remember_preference",
        json!({"text": "neon pink", "aspect": "colour", "stance": "avoid"}),
    )
    .await;
    assert_eq!(structured(&changed)["action"], "changed");
    assert_eq!(structured(&changed)["preference"]["confirmed"], 2);
    let forgot = call(
        &client,
        "remember_preference",
        json!({"text": "busy backgrounds", "aspect": "composition", "forget": true}),
    )
    .await;
    assert_eq!(structured(&forgot)["action"], "forgotten");
    let r = call(
        &client,
        "recall_preferences",
        json!({"aspect": "composition"}),
    )
    .await;
    assert!(structured(&r)["preferences"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn project_preferences_apply_only_to_their_project() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    remember(
        root,
        json!({"text": "paper grain", "aspect": "texture", "project": "ink-fox"}),
    )
    .await;
    remember(
        root,
        json!({"text": "flat lighting", "aspect": "style", "stance": "avoid"}),
    )
    .await;
    let client = connect(root).await;
    let fox = call(&client, "recall_preferences", json!({"project": "ink-fox"})).await;
    assert_eq!(structured(&fox)["preferences"].as_array().unwrap().len(), 2);
    let other = call(
        &client,
        "recall_preferences",
        json!({"project": "sea-birds"}),
    )
    .await;
    let prefs = structured(&other)["preferences"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(prefs.len(), 1);
    assert_eq!(prefs[0]["text"], "flat lighting");
}

#[tokio::test]
async fn a_damaged_record_is_recovered_from_eye_md_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    remember(
        root,
        json!({"text": "warm ochre light", "aspect": "colour"}),
    )
    .await;
    remember(
        root,
        json!({"text": "watermarks", "aspect": "subject", "stance": "never"}),
    )
    .await;
    let record = root.join("grimoire/.state/eye.json");
    // A crash of some other program, a bad sync: half the record is gone.
    let bytes = std::fs::read(&record).unwrap();
    std::fs::write(&record, &bytes[..bytes.len() / 2]).unwrap();

    let client = connect(root).await;
    let r = call(&client, "recall_preferences", json!({})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(structured(&r)["preferences"].as_array().unwrap().len(), 2);
    assert!(text(&r).contains("damaged"), "{}", text(&r));
    // Reading changed nothing.
    assert_eq!(std::fs::read(&record).unwrap(), &bytes[..bytes.len() / 2]);

    let r = call(
        &client,
        "remember_preference",
        json!({"text": "warm ochre light", "aspect": "colour"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(structured(&r)["preference"]["confirmed"], 2);
    assert_eq!(structured(&r)["total"], 2);
    let aside: Vec<String> = std::fs::read_dir(root.join("grimoire/.state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("eye.json.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let kept = std::fs::read(root.join("grimoire/.state").join(&aside[0])).unwrap();
    assert_eq!(kept, &bytes[..bytes.len() / 2]);
    let repaired: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(repaired["preferences"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn when_neither_file_reads_every_call_refuses_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    remember(
        root,
        json!({"text": "warm ochre light", "aspect": "colour"}),
    )
    .await;
    let record = root.join("grimoire/.state/eye.json");
    let md = root.join("grimoire/eye.md");
    std::fs::write(&record, b"{\"preferences\": [").unwrap();
    let mut page = std::fs::read_to_string(&md).unwrap();
    page = page.replace("confirmed 1×", "confirmed once");
    std::fs::write(&md, &page).unwrap();

    let client = connect(root).await;
    let r = call(&client, "recall_preferences", json!({})).await;
    assert_eq!(r.is_error, Some(true));
    let said = text(&r);
    assert!(said.contains("eye.md") && said.contains("hint:"), "{said}");
    let r = call(
        &client,
        "remember_preference",
        json!({"text": "teal shadows", "aspect": "colour"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(std::fs::read(&record).unwrap(), b"{\"preferences\": [");
    assert_eq!(std::fs::read_to_string(&md).unwrap(), page);
}

#[tokio::test]
async fn a_hand_edited_eye_md_is_kept_aside_before_it_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    remember(
        root,
        json!({"text": "warm ochre light", "aspect": "colour"}),
    )
    .await;
    let md = root.join("grimoire/eye.md");
    let edited = std::fs::read_to_string(&md).unwrap() + "\nmy own note\n";
    let edited = edited.replace("confirmed 1×", "confirmed 9×");
    std::fs::write(&md, &edited).unwrap();
    let r = remember(root, json!({"text": "teal", "aspect": "colour"})).await;
    assert!(text(&r).contains("kept as"), "{}", text(&r));
    let kept: Vec<_> = std::fs::read_dir(root.join("grimoire"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("eye.md.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), edited);
}

#[tokio::test]
async fn bad_preferences_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let r = remember(root, json!({"text": "   ", "aspect": "colour"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("hint:"));
    let r = remember(
        root,
        json!({"text": "pink", "aspect": "colour", "forget": true}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("`pink`"), "{}", text(&r));
    let r = remember(
        root,
        json!({"text": "x", "aspect": "colour", "project": "../up"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(!root.join("grimoire").exists());
}

#[tokio::test]
async fn a_caption_preview_shows_the_preferences_that_apply_to_its_project() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::pictures(root, "set", 6, (20, 96, 96), None);
    let client = connect(root).await;
    let r = call(
        &client,
        "start_project",
        json!({"name": "fox", "training_type": "style", "base_model": "sdxl",
               "trigger_word": common::TRIGGER, "dataset": "set"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let r = call(
        &client,
        "caption_preview",
        json!({"project": "fox", "count": 2}),
    )
    .await;
    assert_eq!(structured(&r)["artist_eye"], json!([]));
    assert!(!text(&r).contains("The artist's eye"));

    for (text_, project) in [
        ("paper grain", Some("fox")),
        ("chrome reflections", Some("sea-birds")),
        ("watermarks", None),
    ] {
        let mut args = json!({"text": text_, "aspect": "texture", "stance": "never"});
        if let Some(p) = project {
            args["project"] = json!(p);
        }
        call(&client, "remember_preference", args).await;
    }
    let r = call(
        &client,
        "caption_preview",
        json!({"project": "fox", "count": 2}),
    )
    .await;
    let eye = structured(&r)["artist_eye"].to_string();
    assert!(
        eye.contains("paper grain") && eye.contains("watermarks"),
        "{eye}"
    );
    assert!(!eye.contains("chrome"), "{eye}");
    assert!(text(&r).contains("The artist's eye: NEVER"), "{}", text(&r));

    // Many preferences: the preview shows a few and says how many more.
    for i in 0..20 {
        call(
            &client,
            "remember_preference",
            json!({"text": format!("colour idea {i}"), "aspect": "colour"}),
        )
        .await;
    }
    let r = call(
        &client,
        "caption_preview",
        json!({"project": "fox", "count": 2}),
    )
    .await;
    let eye = structured(&r)["artist_eye"].as_array().unwrap().clone();
    assert_eq!(eye.len(), ategnatos::art::eye::SHOWN_WITH_WORK + 1);
    assert!(
        eye.last().unwrap().as_str().unwrap().contains("14 more"),
        "{eye:?}"
    );
}
