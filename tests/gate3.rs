//! Gate 3 (the machine) end to end, with a fake trainer installed the way
//! the real ones are (`fixtures/fake-trainer/`): a machine without a GPU
//! fails in plain words and still reports the rest; a half-installed
//! trainer lists every missing module with one install line; a GPU machine
//! passes, and an upgraded PyTorch makes the pass stale; gates asked out of
//! order are refused with the gate to run first; a Python that is not
//! Python, or hangs, is named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use ategnatos::environment::{EnvRequest, check_environment};
use ategnatos::gates::{Gate, GateStatus};
use ategnatos::plan::training::Backend;
use ategnatos::studio::Workspace;
use common::fake_trainer::{ategnatos, install, project_through_gate_2, record, run, states};

#[test]
fn without_a_gpu_gate_3_fails_in_plain_words_and_reports_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2(&root, "kohya", 1);
    install(&root, "kohya", &[], false);

    let text = run(
        ategnatos(&root, None).args(["gate", "3", "--project", "fox"]),
        1,
    );
    assert!(text.contains("NO-GO"), "{text}");
    assert!(text.contains("no NVIDIA GPU found"), "{text}");
    // Why there is none, source by source, and what to do.
    assert!(
        text.contains("NVML skipped") && text.contains("no-such-nvidia-smi"),
        "{text}"
    );
    assert!(text.contains("rent one"), "{text}");
    let rec = record(&root, Gate::Environment);
    assert_eq!(rec.status, GateStatus::Fail);
    assert!(
        rec.findings
            .iter()
            .any(|f| f.message.contains("no NVIDIA GPU"))
    );

    // The rest is still reported: the trainer, its Python and PyTorch, the disk.
    let json = run(
        ategnatos(&root, None).args(["env", "--project", "fox", "--json"]),
        1,
    );
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["gpu"]["source"], "none", "{r}");
    assert_eq!(r["install"]["can_start"], true, "{r}");
    assert_eq!(
        r["python"]["answer"]["torch"]["version"], "2.5.1+cu124",
        "{r}"
    );
    assert!(r["disk"]["free_gib"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["models"][0]["exists"], true, "{r}");
    let md = std::fs::read_to_string(root.join("grimoire/training/fox/environment.md")).unwrap();
    assert!(md.contains("no NVIDIA GPU found"), "{md}");
}

#[test]
fn a_half_installed_trainer_names_every_missing_module_with_one_install_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2(&root, "kohya", 1);
    // What a first kohya run on a Mac failed on, one at a time.
    let missing = [
        "imagesize",
        "rich",
        "sentencepiece",
        "lion_pytorch",
        "prodigyopt",
    ];
    install(&root, "kohya", &missing, false);
    let json = run(
        ategnatos(&root, None).args(["env", "--project", "fox", "--json"]),
        1,
    );
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    let named: Vec<&str> = r["install"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["module"].as_str().unwrap())
        .collect();
    for m in missing {
        assert!(named.contains(&m), "{m} not in {named:?}");
    }
    let line = r["install"]["pip_install"].as_str().unwrap();
    assert!(line.contains("-m pip install"), "{line}");
    for package in [
        "imagesize",
        "rich",
        "sentencepiece",
        "lion-pytorch",
        "prodigyopt",
    ] {
        assert!(line.contains(package), "{package} not in `{line}`");
    }
    assert_eq!(r["install"]["can_start"], false);
    // Said once, as one finding.
    let text = run(ategnatos(&root, None).args(["env", "--project", "fox"]), 1);
    assert_eq!(
        text.matches("install them all at once").count(),
        1,
        "{text}"
    );
}

#[test]
fn a_gpu_machine_passes_and_an_upgraded_pytorch_makes_gate_3_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2(&root, "kohya", 1);
    let dir = install(&root, "kohya", &[], true);
    let smi = dir.join("fake-nvidia-smi");

    let text = run(
        ategnatos(&root, Some(&smi)).args(["gate", "3", "--project", "fox"]),
        0,
    );
    assert!(text.contains("GO") && !text.contains("NO-GO"), "{text}");
    assert!(text.contains("RTX 4090"), "{text}");
    let rec = record(&root, Gate::Environment);
    assert_eq!(rec.status, GateStatus::Pass);
    assert!(rec.fingerprint.starts_with("env-"), "{}", rec.fingerprint);
    let (now, _) = states(&root, Some(&smi));
    assert_eq!(now[..3], ["PASS", "PASS", "PASS"], "{now:?}");

    // PyTorch upgraded in the trainer's environment: Gate 3 is stale, and says why.
    let version = std::fs::read_dir(dir.join("venv/lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages/torch/version.py");
    let old = std::fs::read_to_string(&version).unwrap();
    std::fs::write(&version, old.replace("2.5.1", "2.6.0")).unwrap();
    let (now, text) = states(&root, Some(&smi));
    assert_eq!(now[..3], ["PASS", "PASS", "stale"], "{text}");
    assert!(text.contains("the machine changed"), "{text}");

    // Another machine (no GPU at all) makes it stale too.
    std::fs::write(&version, old).unwrap();
    let (now, _) = states(&root, Some(&smi));
    assert_eq!(now[2], "PASS");
    let (now, _) = states(&root, None);
    assert_eq!(now[2], "stale");
}

