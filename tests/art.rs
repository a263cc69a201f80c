//! The art side: `export_asset` cuts a picture to each named spec at exact
//! sizes, strips its metadata and stays inside the workspace;
//! `save_prompt` / `find_prompts` keep prompts per model family and each
//! asset's versions across a new server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::Path;

use common::client::{call, connect, text};
use common::{encoded, picture, write};
use image::ImageFormat;
use serde_json::{Value, json};

fn structured(r: &rmcp::model::CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "{}", text(r));
    r.structured_content.clone().unwrap()
}

/// A JPEG with an EXIF block (camera and GPS would live there) after its start.
fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let plain = encoded(&picture(7, w, h), ImageFormat::Jpeg);
    let payload = b"Exif\0\0MM\0*\0\0\0\x08\0\0GPS-secret";
    let mut out = plain[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend(&plain[2..]);
    out
}

fn size_of(root: &Path, rel: &str) -> (u32, u32) {
    image::image_dimensions(root.join(rel)).unwrap()
}

#[tokio::test]
async fn every_named_spec_has_its_exact_size_and_no_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("art/fox.jpg"), &jpeg_with_exif(1600, 1000));
    assert!(image::open(root.join("art/fox.jpg")).is_ok());
    let client = connect(root).await;
    let cases = [
        (json!({"spec": "og"}), vec![(1200, 630)]),
        (
            json!({"spec": "avatar", "output_format": "png"}),
            vec![(512, 512)],
        ),
        (
            json!({"spec": "custom", "width": 300, "height": 200, "output_format": "webp"}),
            vec![(300, 200)],
        ),
        // A landscape picture turns A5 on its side: 210 × 148 mm at 150 DPI.
        (
            json!({"spec": "print", "print_size": "A5", "dpi": 150}),
            vec![(1240, 874)],
        ),
        (
            json!({"spec": "print", "print_size": "4x6in", "dpi": 300, "output_format": "png"}),
            vec![(1200, 1800)],
        ),
        (
            json!({"spec": "favicon"}),
            vec![
                (16, 16),
                (32, 32),
                (48, 48),
                (180, 180),
                (192, 192),
                (512, 512),
            ],
        ),
    ];
    for (mut args, sizes) in cases {
        args["source"] = json!("art/fox.jpg");
        let r = structured(&call(&client, "export_asset", args.clone()).await);
        let files = r["files"].as_array().unwrap();
        let got: Vec<(u32, u32)> = files
            .iter()
            .map(|f| size_of(root, f["path"].as_str().unwrap()))
            .collect();
        assert_eq!(got, sizes, "{args}");
        for f in files {
            let bytes = std::fs::read(root.join(f["path"].as_str().unwrap())).unwrap();
            assert!(
                !bytes.windows(10).any(|w| w == b"GPS-secret")
                    && !bytes.windows(4).any(|w| w == b"Exif"),
                "{} kept the metadata",
                f["path"]
            );
        }
    }
    let favicon = std::fs::read_dir(root.join("workspace/exports/fox"))
        .unwrap()
        .count();
    assert!(favicon >= 6 + 5);
    // The PNG print says its DPI (pHYs: 300 DPI is 11811 pixels per metre).
    let png = std::fs::read(root.join("workspace/exports/fox/fox-print-300dpi.png")).unwrap();
    let at = png.windows(4).position(|w| w == b"pHYs").unwrap();
    assert_eq!(&png[at + 4..at + 8], &11811u32.to_be_bytes());
}

