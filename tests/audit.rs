//! The dataset audit on real files with known problems: every problem is
//! named on the right file, good files get no findings, nothing is changed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use ategnatos::dataset::audit::{AuditReport, FindingKind, Severity};
use ategnatos::dataset::layout::LayoutKind;
use ategnatos::dataset::{AuditOptions, audit_dataset};
use ategnatos::plan::catalog;
use ategnatos::studio::NoProgress;

fn audit(dir: &Path, root: &Path, options: &AuditOptions) -> AuditReport {
    audit_dataset(dir, "zoo", root, options, &NoProgress).unwrap()
}

/// A path the audit shows (relative to the workspace: every dataset here
/// is a folder at the workspace's top) as a path inside the dataset.
fn inside(path: &str) -> &str {
    path.split_once('/').map_or(path, |(_, rest)| rest)
}

fn findings_by_file(r: &AuditReport) -> BTreeMap<String, Vec<FindingKind>> {
    let mut map: BTreeMap<String, Vec<FindingKind>> = BTreeMap::new();
    for f in &r.files {
        map.entry(inside(&f.path).to_string())
            .or_default()
            .extend(f.findings.iter().map(|x| x.kind));
    }
    for o in &r.other_files {
        map.entry(inside(&o.path).to_string())
            .or_default()
            .push(o.finding.kind);
    }
    map
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    out
}

#[test]
fn every_problem_is_named_on_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = common::problem_zoo(&root);
    let before = snapshot(&dir);
    let options = AuditOptions {
        base_model: Some(catalog::lookup("sd15").unwrap()),
        trigger_word: Some(common::TRIGGER.into()),
        include_all_files: true,
        ..AuditOptions::default()
    };
    let r = audit(&dir, &root, &options);
    // Paths are relative to the workspace, so any tool takes them as they are.
    let folder = dir
        .strip_prefix(&root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for f in &r.files {
        assert!(f.path.starts_with(&format!("{folder}/")), "{}", f.path);
        assert!(root.join(&f.path).exists(), "{}", f.path);
    }
    for p in &r.problems {
        assert!(
            p.examples
                .iter()
                .all(|e| e.starts_with(&format!("{folder}/"))),
            "{:?}",
            p.examples
        );
    }
    let by_file = findings_by_file(&r);
    let has = |file: &str, kind: FindingKind| {
        assert!(
            by_file.get(file).is_some_and(|k| k.contains(&kind)),
            "{file} should have {kind:?}; got {:?}",
            by_file.get(file)
        );
    };
    use FindingKind::*;
    has("cut.jpg", Unreadable);
    has("cut.png", Unreadable);
    has("empty.png", ZeroByte);
    has("bomb.png", DecompressionBomb);
    has("print.jpg", Cmyk);
    has("grey.png", Greyscale);
    has("deep.png", SixteenBit);
    has("cutout.png", Transparency);
    has("liar.jpg", ExtensionMismatch);
    has("tiny.png", TooSmall);
    has("strip.png", ExtremeAspect);
    has("nocap.png", MissingCaption);
    has("blankcap.png", EmptyCaption);
    has("latin1.png", CaptionNotUtf8);
    has("untriggered.png", MissingTrigger);
    has("orphan.txt", OrphanCaption);
    has("notes.md", NonImageFile);
    for good in ["good-1.png", "good-2.jpg", "good-3.webp"] {
        assert_eq!(
            by_file.get(good).map(Vec::len).unwrap_or(0),
            0,
            "{good}: {:?}",
            by_file.get(good)
        );
    }

    // Details a person reads: the decoder's reason in words, real sizes and modes.
    let file = |name: &str| r.files.iter().find(|f| inside(&f.path) == name).unwrap();
    assert!(
        file("cut.jpg").findings[0].detail.contains("ends early"),
        "{:?}",
        file("cut.jpg").findings
    );
    assert!(
        file("bomb.png").findings[0]
            .detail
            .contains("100000 × 100000")
    );
    assert_eq!(file("good-3.webp").image.as_ref().unwrap().format, "webp");
    assert_eq!(file("tiny.png").short_side, Some(90));
    assert!(
        file("liar.jpg")
            .findings
            .iter()
            .any(|f| f.detail.contains("PNG"))
    );

    // Most important first: blocking problems lead, each says what to do.
    assert_eq!(r.problems[0].severity, Severity::Blocking);
    assert!(
        r.problems
            .windows(2)
            .all(|w| w[0].severity <= w[1].severity)
    );
    assert!(r.problems.iter().all(|p| !p.what_to_do.is_empty()));
    assert_eq!(r.summary.images, 18);
    assert!(r.summary.blocking >= 7);
    assert!(r.plain_summary().contains("Must fix before training"));

    // The audit never changes a file.
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn sdxl_raises_the_minimum_size_and_an_override_lowers_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = common::clean_set(&root, 3);
    let sdxl = AuditOptions {
        base_model: Some(catalog::lookup("sdxl").unwrap()),
        ..AuditOptions::default()
    };
    let r = audit(&dir, &root, &sdxl);
    assert_eq!(r.min_short_side, 1024);
    assert_eq!(
        r.problems
            .iter()
            .find(|p| p.kind == FindingKind::TooSmall)
            .map(|p| p.count),
        Some(3)
    );
    let lowered = AuditOptions {
        min_short_side: Some(512),
        ..sdxl
    };
    assert!(
        audit(&dir, &root, &lowered)
            .problems
            .iter()
            .all(|p| p.kind != FindingKind::TooSmall)
    );
}