#[test]
fn gates_asked_out_of_order_are_refused_with_the_gate_to_run_first() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::clean_set(&root, 4);
    run(
        ategnatos(&root, None)
            .args(["project", "start", "fox", "--type", "style"])
            .args(["--base-model", "sd15", "--trigger", common::TRIGGER])
            .args(["--dataset", "clean"]),
        0,
    );
    let text = run(
        ategnatos(&root, None).args(["gate", "3", "--project", "fox"]),
        2,
    );
    assert!(
        text.contains("gate 1") && text.contains("has not run"),
        "{text}"
    );
    assert!(
        text.contains("hint: run gate 1 first (`ategnatos gate 1`)"),
        "{text}"
    );
    common::fake_trainer::pass_gate1(&root, "fox");
    let text = run(
        ategnatos(&root, None).args(["gate", "4", "--project", "fox"]),
        2,
    );
    assert!(
        text.contains("gate 2") && text.contains("has not run"),
        "{text}"
    );
    let text = run(ategnatos(&root, None).args(["dry-run", "fox"]), 2);
    assert!(text.contains("run gate 2 first"), "{text}");
    // Nothing was recorded for the gates refused.
    let ws = Workspace::open(&root).unwrap();
    for gate in [Gate::Environment, Gate::DryRun] {
        assert!(ategnatos::gates::load(&ws, "fox", gate).unwrap().is_none());
    }
}

#[cfg(unix)]
#[test]
fn a_python_that_is_not_python_and_one_that_hangs_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let ws = Workspace::open(&root).unwrap();
    let fake = |name: &str, script: &str| {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("venv/bin")).unwrap();
        std::fs::write(dir.join("train_network.py"), "import os\n").unwrap();
        let python = dir.join("venv/bin/python");
        std::fs::write(&python, script).unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    fake("talker", "#!/bin/sh\necho hello from a shell script\n");
    // Blocks until it is stopped.
    fake("sleeper", "#!/bin/sh\nexec tail -f /dev/null\n");
    let check = |dir: &str| {
        check_environment(
            &ws,
            &EnvRequest {
                project: None,
                backend: Some(Backend::Kohya),
                backend_path: Some(dir.into()),
                probe_limit: Duration::from_secs(2),
            },
        )
        .unwrap()
    };
    let r = check("talker");
    let f = r.findings.iter().find(|f| f.topic == "python").unwrap();
    assert!(
        f.message.contains("is not a working Python"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("hello from a shell script"),
        "{}",
        f.message
    );
    assert!(!r.ready);
    let r = check("sleeper");
    let f = r.findings.iter().find(|f| f.topic == "python").unwrap();
    assert!(
        f.message.contains("did not answer within 2 s"),
        "{}",
        f.message
    );
    // A folder that is not the trainer at all is said to be so.
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let r = check("empty");
    let f = r.findings.iter().find(|f| f.topic == "install").unwrap();
    assert!(f.message.contains("is not a kohya"), "{}", f.message);
}

#[tokio::test]
async fn over_mcp_check_environment_names_what_is_missing_and_gate_3_records_no_go() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2(&root, "kohya", 1);
    install(&root, "kohya", &["imagesize", "rich"], false);
    let client = common::client::connect(&root).await;
    let call = |name: &'static str, a: serde_json::Value| common::client::call(&client, name, a);

    let r = call("check_environment", serde_json::json!({"project": "fox"})).await;
    assert_eq!(r.is_error, Some(false), "{}", common::client::text(&r));
    let s = r.structured_content.clone().unwrap();
    let missing = s["result"]["install"]["missing"].to_string();
    assert!(
        missing.contains("imagesize") && missing.contains("rich"),
        "{s}"
    );
    assert!(
        common::client::text(&r).contains("cannot start"),
        "{}",
        common::client::text(&r)
    );

    // Whatever GPU this machine has, the trainer cannot start: NO-GO, recorded.
    let r = call("run_gate", serde_json::json!({"project": "fox", "gate": 3})).await;
    assert_eq!(r.is_error, Some(false), "{}", common::client::text(&r));
    let s = r.structured_content.clone().unwrap();
    assert_eq!(s["result"]["decision"], "NO-GO", "{s}");
    let gate = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "ategnatos://projects/fox/gates/3",
        ))
        .await
        .unwrap();
    let body = match &gate.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    let rec: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rec["status"], "FAIL", "{rec}");
    assert!(rec["findings"].to_string().contains("imagesize"), "{rec}");

    // The dry run waits for Gate 3, and says so.
    let r = call("dry_run", serde_json::json!({"project": "fox"})).await;
    assert_eq!(r.is_error, Some(true));
    let said = common::client::text(&r);
    assert!(said.contains("gate 3") && said.contains("failed"), "{said}");
    assert!(said.contains("run_gate 3"), "{said}");
    client.cancel().await.unwrap();
}
