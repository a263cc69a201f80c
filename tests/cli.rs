//! The `ategnatos` command as a person runs it in a shell.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::process::Command;

fn ategnatos(root: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ategnatos"));
    cmd.arg("--root").arg(root).current_dir(root);
    cmd
}

#[test]
fn audit_prints_problems_first_and_exits_1_when_something_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::problem_zoo(&root);
    let out = ategnatos(&root)
        .args([
            "audit",
            "zoo",
            "--base-model",
            "sd15",
            "--trigger",
            common::TRIGGER,
            "--project",
            "foxes",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Dataset audit of zoo"), "{text}");
    let first_warning = text.find("warning").unwrap();
    assert!(
        text.find("MUST FIX").unwrap() < first_warning,
        "blocking problems come first:\n{text}"
    );
    assert!(text.contains("cut.jpg") && text.contains("→ "), "{text}");
    // At a terminal the advice names commands, not the MCP tools; the JSON
    // is what the MCP tool returns.
    assert!(
        text.contains("`ategnatos quarantine`") && !text.contains("quarantine_files"),
        "{text}"
    );
    let json = ategnatos(&root)
        .args(["audit", "zoo", "--json"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&json.stdout).contains("quarantine_files"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ategnatos://projects/foxes/gates/1"));
    assert!(
        root.join("grimoire/.state/projects/foxes/gates/1-dataset.json")
            .is_file()
    );
}

#[test]
fn audit_json_is_the_full_report_and_a_clean_set_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::clean_set(&root, 3);
    let out = ategnatos(&root)
        .args(["audit", "clean", "--json", "--all"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["images"], 3);
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
}

#[test]
fn a_path_outside_the_root_is_refused_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let out = ategnatos(&root).args(["audit", "/etc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("outside the workspace") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // `ategnatos audit … | head -1`: the reader closes the pipe early. Here
    // it is closed before the command starts, so the first write fails.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::clean_set(&root, 3);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ategnatos(&root)
        .args(["audit", "clean"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn caption_previews_are_saved_only_inside_the_workspace_and_outside_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::clean_set(&root, 3);
    let started = ategnatos(&root)
        .args(["project", "start", "foxes", "--type", "style"])
        .args([
            "--base-model",
            "sd15",
            "--trigger",
            "zkfoxes",
            "--dataset",
            "clean",
        ])
        .output()
        .unwrap();
    assert_eq!(started.status.code(), Some(0), "{started:?}");
    let listing = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let dataset_before = listing(&root.join("clean"));
    let elsewhere = tempfile::tempdir().unwrap();
    let preview = |out: &str| {
        ategnatos(&root)
            .args([
                "captions",
                "preview",
                "--project",
                "foxes",
                "--count",
                "2",
                "--out",
                out,
            ])
            .output()
            .unwrap()
    };

    let outside = preview(elsewhere.path().join("previews").to_str().unwrap());
    assert_eq!(outside.status.code(), Some(2));
    let said = String::from_utf8_lossy(&outside.stderr);
    assert!(
        said.contains("outside the workspace") && said.contains("hint:"),
        "{said}"
    );
    assert!(!elsewhere.path().join("previews").exists());

    let inside_dataset = preview("clean");
    assert_eq!(inside_dataset.status.code(), Some(2));
    let said = String::from_utf8_lossy(&inside_dataset.stderr);
    assert!(
        said.contains("inside the dataset") && said.contains("hint:"),
        "{said}"
    );
    assert_eq!(listing(&root.join("clean")), dataset_before);

    let saved = preview("previews");
    assert_eq!(saved.status.code(), Some(0), "{saved:?}");
    let previews = listing(&root.join("previews"));
    assert_eq!(previews.len(), 2, "{previews:?}");
    assert!(previews.iter().all(|n| n.ends_with(".preview.jpg")));
    assert_eq!(listing(&root.join("clean")), dataset_before);
}

#[test]
fn audit_for_a_started_project_checks_that_projects_rules_and_is_not_gate_1() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::clean_set(&root, 3);
    // The captions carry `zkfox`; this project's trigger is another word.
    let started = ategnatos(&root)
        .args(["project", "start", "ghost", "--type", "style"])
        .args([
            "--base-model",
            "sd15",
            "--trigger",
            "zkghost",
            "--dataset",
            "clean",
        ])
        .output()
        .unwrap();
    assert_eq!(started.status.code(), Some(0), "{started:?}");

    let audit = ategnatos(&root)
        .args(["audit", "clean", "--project", "ghost"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.status.code(), Some(1), "{text}");
    assert!(text.contains("zkghost"), "{text}");

    // A trigger word that is not the project's is refused before anything runs.
    let other = ategnatos(&root)
        .args([
            "audit",
            "clean",
            "--project",
            "ghost",
            "--trigger",
            common::TRIGGER,
        ])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(2));
    let said = String::from_utf8_lossy(&other.stderr);
    assert!(said.contains("zkghost") && said.contains("hint:"), "{said}");

    // With the captions fixed, the audit passes, but that is not Gate 1.
    for i in 0..3 {
        common::caption(
            &root.join("clean"),
            &format!("p{i}"),
            &format!("zkghost, picture {i}, ink wash"),
        );
    }
    let audit = ategnatos(&root)
        .args(["audit", "clean", "--project", "ghost"])
        .output()
        .unwrap();
    assert_eq!(audit.status.code(), Some(0), "{audit:?}");
    let status = ategnatos(&root)
        .args(["project", "status", "ghost"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(!text.contains("PASS"), "{text}");
    assert!(text.contains("only the audit was recorded"), "{text}");
}

#[test]
fn the_http_server_is_refused_on_an_address_other_computers_can_reach() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let out = ategnatos(&root)
            .args(["serve", "--http", addr])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{addr}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("other computers") && said.contains("hint: serve on this computer only"),
            "{said}"
        );
    }
}

#[test]
fn an_empty_folder_is_described_as_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    let audit = ategnatos(&root).args(["audit", "empty"]).output().unwrap();
    assert_eq!(audit.status.code(), Some(1));
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(text.contains("the folder has no pictures"), "{text}");
    assert!(!text.contains("more"), "{text}");

    let curate = ategnatos(&root).args(["curate", "empty"]).output().unwrap();
    let text = String::from_utf8_lossy(&curate.stdout);
    assert!(text.contains("no pictures"), "{text}");
    assert!(!text.contains("variety"), "{text}");

    let zero = ategnatos(&root)
        .args(["curate", "empty", "--target", "0"])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2));
    let said = String::from_utf8_lossy(&zero.stderr);
    assert!(
        said.contains("keep none") && said.contains("hint:"),
        "{said}"
    );
}

#[test]
fn a_gpu_name_that_fits_several_cards_is_refused_with_the_choices_everywhere() {
    // Issue 13: `RTX 3080` is a 10 GB and a 12 GB card; a plan must not guess which.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::clean_set(&root, 3);
    let started = ategnatos(&root)
        .args(["project", "start", "fox", "--type", "style"])
        .args(["--base-model", "sd15", "--trigger", common::TRIGGER])
        .args(["--dataset", "clean"])
        .output()
        .unwrap();
    assert_eq!(started.status.code(), Some(0), "{started:?}");
    let refused = |args: &[&str]| {
        let out = ategnatos(&root).args(args).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        said
    };
    let stored_plan = root.join("grimoire/.state/projects/fox/plan.json");

    let said = refused(&["vram", "--model", "sdxl", "--gpu", "RTX 3080"]);
    assert!(
        said.contains("`RTX 3080` comes with 10 GB or 12 GB")
            && said.contains(
                "hint: say `RTX 3080 10GB` or `RTX 3080 12GB`, or give the memory alone as `12GB`"
            ),
        "{said}"
    );
    let said = refused(&["plan", "fox", "--gpu", "NVIDIA GeForce RTX 4060 Ti"]);
    assert!(
        said.contains("comes with 8 GB or 16 GB") && said.contains("`RTX 4060 Ti 16GB`"),
        "{said}"
    );
    assert!(!stored_plan.exists(), "a refused plan is not stored");

    // Named exactly, the card is found; the plan stores a name that finds it again.
    let planned = ategnatos(&root)
        .args(["plan", "fox", "--gpu", "rtx 4060 ti 16gb"])
        .output()
        .unwrap();
    assert_eq!(planned.status.code(), Some(0), "{planned:?}");
    let plan = std::fs::read_to_string(&stored_plan).unwrap();
    assert!(plan.contains("\"RTX 4060 Ti 16GB\""), "{plan}");
    let config = ategnatos(&root).args(["config", "fox"]).output().unwrap();
    assert_eq!(config.status.code(), Some(0), "{config:?}");
    common::fake_trainer::pass_gate1(&root, "fox");
    let gate = ategnatos(&root)
        .args(["gate", "2", "--project", "fox"])
        .output()
        .unwrap();
    assert_ne!(gate.status.code(), Some(2), "{gate:?}");

    // Gate 2 and the config against another card refuse the ambiguous name the same way.
    let said = refused(&["gate", "2", "--project", "fox", "--gpu", "RTX 3060"]);
    assert!(
        said.contains("`RTX 3060` comes with 8 GB or 12 GB")
            && said.contains("hint: say `RTX 3060 8GB`"),
        "{said}"
    );
    let said = refused(&["config", "fox", "--gpu", "A100"]);
    assert!(
        said.contains("40 GB or 80 GB") && said.contains("`A100 80GB`"),
        "{said}"
    );
    // An unknown card is named as unknown, with the nearest names.
    let said = refused(&["vram", "--model", "sdxl", "--gpu", "RTX 4095"]);
    assert!(
        said.contains("`RTX 4095` is not a GPU Ategnatos knows") && said.contains("`RTX 4090`"),
        "{said}"
    );
}

#[test]
fn commands_that_only_read_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::clean_set(&root, 3);
    let before: Vec<_> = walk(&root);
    for args in [
        &["vram", "--model", "sdxl", "--gpu", "RTX 4090"][..],
        &["vram", "--model", "flux-dev", "--gpu", "24GB", "--json"],
        &["audit", "clean", "--base-model", "sd15"],
        &["project", "list"],
    ] {
        let out = ategnatos(&root).args(args).output().unwrap();
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(walk(&root), before, "{args:?} changed the folder");
    }
}

/// Every path under `dir`, sorted.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}
