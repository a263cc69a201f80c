//! The studio's knowledge as a client sees it: every guide has its five
//! sections and is served as `ategnatos://guides/{topic}`; every skill has
//! valid front matter; every tool a guide, skill or prompt names is in the
//! server's tools/list; and each conversation prompt renders with the real
//! state of a project made at run time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::client::{Client, call, connect};
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::{Value, json};

const SECTIONS: [&str; 5] = [
    "In plain words",
    "What you need to know",
    "Why it matters",
    "Details",
    "Sources",
];

/// Backticked snake_case words in the knowledge files that are not tools or
/// prompts: trainer settings, Pony's tags, result fields. Any other such word
/// must be a tool the server lists.
const NOT_TOOLS: &[&str] = &[
    "fp8_base",
    "job_id",
    "rating_safe",
    "score_4",
    "score_5",
    "score_6",
    "score_7_up",
    "score_8_up",
    "score_9",
    "source_anime",
];

/// The topics issue 19 lists, each with the guide that covers it.
const TOPICS: &[(&str, &str)] = &[
    ("training concepts", "training-basics"),
    ("dataset sizes by type", "dataset-size"),
    ("the content/style problem", "content-and-style"),
    ("captioning method and formats", "captions"),
    ("curation", "curation"),
    ("every parameter", "parameters"),
    ("optimizers", "optimizers"),
    ("presets", "presets"),
    ("backends", "backends"),
    ("CUDA/PyTorch compatibility", "cuda-pytorch"),
    ("VRAM", "vram"),
    ("preflight checklist", "preflight"),
    ("evaluation", "evaluation"),
    ("LoRA strength", "lora-strength"),
    ("failure modes", "failure-modes"),
    ("GPU providers and their pricing", "gpu-providers"),
    ("prompt syntax per model family", "prompt-syntax"),
    ("weighting", "prompt-weighting"),
    ("negative prompts", "negative-prompts"),
    ("asset specs", "asset-specs"),
    ("feedback map", "feedback-map"),
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The markdown files directly in `dir` (or `dir/*/SKILL.md` for skills).
fn markdown_in(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            if p.is_dir() {
                Some(p.join("SKILL.md"))
            } else {
                (p.extension().is_some_and(|e| e == "md")).then_some(p)
            }
        })
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `key: value` lines of a `---` front matter, and the text after it.
fn front_matter(text: &str) -> Option<(Vec<(String, String)>, String)> {
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    let fields = rest[..end]
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((fields, rest[end + 5..].to_string()))
}

/// Words inside inline code spans that look like tool names (snake_case),
/// outside fenced code blocks.
fn tool_like_words(text: &str) -> BTreeSet<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| {
            span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|w| {
            let parts: Vec<&str> = w.split('_').collect();
            parts.len() > 1
                && parts[0].starts_with(|c: char| c.is_ascii_lowercase())
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                })
        })
        .collect()
}

/// The names in `text` that are neither a known tool or prompt nor listed
/// in [`NOT_TOOLS`].
fn unknown_tools(text: &str, known: &BTreeSet<String>) -> Vec<String> {
    tool_like_words(text)
        .into_iter()
        .filter(|w| !known.contains(w) && !NOT_TOOLS.contains(&w.as_str()))
        .collect()
}

#[test]
fn the_tool_name_check_catches_a_tool_that_does_not_exist() {
    let known: BTreeSet<String> = ["run_gate".to_string()].into();
    let text =
        "Call `run_gate` then `remember_preference`.\n```\nnot_checked_here\n```\n`score_9, zkfox`";
    assert_eq!(unknown_tools(text, &known), vec!["remember_preference"]);
}

#[test]
fn every_guide_has_a_summary_a_title_and_the_five_sections_in_order() {
    let guides = markdown_in("guides");
    assert!(!guides.is_empty());
    for path in &guides {
        let name = path.display();
        let (fields, body) =
            front_matter(&read(path)).unwrap_or_else(|| panic!("{name}: no front matter"));
        let summary = fields.iter().find(|(k, _)| k == "summary").map(|(_, v)| v);
        assert!(summary.is_some_and(|s| s.len() > 20), "{name}: summary");
        assert!(body.starts_with("# "), "{name}: title");
        let sections: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("## ")).collect();
        assert_eq!(sections, SECTIONS, "{name}");
        let sources = body.split("## Sources").nth(1).unwrap();
        assert!(
            sources.lines().filter(|l| l.contains("https://")).count() >= 2,
            "{name}: Sources should name at least two public sources"
        );
    }
}