#[tokio::test]
async fn a_small_picture_is_enlarged_by_a_resize_and_the_result_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        &root.join("small.png"),
        &encoded(&picture(3, 640, 360), ImageFormat::Png),
    );
    let client = connect(root).await;
    let r = call(
        &client,
        "export_asset",
        json!({"source": "small.png", "spec": "hero"}),
    )
    .await;
    let s = structured(&r);
    assert_eq!(
        size_of(root, s["files"][0]["path"].as_str().unwrap()),
        (1920, 1080)
    );
    assert_eq!(s["files"][0]["enlarged"], 3.0);
    let said = text(&r);
    assert!(
        said.contains("resize") && said.contains("not upscaled"),
        "{said}"
    );
    // A big enough picture is not called enlarged.
    let r = call(
        &client,
        "export_asset",
        json!({"source": "small.png", "spec": "custom", "width": 320, "height": 180}),
    )
    .await;
    assert!(!text(&r).contains("enlarged up to"), "{}", text(&r));
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused_and_nothing_is_written() {
    let outside = tempfile::tempdir().unwrap();
    write(
        &outside.path().join("x.png"),
        &encoded(&picture(1, 64, 64), ImageFormat::Png),
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        &root.join("in.png"),
        &encoded(&picture(1, 64, 64), ImageFormat::Png),
    );
    let client = connect(root).await;
    let away = outside.path().join("x.png").to_string_lossy().into_owned();
    let out_dir = outside.path().to_string_lossy().into_owned();
    for args in [
        json!({"source": away, "spec": "avatar"}),
        json!({"source": "../x.png", "spec": "avatar"}),
        json!({"source": "in.png", "spec": "avatar", "out_dir": out_dir}),
        json!({"source": "in.png", "spec": "avatar", "out_dir": "../elsewhere"}),
    ] {
        let r = call(&client, "export_asset", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(
            text(&r).contains("outside the workspace") && text(&r).contains("hint:"),
            "{}",
            text(&r)
        );
    }
    assert!(!root.join("workspace").exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    // Bad sizes say what to do.
    for args in [
        json!({"source": "in.png", "spec": "custom", "width": 100}),
        json!({"source": "in.png", "spec": "print", "print_size": "big"}),
        json!({"source": "in.png", "spec": "favicon", "output_format": "jpeg"}),
    ] {
        let r = call(&client, "export_asset", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(text(&r).contains("hint:"), "{}", text(&r));
    }
}

#[tokio::test]
async fn prompts_and_asset_versions_round_trip_across_a_new_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let client = connect(root).await;
    let first = structured(
        &call(
            &client,
            "save_prompt",
            json!({
                "family": "sdxl",
                "prompt": "ink wash heron at dawn, soft mist",
                "negative": "photo, 3d",
                "parameters": {"seed": 42, "steps": 30, "cfg": 6.5, "sampler": "dpmpp_2m"},
                "notes": "lovely mist, a bit too cold",
                "tags": ["Heron", "ink"]
            }),
        )
        .await,
    );
    assert_eq!(first["prompt"]["id"], "sdxl-1");
    call(&client, "save_prompt", json!({"family": "flux-dev", "prompt": "A heron standing in a misty river, painted in ink."})).await;
    for (i, note) in ["first try", "brighter", "more contrast"]
        .iter()
        .enumerate()
    {
        let r = structured(
            &call(
                &client,
                "save_prompt",
                json!({
                    "family": "sdxl",
                    "prompt": format!("hero banner, fox in a birch forest, variant {}", i + 1),
                    "parameters": {"seed": 100 + i, "width": 1920, "height": 1080},
                    "notes": note,
                    "project": "site",
                    "asset": "hero-banner"
                }),
            )
            .await,
        );
        assert_eq!(r["prompt"]["version"], i + 1);
    }
    client.cancel().await.unwrap();

    let client = connect(root).await;
    let r = structured(&call(&client, "find_prompts", json!({"words": "heron"})).await);
    let ids: Vec<&str> = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{r:#}");
    assert!(
        ids.contains(&"sdxl-1") && ids.contains(&"flux-1"),
        "{ids:?}"
    );
    let r = structured(
        &call(
            &client,
            "find_prompts",
            json!({"family": "sdxl", "words": "ink cold"}),
        )
        .await,
    );
    let heron = &r["prompts"][0];
    assert_eq!(heron["parameters"]["cfg"], 6.5);
    assert_eq!(heron["negative"], "photo, 3d");

    // "Go back to version 3 but warmer."
    let v3 = structured(
        &call(
            &client,
            "find_prompts",
            json!({"project": "site", "asset": "hero-banner", "version": 3}),
        )
        .await,
    );
    let v3 = &v3["versions"][0];
    assert_eq!(
        v3["prompt"],
        "hero banner, fox in a birch forest, variant 3"
    );
    assert_eq!(v3["parameters"]["seed"], 102);
    let warmer = structured(
        &call(
            &client,
            "save_prompt",
            json!({
                "family": "sdxl",
                "prompt": format!("{}, warm golden light", v3["prompt"].as_str().unwrap()),
                "parameters": v3["parameters"],
                "notes": "warmer",
                "project": "site",
                "asset": "hero-banner",
                "based_on": 3
            }),
        )
        .await,
    );
    assert_eq!(warmer["prompt"]["version"], 4);
    let all = structured(
        &call(
            &client,
            "find_prompts",
            json!({"project": "site", "asset": "hero-banner"}),
        )
        .await,
    );
    let versions: Vec<u64> = all["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3, 2, 1]);
    assert_eq!(all["versions"][0]["based_on"], 3);
    let md =
        std::fs::read_to_string(root.join("grimoire/projects/site/assets/hero-banner/versions.md"))
            .unwrap();
    assert!(md.contains("## Version 4 (from version 3)"), "{md}");
    assert!(root.join("grimoire/prompts/sdxl.md").is_file());
}

#[tokio::test]
async fn bad_prompts_are_refused_with_a_hint_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let client = connect(root).await;
    for args in [
        json!({"family": "midjourney", "prompt": "a fox"}),
        json!({"family": "sdxl", "prompt": "   "}),
        json!({"family": "sdxl", "prompt": "a fox", "asset": "hero"}),
        json!({"family": "sdxl", "prompt": "a fox", "project": "site", "asset": "hero", "based_on": 3}),
        json!({"family": "sdxl", "prompt": "a fox", "image": "../elsewhere.png"}),
    ] {
        let r = call(&client, "save_prompt", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(text(&r).contains("hint:"), "{}", text(&r));
    }
    assert!(!root.join("grimoire").exists());
    let r = call(&client, "find_prompts", json!({"family": "midjourney"})).await;
    assert!(text(&r).contains("sdxl"), "{}", text(&r));
    // A damaged library is refused, not written over.
    write(
        &root.join("grimoire/.state/prompts/sdxl.json"),
        b"{\"prompts\": [",
    );
    let r = call(
        &client,
        "save_prompt",
        json!({"family": "sdxl", "prompt": "a fox"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        std::fs::read(root.join("grimoire/.state/prompts/sdxl.json")).unwrap(),
        b"{\"prompts\": ["
    );
}
