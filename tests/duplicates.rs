//! Issue 3 over the MCP client: find the copies in a labelled set, set them
//! aside and bring them back byte for byte, curate, and lay the set out for
//! kohya so that the audit passes it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ategnatos::dataset::dedup_bench::{SetSpec, write_labelled_set};
use common::client::text;
use serde_json::{Value, json};

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[tokio::test]
async fn duplicates_quarantine_curation_and_layout_over_mcp() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let spec = SetSpec {
        base: 10,
        with_variants: 2,
        hard_negative_families: 0,
        size: 256,
        captions: true,
        seed: 3,
    };
    write_labelled_set(&root.join("set"), &spec).unwrap();
    // The generator's ground truth lives beside the pictures; it is not a picture.
    let img = root.join("set/img");
    let before = snapshot(&img);

    let client = common::client::connect(&root).await;
    let call = |name: &'static str, a: Value| common::client::call(&client, name, a);

    let tools = client.list_all_tools().await.unwrap();
    for name in [
        "find_duplicates",
        "quarantine_files",
        "restore_quarantine",
        "curate_dataset",
        "structure_dataset",
    ] {
        assert!(tools.iter().any(|t| t.name == name), "{name} listed");
    }

    // Two originals with 5 copies each: two groups of 6.
    let r = call(
        "find_duplicates",
        json!({"path": "set/img", "wait_seconds": 120}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let s = r.structured_content.clone().unwrap();
    assert_eq!(s["status"], "done", "{s}");
    let groups = s["result"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{}", text(&r));
    for g in groups {
        assert_eq!(g["members"].as_array().unwrap().len(), 6);
        let sheet = g["contact_sheet"].as_str().unwrap();
        assert!(image::open(root.join(sheet)).is_ok(), "{sheet}");
    }
    assert!(
        r.content.iter().filter(|c| c.as_image().is_some()).count() >= 2,
        "previews in the result"
    );
    assert!(text(&r).contains("2 groups"), "{}", text(&r));
    assert_eq!(s["result"]["groups_not_shown"], 0);

    // The same search again: the sheets are reused, nothing is written.
    let sheets_dir = root.join("workspace/duplicates");
    let sheets_before = snapshot(&sheets_dir);
    assert_eq!(sheets_before.len(), 2, "one sheet per group, in one folder");
    let stamps = |dir: &Path| -> Vec<std::time::SystemTime> {
        snapshot(dir)
            .keys()
            .map(|p| std::fs::metadata(dir.join(p)).unwrap().modified().unwrap())
            .collect()
    };
    let times_before = stamps(&sheets_dir);
    let again = call(
        "find_duplicates",
        json!({"path": "set/img", "wait_seconds": 120}),
    )
    .await;
    let a = again.structured_content.clone().unwrap();
    assert_eq!(
        a["result"]["groups"], s["result"]["groups"],
        "same groups, same sheets"
    );
    assert_eq!(snapshot(&sheets_dir), sheets_before);
    assert_eq!(stamps(&sheets_dir), times_before, "no sheet rewritten");
    assert_eq!(
        again
            .content
            .iter()
            .filter(|c| c.as_image().is_some())
            .count(),
        2,
        "previews of the reused sheets"
    );
    let chosen: Vec<Value> = s["result"]["suggested_quarantine"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(chosen.len(), 10);

    // Set the copies aside (captions go along), then bring them back.
    let r = call(
        "quarantine_files",
        json!({"paths": chosen, "reason": "duplicates"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let q = r.structured_content.clone().unwrap();
    assert_eq!(
        (q["chosen"].as_u64(), q["captions"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(snapshot(&img).len(), before.len() - 20);
    let r = call(
        "find_duplicates",
        json!({"path": "set/img", "wait_seconds": 120}),
    )
    .await;
    let s = r.structured_content.clone().unwrap();
    assert_eq!(s["result"]["groups"].as_array().unwrap().len(), 0);
    assert_eq!(s["result"]["from_cache"], 10, "hashes came from the cache");

    let r = call("restore_quarantine", json!({})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(snapshot(&img), before, "byte-identical after restore");

    // A refusal moves nothing and says what to do.
    let r = call("quarantine_files", json!({"paths": ["set/img"]})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("hint:"), "{}", text(&r));
    assert_eq!(snapshot(&img), before);

    // Curation: 20 pictures down to 8 for a character, with regularisation advice.
    let r = call(
        "curate_dataset",
        json!({"path": "set/img", "target_size": 8, "training_type": "character", "wait_seconds": 120}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let c = r.structured_content.clone().unwrap();
    assert_eq!(c["result"]["subset"]["keep"].as_array().unwrap().len(), 8);
    assert_eq!(c["result"]["regularization"]["recommended"], true);
    assert!(c["result"]["variety"]["score"].as_u64().unwrap() <= 100);

    // The kohya layout, then the audit of it.
    let r = call(
        "structure_dataset",
        json!({"destination": "train/zkbench", "concepts": [{"source": "set/img", "name": "zkbench"}], "target_steps": 400, "epochs": 4}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let l = r.structured_content.clone().unwrap();
    // ceil(400 / (20 pictures × 4 epochs)) = 5
    assert_eq!(l["subsets"][0]["folder"], "5_zkbench");
    let r = call(
        "audit_dataset",
        json!({"path": "train/zkbench", "trigger_word": "zkbench", "wait_seconds": 120}),
    )
    .await;
    let a = r.structured_content.clone().unwrap();
    assert_eq!(a["result"]["summary"]["blocking"], 0, "{}", text(&r));
    assert_eq!(a["result"]["layout"]["kind"], "kohya");
    assert_eq!(snapshot(&img), before, "sources untouched");
}