#[test]
fn every_topic_of_the_issue_has_a_guide() {
    for (topic, guide) in TOPICS {
        assert!(
            repo(&format!("guides/{guide}.md")).is_file(),
            "no guide for {topic}"
        );
    }
}

#[test]
fn every_skill_has_valid_front_matter() {
    let skills = markdown_in("skills");
    for wanted in ["train", "studio", "art", "eye"] {
        assert!(
            skills
                .iter()
                .any(|p| p.ends_with(format!("{wanted}/SKILL.md"))),
            "skill {wanted}"
        );
    }
    for path in &skills {
        let folder = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap();
        let (fields, body) = front_matter(&read(path))
            .unwrap_or_else(|| panic!("{}: no front matter", path.display()));
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let name = get("name").unwrap_or_else(|| panic!("{folder}: no name"));
        assert_eq!(name, folder, "the name must match its folder");
        assert!(
            name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}: lower case letters, digits and hyphens, at most 64"
        );
        let description = get("description").unwrap_or_else(|| panic!("{name}: no description"));
        assert!(
            !description.is_empty() && description.chars().count() <= 1024,
            "{name}: description of {} characters",
            description.chars().count()
        );
        assert!(
            !description.contains('<') && !description.contains('>'),
            "{name}: no markup in the description"
        );
        assert!(
            body.trim_start().starts_with("# "),
            "{name}: a title after the front matter"
        );
    }
}

/// Every name the server knows: its tools and its prompts.
async fn known_names(client: &Client) -> BTreeSet<String> {
    let tools = client.list_all_tools().await.unwrap();
    let prompts = client.list_all_prompts().await.unwrap();
    tools
        .iter()
        .map(|t| t.name.to_string())
        .chain(prompts.iter().map(|p| p.name.clone()))
        .collect()
}

#[tokio::test]
async fn every_tool_a_guide_skill_or_prompt_names_is_in_tools_list() {
    let tmp = tempfile::tempdir().unwrap();
    let client = connect(&tmp.path().canonicalize().unwrap()).await;
    let known = known_names(&client).await;
    assert!(known.contains("run_gate") && known.contains("caption_review"));
    let mut files = markdown_in("guides");
    files.extend(markdown_in("skills"));
    files.extend(markdown_in("prompts"));
    let mut named = 0;
    for path in &files {
        let text = read(path);
        named += tool_like_words(&text)
            .iter()
            .filter(|w| known.contains(*w))
            .count();
        let unknown = unknown_tools(&text, &known);
        assert!(
            unknown.is_empty(),
            "{} names {unknown:?}, which tools/list does not have (a trainer setting or a tag goes into NOT_TOOLS)",
            path.display()
        );
    }
    assert!(named > 50, "the knowledge names only {named} tools");
    client.cancel().await.unwrap();
}

fn text_of(contents: &ResourceContents) -> &str {
    match contents {
        ResourceContents::TextResourceContents { text, .. } => text,
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test]
async fn guides_are_listed_and_read_as_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let client = connect(&tmp.path().canonicalize().unwrap()).await;
    let listed = client.list_all_resources().await.unwrap();
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "ategnatos://guides/{topic}")
    );
    for path in markdown_in("guides") {
        let topic = path.file_stem().unwrap().to_str().unwrap();
        let uri = format!("ategnatos://guides/{topic}");
        let entry = listed
            .iter()
            .find(|r| r.uri == uri)
            .unwrap_or_else(|| panic!("{uri} is not listed"));
        assert_eq!(entry.mime_type.as_deref(), Some("text/markdown"));
        assert!(entry.description.as_ref().is_some_and(|d| !d.is_empty()));
        let read = client
            .read_resource(ReadResourceRequestParams::new(uri.clone()))
            .await
            .unwrap();
        let text = text_of(&read.contents[0]);
        // The reader gets the guide itself, not its front matter.
        let (_, body) = front_matter(&self::read(&path)).unwrap();
        assert_eq!(text, body, "{uri}");
    }
    let err = client
        .read_resource(ReadResourceRequestParams::new("ategnatos://guides/cooking"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`cooking`") && err.contains("failure-modes"),
        "{err}"
    );
    client.cancel().await.unwrap();
}

