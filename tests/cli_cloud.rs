//! `ategnatos cloud quote|up|list|down`: the real binary against the mock
//! Vast.ai of the cloud tests on 127.0.0.1, as an artist at a terminal sees
//! it: a quote rents nothing, `up` spends nothing without the quote, the
//! offer and a price cap, a rented GPU is listed and destroyed, and no key
//! is ever printed or written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod cloud_support;

use std::path::Path;

use cloud_support as mock;
use serde_json::Value;

/// What one run of the command showed.
struct Shown {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `ategnatos --root ROOT ARGS…` with the provider keys and addresses
/// of `vast` (RunPod has no key, so it is not asked).
async fn ategnatos(root: &Path, vast: &mock::Provider, key: &str, args: &[&str]) -> Shown {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ategnatos"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("VAST_API_KEY", key)
        .env("ATEGNATOS_VAST_URL", &vast.url)
        .env_remove("RUNPOD_API_KEY")
        .env("ATEGNATOS_RUNPOD_URL", "http://127.0.0.1:9")
        .env("ATEGNATOS_CLOUD_POLL_MS", "5")
        .env("ATEGNATOS_LOG", "ategnatos=debug")
        .output()
        .await
        .unwrap();
    Shown {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn no_key(shown: &Shown, key: &str) {
    assert!(
        !shown.stdout.contains(key),
        "key on stdout: {}",
        shown.stdout
    );
    assert!(
        !shown.stderr.contains(key),
        "key on stderr: {}",
        shown.stderr
    );
}

#[tokio::test]
async fn quote_then_up_with_a_cap_then_list_then_down() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = mock::VAST_KEY;
    let mut shown = Vec::new();

    // A quote: offers and prices, nothing rented.
    let q = ategnatos(root, &vast, key, &["cloud", "quote", "--min-vram-gb", "20"]).await;
    assert_eq!(q.code, 0, "{}", q.stderr);
    assert!(q.stdout.contains("Nothing is rented yet"), "{}", q.stdout);
    assert!(q.stdout.contains("RTX 4090"), "{}", q.stdout);
    assert!(
        q.stdout.contains("ategnatos cloud up --quote-id q-"),
        "{}",
        q.stdout
    );
    // The tool's own words point at the command, not the tool.
    assert!(!q.stdout.contains("spinup_instance"), "{}", q.stdout);
    shown.push(q);
    let j = ategnatos(
        root,
        &vast,
        key,
        &["cloud", "quote", "--min-vram-gb", "20", "--json"],
    )
    .await;
    let quote: Value = serde_json::from_str(&j.stdout).unwrap();
    let quote_id = quote["quote_id"].as_str().unwrap().to_string();
    shown.push(j);
    assert_eq!(vast.with(|m| m.creates), 0);

    // Without the offer and the cap: refused with what to give, nothing made.
    let r = ategnatos(root, &vast, key, &["cloud", "up", "--quote-id", &quote_id]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--max-price-per-hour"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    shown.push(r);
    let r = ategnatos(
        root,
        &vast,
        key,
        &[
            "cloud",
            "up",
            "--offer-id",
            "4242",
            "--max-price-per-hour",
            "0.5",
        ],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ategnatos cloud quote"), "{}", r.stderr);
    shown.push(r);
    // A cap below the offer's price: refused before any money moves.
    let r = ategnatos(
        root,
        &vast,
        key,
        &[
            "cloud",
            "up",
            "--quote-id",
            &quote_id,
            "--offer-id",
            "4242",
            "--max-price-per-hour",
            "0.30",
        ],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("$0.383/h"), "{}", r.stderr);
    shown.push(r);
    assert_eq!(vast.with(|m| m.creates), 0);
    assert!(vast.with(|m| m.alive().is_empty()));

    // With the quote, the offer and a cap it fits under: rented.
    let up = ategnatos(
        root,
        &vast,
        key,
        &[
            "cloud",
            "up",
            "--quote-id",
            &quote_id,
            "--offer-id",
            "4242",
            "--max-price-per-hour",
            "0.45",
        ],
    )
    .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(up.stdout.contains("answers SSH"), "{}", up.stdout);
    assert!(
        up.stdout.contains("ategnatos cloud down i-"),
        "{}",
        up.stdout
    );
    assert_eq!(vast.with(|m| m.creates), 1);
    assert_eq!(vast.with(|m| m.alive().len()), 1);
    let id = up
        .stdout
        .split("ategnatos cloud down ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap()
        .to_string();
    shown.push(up);

    let list = ategnatos(root, &vast, key, &["cloud", "list"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("1 instance(s) may bill"),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains(&id), "{}", list.stdout);
    shown.push(list);

    let down = ategnatos(root, &vast, key, &["cloud", "down", &id]).await;
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(down.stdout.contains("Nothing bills"), "{}", down.stdout);
    assert!(vast.with(|m| m.alive().is_empty()));
    shown.push(down);
    // Again: nothing left to destroy, said plainly.
    let again = ategnatos(root, &vast, key, &["cloud", "down", &id]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("already destroyed"),
        "{}",
        again.stdout
    );
    shown.push(again);
    let list = ategnatos(root, &vast, key, &["cloud", "list"]).await;
    assert!(
        list.stdout.contains("no instance of this studio bills"),
        "{}",
        list.stdout
    );
    shown.push(list);

    // The key reached the provider, and nowhere else.
    assert!(vast.with(|m| m.auth.iter().any(|a| a.contains(key))));
    for s in &shown {
        no_key(s, key);
    }
    assert_eq!(mock::files_containing(root, key), Vec::<String>::new());
}

#[tokio::test]
async fn a_provider_that_quotes_the_key_back_or_a_wrong_key_prints_no_key() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = mock::VAST_KEY;
    let j = ategnatos(
        root,
        &vast,
        key,
        &["cloud", "quote", "--min-vram-gb", "20", "--json"],
    )
    .await;
    let quote: Value = serde_json::from_str(&j.stdout).unwrap();
    let quote_id = quote["quote_id"].as_str().unwrap();
    vast.with(|m| {
        m.faults.reject_create = true;
        m.faults.echo_key_on_reject = true;
    });
    let r = ategnatos(
        root,
        &vast,
        key,
        &[
            "cloud",
            "up",
            "--quote-id",
            quote_id,
            "--offer-id",
            "4242",
            "--max-price-per-hour",
            "0.5",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("Bearer ****"), "{}", r.stderr);
    no_key(&r, key);
    assert!(vast.with(|m| m.alive().is_empty()));

    let wrong = "vast-WRONG-key-000000";
    let r = ategnatos(
        root,
        &vast,
        wrong,
        &["cloud", "quote", "--min-vram-gb", "20"],
    )
    .await;
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    no_key(&r, wrong);
    for k in [key, wrong] {
        assert_eq!(mock::files_containing(root, k), Vec::<String>::new());
    }
}

/// The caps hold from a shell too: `cloud watch --once` destroys a GPU
/// past its time cap, and says nothing bills after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_watch_destroys_a_gpu_past_its_time_cap() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let key = mock::VAST_KEY;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let q = ategnatos(
        root,
        &vast,
        key,
        &["cloud", "quote", "--min-vram-gb", "20", "--json"],
    )
    .await;
    let quote: Value = serde_json::from_str(&q.stdout).unwrap();
    let up = ategnatos(
        root,
        &vast,
        key,
        &[
            "cloud",
            "up",
            "--quote-id",
            quote["quote_id"].as_str().unwrap(),
            "--offer-id",
            "4242",
            "--max-price-per-hour",
            "0.45",
            "--max-hours",
            "1",
            "--json",
        ],
    )
    .await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let id = serde_json::from_str::<Value>(&up.stdout).unwrap()["instance"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Young: the watch leaves it.
    let young = ategnatos(root, &vast, key, &["cloud", "watch", "--once"]).await;
    assert_eq!(young.code, 0, "{}", young.stderr);
    assert!(!young.stdout.contains("Destroyed"), "{}", young.stdout);
    assert!(
        young.stdout.contains("may still be billing"),
        "{}",
        young.stdout
    );
    assert_eq!(vast.with(|m| m.alive().len()), 1);
    // Rented two hours ago, with a one-hour cap.
    let file = root.join(format!("grimoire/.state/cloud/instances/{id}.json"));
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let created = record["created_unix"].as_u64().unwrap();
    record["created_unix"] = (created - 7_200).into();
    std::fs::write(&file, serde_json::to_string_pretty(&record).unwrap()).unwrap();
    let old = ategnatos(root, &vast, key, &["cloud", "watch", "--once"]).await;
    assert_eq!(old.code, 0, "{}", old.stderr);
    assert!(
        old.stdout
            .contains(&format!("Destroyed `{id}`: passed its time cap of 1.00 h")),
        "{}",
        old.stdout
    );
    assert!(
        old.stdout
            .contains("No rented GPU of this studio is billing"),
        "{}",
        old.stdout
    );
    assert!(vast.with(|m| m.alive().is_empty()));
    no_key(&old, key);
}
