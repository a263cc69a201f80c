//! A training run outlives the server that started it: launched over MCP,
//! the server goes away mid-run, a new server on the same workspace finds
//! the run RUNNING where it got to, follows it to COMPLETE, and serves it
//! as the `ategnatos://runs/...` resource. Its own test binary: the server
//! runs in this process and reads the machine from the environment, which
//! is set once, before anything else runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ategnatos::mcp::Shared;
use ategnatos::studio::Workspace;
use common::client::{call, connect_to, text};
use common::fake_trainer::{ategnatos, install, project_through_gate_2_with, run};
use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};

fn server(root: &Path) -> std::sync::Arc<Shared> {
    let shared = Shared::new(Workspace::open(root).unwrap());
    shared
        .exe
        .set(env!("CARGO_BIN_EXE_ategnatos").into())
        .unwrap();
    shared
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_on_when_the_server_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2_with(&root, "kohya", 1, &["--epochs", "2", "--repeats", "1"]);
    let dir = install(&root, "kohya", &[], true);
    let smi = dir.join("fake-nvidia-smi");
    // SAFETY: the only test of this binary sets the machine the server
    // sees before any thread of it reads the environment.
    unsafe {
        std::env::set_var("ATEGNATOS_NVML_LIBRARY", "off");
        std::env::set_var("ATEGNATOS_NVIDIA_SMI", &smi);
        for v in [
            "ATEGNATOS_KOHYA_DIR",
            "ATEGNATOS_SIMPLETUNER_DIR",
            "ATEGNATOS_AI_TOOLKIT_DIR",
            "ATEGNATOS_PYTHON",
            "VIRTUAL_ENV",
        ] {
            std::env::remove_var(v);
        }
    }
    run(
        ategnatos(&root, Some(&smi)).args(["gate", "3", "--project", "fox"]),
        0,
    );
    run(ategnatos(&root, Some(&smi)).args(["dry-run", "fox"]), 0);
    std::fs::write(dir.join("fake-trainer.json"), r#"{"hold_at_step": 4}"#).unwrap();

    let first = connect_to(server(&root)).await;
    let started = call(&first, "launch_training", json!({"project": "fox"})).await;
    assert_ne!(started.is_error, Some(true), "{}", text(&started));
    let said = text(&started);
    assert!(said.starts_with("Ready to train: 6 pictures"), "{said}");
    let launched = started.structured_content.clone().unwrap();
    let uri = launched["resource_uri"].as_str().unwrap().to_string();

    // Follow it until it holds at step 4.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = call(&first, "training_status", json!({"project": "fox"})).await;
        let v = s.structured_content.clone().unwrap();
        if v["steps_done"].as_u64() >= Some(4) {
            assert_eq!(v["state"], "running", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "it never reached step 4: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server goes away (the client closes; nothing of it is left).
    first.cancel().await.unwrap();

    // A new server finds the run where it is.
    let second = connect_to(server(&root)).await;
    let s = call(&second, "training_status", json!({"project": "fox"})).await;
    let v = s.structured_content.clone().unwrap();
    assert_eq!(v["state"], "running", "{v}");
    assert!(v["steps_done"].as_u64() >= Some(4), "{v}");
    assert!(text(&s).contains("RUNNING"), "{}", text(&s));

    // Let it finish; a waiting status call follows it to the end.
    std::fs::write(dir.join("release"), "").unwrap();
    let s = call(
        &second,
        "training_status",
        json!({"project": "fox", "wait_seconds": 60}),
    )
    .await;
    let summary = text(&s);
    assert!(summary.contains("COMPLETE"), "{summary}");
    assert!(summary.contains("step 12 of 12"), "{summary}");

    // The run is a resource.
    let read = second
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .unwrap();
    let body = match &read.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    let record: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record["state"], "complete", "{record}");
    assert!(record["final_lora"]["path"].is_string(), "{record}");
    second.cancel().await.unwrap();
}