#[test]
fn clean_set_has_no_problems_and_a_stable_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = common::clean_set(&root, 4);
    let options = AuditOptions {
        trigger_word: Some(common::TRIGGER.into()),
        ..AuditOptions::default()
    };
    let a = audit(&dir, &root, &options);
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    assert_eq!(a.summary.captioned, 4);
    assert_eq!(a.layout.kind, LayoutKind::Flat);
    assert_eq!(a.fingerprint, audit(&dir, &root, &options).fingerprint);
    assert_eq!(
        a.fingerprint,
        ategnatos::dataset::manifest::compute(&dir, &root, "txt").unwrap(),
        "the audit and the freshness check agree"
    );
    common::caption(&dir, "p0", "zkfox, changed");
    assert_ne!(
        a.fingerprint,
        audit(&dir, &root, &options).fingerprint,
        "a caption edit must change the fingerprint"
    );
}

#[test]
fn kohya_layout_is_recognised_with_repeats_and_strays() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = common::kohya_set(&root);
    let reg = root.join("reg/1_fox");
    common::write(
        &reg.join("r.png"),
        &common::encoded(&common::picture(9, 576, 576), image::ImageFormat::Png),
    );
    let options = AuditOptions {
        regularization_dir: Some(root.join("reg")),
        ..AuditOptions::default()
    };
    let r = audit(&dir, &root, &options);
    assert_eq!(r.layout.kind, LayoutKind::Mixed);
    let subsets: Vec<(u32, &str, usize)> = r
        .layout
        .subsets
        .iter()
        .map(|s| (s.repeats, s.name.as_str(), s.images))
        .collect();
    assert_eq!(subsets, vec![(10, "zkfox", 3), (4, "forest", 2)]);
    assert_eq!(r.layout.images_per_epoch, 38);
    assert!(findings_by_file(&r)["stray.png"].contains(&FindingKind::OutsideKohyaSubsets));
    let reg = r.regularization.unwrap();
    assert!(reg.subsets[0].regularization && reg.subsets[0].name == "fox");
}

#[test]
fn unreadable_entries_are_reported_and_the_audit_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = common::clean_set(&root, 2);
    std::os::unix::fs::symlink(&dir, dir.join("loop")).unwrap();
    std::os::unix::fs::symlink(dir.join("gone.png"), dir.join("dangling.png")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.join("elsewhere")).unwrap();
    // A name that is not UTF-8.
    use std::os::unix::ffi::OsStrExt;
    let odd = dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    std::fs::write(
        &odd,
        common::encoded(&common::picture(1, 600, 600), image::ImageFormat::Png),
    )
    .unwrap();
    let locked = dir.join("locked.png");
    std::fs::write(
        &locked,
        common::encoded(&common::picture(2, 600, 600), image::ImageFormat::Png),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let root_can_read_anything = std::fs::read(&locked).is_ok();

    let r = audit(&dir, &root, &AuditOptions::default());
    let by_file = findings_by_file(&r);
    assert!(by_file["loop"].contains(&FindingKind::UnreadableEntry));
    assert!(by_file["dangling.png"].contains(&FindingKind::UnreadableEntry));
    assert!(by_file["elsewhere"].contains(&FindingKind::UnreadableEntry));
    assert!(
        by_file
            .keys()
            .any(|k| k.starts_with("caf") && by_file[k].contains(&FindingKind::NonUtf8Name))
    );
    if !root_can_read_anything {
        assert!(by_file["locked.png"].contains(&FindingKind::Unreadable));
    }
    // The readable pictures were still audited.
    assert_eq!(
        r.summary.readable,
        if root_can_read_anything { 4 } else { 3 }
    );
}

#[test]
fn empty_folder_blocks_with_advice() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("nothing")).unwrap();
    let r = audit(&root.join("nothing"), &root, &AuditOptions::default());
    assert_eq!(r.problems[0].kind, FindingKind::NoImages);
    assert_eq!(r.layout.kind, LayoutKind::Empty);
}