/// A project `foxes` at run time: six captioned pictures, one sample caption
/// approved, gate 1 run, a plan for an RTX 4090, a failed run and an
/// evaluation on record.
async fn fixture_project(client: &Client, root: &Path) {
    common::clean_set(root, 6);
    let r = call(
        client,
        "start_project",
        json!({ "name": "foxes", "training_type": "style", "base_model": "sd15",
                "trigger_word": common::TRIGGER, "dataset": "clean",
                "description": "my ink-wash foxes" }),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", common::client::text(&r));
    let r = call(
        client,
        "caption_preview",
        json!({ "project": "foxes", "count": 2 }),
    )
    .await;
    let preview = r.structured_content.unwrap();
    let sample = preview["items"][0]["path"].as_str().unwrap().to_string();
    let r = call(
        client,
        "approve_captions",
        json!({ "project": "foxes", "paths": [sample] }),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", common::client::text(&r));
    call(
        client,
        "run_gate",
        json!({ "project": "foxes", "gate": 1, "wait_seconds": 120 }),
    )
    .await;
    let r = call(
        client,
        "plan_training",
        json!({ "project": "foxes", "gpu": "RTX 4090" }),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", common::client::text(&r));

    let project_dir = root.join("grimoire/training/foxes");
    let run = json!({
        "id": "20261207-010000", "project": "foxes", "backend": "kohya", "state": "failed",
        "started_at": "2026-12-07T01:00:00Z", "ended_at": "2026-12-07T01:20:00Z",
        "command_line": "accelerate launch train_network.py", "working_dir": "workspace",
        "log_file": "grimoire/training/foxes/runs/20261207-010000/train.log",
        "steps_done": 412, "total_steps": 900, "first_loss": 0.142, "last_loss": 0.031,
        "failure": "the loss became NaN at step 413",
        "what_to_do": "train in bf16 or lower the learning rate",
        "tail": ["steps:  46%| 412/900 [20:01<23:40, avr_loss=0.031]", "avr_loss=nan"]
    });
    common::write(
        &project_dir.join("runs/20261207-010000/run.json"),
        serde_json::to_string(&run).unwrap().as_bytes(),
    );
    common::write(
        &project_dir.join("eval.md"),
        b"# Evaluation: foxes\n\nVerdict: the fox shows up in the landscape row at 0.7.\n",
    );
}

async fn prompt_text(client: &Client, name: &str, args: Value) -> String {
    let p = client
        .get_prompt(
            GetPromptRequestParams::new(name).with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    p.messages[0]
        .content
        .as_text()
        .expect("text prompt")
        .text
        .clone()
}

#[tokio::test]
async fn each_conversation_prompt_renders_the_projects_real_state() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let client = connect(&root).await;
    fixture_project(&client, &root).await;
    let known = known_names(&client).await;

    let prompts = client.list_all_prompts().await.unwrap();
    for name in [
        "caption_review",
        "plan_walkthrough",
        "evaluation_review",
        "failure_diagnosis",
    ] {
        let p = prompts
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("prompt {name}"));
        let args = p.arguments.as_ref().unwrap();
        assert!(
            args.iter()
                .any(|a| a.name == "project" && a.required == Some(true)),
            "{name} takes the project"
        );
    }

    let ws = ategnatos::studio::Workspace::open(&root).unwrap();
    let plan = ategnatos::plan::training::load_plan(&ws, "foxes")
        .unwrap()
        .unwrap();
    let state = ategnatos::dataset::captioning::load_state(&ws, "foxes").unwrap();
    let approved = &state.approved[0];

    let project = json!({ "project": "foxes" });
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        (
            "train",
            project.clone(),
            vec![
                "Gate 1: dataset — ".into(),
                "`clean`: 6 picture(s), 6 with a `.txt` caption".into(),
            ],
        ),
        (
            "intent_interview",
            project.clone(),
            vec!["my ink-wash foxes".into(), "a style".into()],
        ),
        (
            "caption_review",
            project.clone(),
            vec![
                format!("`{}`: {}", approved.path, approved.caption),
                "Stable Diffusion 1.5".into(),
                "### Gate 1 record".into(),
            ],
        ),
        (
            "plan_walkthrough",
            project.clone(),
            vec![
                format!("**steps**: {}", plan.total_steps()),
                format!("**rank**: {}", plan.rank),
                "(sized for ".into(),
            ],
        ),
        (
            "evaluation_review",
            project.clone(),
            vec![
                "the fox shows up in the landscape row at 0.7".into(),
                "Run 20261207-010000".into(),
            ],
        ),
        (
            "failure_diagnosis",
            json!({ "project": "foxes", "symptoms": "it copies my pictures" }),
            vec![
                "it copies my pictures".into(),
                "the loss became NaN at step 413".into(),
                "avr_loss=nan".into(),
                format!("{} repeats", plan.repeats),
            ],
        ),
    ];
    for (name, args, wanted) in cases {
        let text = prompt_text(&client, name, args).await;
        assert!(!text.contains("{{"), "{name} left a placeholder:\n{text}");
        assert!(text.contains("foxes"), "{name}");
        for w in wanted {
            assert!(text.contains(&w), "{name} should say {w:?}:\n{text}");
        }
        // The instructions (the prompt's own text, before the state) name only real tools.
        let instructions = text.split("\n## ").next().unwrap();
        let unknown = unknown_tools(instructions, &known);
        assert!(unknown.is_empty(), "{name} names {unknown:?}");
    }

    // Before a project exists, the interview says so and counts the pictures.
    let text = prompt_text(
        &client,
        "intent_interview",
        json!({ "project": "wolves", "dataset": "clean" }),
    )
    .await;
    assert!(text.contains("no project `wolves` yet"), "{text}");
    assert!(text.contains("`clean` holds 6 picture(s)"), "{text}");

    // A later phase for a project that does not exist is refused, naming the ones there are.
    let err = client
        .get_prompt(
            GetPromptRequestParams::new("plan_walkthrough")
                .with_arguments(json!({ "project": "wolves" }).as_object().unwrap().clone()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`wolves`") && err.contains("foxes"), "{err}");
    client.cancel().await.unwrap();
}

#[test]
fn the_desktop_bundle_starts_the_server_on_the_folder_the_artist_picks() {
    let manifest: Value = serde_json::from_str(&read(&repo("mcpb/manifest.json"))).unwrap();
    assert_eq!(manifest["manifest_version"], "0.3");
    assert_eq!(manifest["name"], "ategnatos");
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    let server = &manifest["server"];
    assert_eq!(server["type"], "binary");
    assert_eq!(server["entry_point"], "server/ategnatos");
    let config = &server["mcp_config"];
    assert_eq!(config["command"], "${__dirname}/server/ategnatos");
    assert_eq!(
        config["args"],
        json!(["--root", "${user_config.studio}", "serve"])
    );
    let studio = &manifest["user_config"]["studio"];
    assert_eq!(studio["type"], "directory");
    assert_eq!(studio["required"], true);
    // The environment it sets is the one the server reads, and every value
    // comes from a setting the bundle asks for.
    let env = config["env"].as_object().unwrap();
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut read_by_server = vec![
        ategnatos::cloud::VAST_KEY_VAR,
        ategnatos::cloud::RUNPOD_KEY_VAR,
        ategnatos::comfy::settings::ENV_URL,
    ];
    read_by_server.sort_unstable();
    assert_eq!(names, read_by_server);
    for value in env.values() {
        let key = value
            .as_str()
            .unwrap()
            .strip_prefix("${user_config.")
            .and_then(|k| k.strip_suffix('}'))
            .unwrap();
        assert!(manifest["user_config"][key].is_object(), "{key}");
    }
    for key in ["vast_api_key", "runpod_api_key"] {
        assert_eq!(manifest["user_config"][key]["sensitive"], true, "{key}");
    }
}

#[test]
fn every_guide_a_skill_prompt_or_guide_points_to_exists() {
    let mut files = markdown_in("guides");
    files.extend(markdown_in("skills"));
    files.extend(markdown_in("prompts"));
    let mut pointers = 0;
    for path in &files {
        let text = read(path);
        for (at, _) in text.match_indices("ategnatos://guides/") {
            let topic: String = text[at + "ategnatos://guides/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            if topic.is_empty() {
                continue; // the template `ategnatos://guides/{topic}`
            }
            pointers += 1;
            assert!(
                repo(&format!("guides/{topic}.md")).is_file(),
                "{} points to the guide `{topic}`, which does not exist",
                path.display()
            );
        }
    }
    assert!(pointers > 20, "only {pointers} pointers to guides");
}