#[test]
fn caption_checks_name_format_length_repeats_and_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = common::clean_set(&root, 5);
    common::caption(
        &dir,
        "p0",
        "zkfox, a fox sleeping under a pine tree while soft snow falls around it.",
    );
    common::caption(
        &dir,
        "p1",
        &format!("zkfox, {}", "soft watercolor washes, ".repeat(15)),
    );
    common::caption(&dir, "p2", "zkfox, fox, snow, Fox, ink wash");
    common::caption(&dir, "p3", "zkfox, fox, snow, ink wash");
    common::caption(&dir, "p4", "zkfox, fox, snow, ink wash");
    let sd15 = AuditOptions {
        base_model: Some(catalog::lookup("sd15").unwrap()),
        ..AuditOptions::default()
    };
    let by_file = findings_by_file(&audit(&dir, &root, &sd15));
    use FindingKind::*;
    assert!(by_file["p0.jpg"].contains(&CaptionFormat), "{by_file:?}");
    assert!(by_file["p1.jpg"].contains(&CaptionTooLong));
    assert!(by_file["p2.jpg"].contains(&DuplicateTags));
    assert!(
        by_file["p3.jpg"].contains(&IdenticalCaption)
            && by_file["p4.jpg"].contains(&IdenticalCaption)
    );
    assert!(!by_file["p2.jpg"].contains(&IdenticalCaption));

    // Flux wants sentences: now the tag captions are the odd ones out.
    let flux = AuditOptions {
        base_model: Some(catalog::lookup("flux-dev").unwrap()),
        ..AuditOptions::default()
    };
    let by_file = findings_by_file(&audit(&dir, &root, &flux));
    assert!(by_file["p3.jpg"].contains(&CaptionFormat));
    assert!(!by_file["p0.jpg"].contains(&CaptionFormat));
}

#[test]
fn gif_and_tiff_pictures_are_flagged_because_trainers_skip_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = root.join("mixed");
    for (name, format) in [
        ("a.gif", image::ImageFormat::Gif),
        ("b.tiff", image::ImageFormat::Tiff),
        ("c.png", image::ImageFormat::Png),
    ] {
        common::write(
            &dir.join(name),
            &common::encoded(&common::picture(7, 576, 640), format),
        );
        let stem = name.split('.').next().unwrap();
        common::caption(
            &dir,
            stem,
            &format!("{}, picture {stem}, ink wash", common::TRIGGER),
        );
    }
    let options = AuditOptions {
        base_model: Some(catalog::lookup("sd15").unwrap()),
        trigger_word: Some(common::TRIGGER.into()),
        ..AuditOptions::default()
    };
    let r = audit(&dir, &root, &options);
    let by_file = findings_by_file(&r);
    for skipped in ["a.gif", "b.tiff"] {
        assert!(
            by_file
                .get(skipped)
                .is_some_and(|k| k.contains(&FindingKind::UnsupportedFormat)),
            "{skipped}: {:?}",
            by_file.get(skipped)
        );
        let file = r.files.iter().find(|f| inside(&f.path) == skipped).unwrap();
        assert!(
            file.findings
                .iter()
                .any(|f| f.detail.contains("would not be trained on")),
            "{:?}",
            file.findings
        );
    }
    assert_eq!(by_file.get("c.png"), None);
    assert_eq!(r.summary.blocking, 0);
    assert_eq!(r.summary.readable, 3);
}

#[test]
fn the_largest_picture_is_the_one_with_most_pixels_and_both_extremes_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = root.join("set");
    // By short side the square would be "largest"; it has a third of the pixels.
    for (name, w, h) in [
        ("wide.png", 2000, 560),
        ("square.png", 600, 600),
        ("small.png", 520, 400),
    ] {
        common::write(
            &dir.join(name),
            &common::encoded(&common::picture(7, w, h), image::ImageFormat::Png),
        );
    }
    let r = audit(&dir, &root, &AuditOptions::default());
    let largest = r.summary.largest.as_ref().unwrap();
    assert_eq!(
        (largest.width, largest.height, largest.path.as_str()),
        (2000, 560, "set/wide.png")
    );
    let smallest = r.summary.smallest.as_ref().unwrap();
    assert_eq!(
        (smallest.width, smallest.height, smallest.path.as_str()),
        (520, 400, "set/small.png")
    );
}

/// The tool and the command pass the trigger word as typed; spaces around it
/// are never meant, so the audit itself ignores them (before, the tool
/// trimmed and the command did not, and flagged every caption).
#[test]
fn a_trigger_word_typed_with_spaces_finds_the_same_captions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = common::problem_zoo(&root);
    let with = |trigger: &str| {
        let options = AuditOptions {
            trigger_word: Some(trigger.into()),
            include_all_files: true,
            ..AuditOptions::default()
        };
        let r = audit(&dir, &root, &options);
        let mut missing: Vec<String> = r
            .files
            .iter()
            .filter(|f| {
                f.findings
                    .iter()
                    .any(|x| x.kind == FindingKind::MissingTrigger)
            })
            .map(|f| f.path.clone())
            .collect();
        missing.sort();
        missing
    };
    let plain = with(common::TRIGGER);
    assert!(!plain.is_empty(), "the zoo has an untriggered caption");
    assert_eq!(with(&format!("  {}\t", common::TRIGGER)), plain);
}
