//! Every config Ategnatos writes, held to the trainers' own argument
//! definitions (issue 13, item 1).
//!
//! `fixtures/trainer-args/*.json` holds what each trainer accepts, extracted
//! from its source at a pinned commit by `scripts/extract_trainer_args.py`.
//! These tests generate the configs for every catalog model × every backend
//! that trains it × every preset × every training type (and the optimizer,
//! base-weight and precision choices a plan can make), through
//! `generate_config` itself, parse what was written and check each key and
//! value: an unknown key, a value of the wrong type (`5.0` is not an int) or a
//! value outside the option's choices fails, naming the key, the value and the
//! file.

use std::path::{Path, PathBuf};

use ategnatos::backends::{GeneratedConfig, generate_config, kohya};
use ategnatos::plan::catalog::{CATALOG, ModelSpec};
use ategnatos::plan::presets::{default_learning_rate, preset_plan};
use ategnatos::plan::training::{
    Backend, ImageFolder, LoraCoverage, Preset, TrainingPlan, save_plan,
};
use ategnatos::plan::validate::validate;
use ategnatos::studio::Workspace;
use ategnatos::studio::project::{TrainingType, new_project};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// The trainers' definitions

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/trainer-args")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Definitions {
    kohya_scripts: Vec<(String, Value)>,
    kohya_dataset: Value,
    simpletuner: Value,
    simpletuner_data: Value,
    ai_toolkit: Value,
}

impl Definitions {
    fn load() -> Definitions {
        let kohya_scripts = ["train_network", "sdxl_train_network", "flux_train_network"]
            .iter()
            .map(|s| (format!("{s}.py"), fixture(&format!("kohya-{s}.json"))))
            .collect();
        Definitions {
            kohya_scripts,
            kohya_dataset: fixture("kohya-dataset.json"),
            simpletuner: fixture("simpletuner.json"),
            simpletuner_data: fixture("simpletuner-databackend.json"),
            ai_toolkit: fixture("ai-toolkit.json"),
        }
    }

    fn kohya_script(&self, script: &str) -> &Value {
        &self
            .kohya_scripts
            .iter()
            .find(|(s, _)| s == script)
            .unwrap_or_else(|| panic!("no definitions for `{script}`"))
            .1
    }
}

// ---------------------------------------------------------------------------
// Value checks

/// Whether `v` has the type a definition names (`int`, `float`, `str`,
/// `bool`, `flag`, `dict`, `list`, `null`, `any`, `[float,float]`, and `a|b`).
/// An integer passes as a float only where the trainer converts text
/// (`int_as_float`); kohya and ai-toolkit use the value as written.
fn has_type(ty: &str, v: &Value, int_as_float: bool) -> bool {
    ty.split('|').any(|t| match t {
        "int" => v.is_i64() || v.is_u64(),
        "float" => v.is_f64() || (int_as_float && (v.is_i64() || v.is_u64())),
        "str" => v.is_string(),
        "bool" | "flag" => v.is_boolean(),
        "null" => v.is_null(),
        "dict" => v.is_object(),
        "list" => v.is_array(),
        "any" => true,
        pair if pair.starts_with('[') && pair.ends_with(']') => {
            let inner: Vec<&str> = pair[1..pair.len() - 1].split(',').collect();
            v.as_array().is_some_and(|a| {
                a.len() == inner.len()
                    && a.iter()
                        .zip(&inner)
                        .all(|(x, t)| has_type(t, x, int_as_float))
            })
        }
        _ => false,
    })
}

/// A default's kind, where the source gives no type: bool, number, string,
/// list or mapping (`none` accepts anything).
fn has_kind(kind: &str, v: &Value) -> bool {
    kind.split('|').any(|k| match k {
        "bool" => v.is_boolean(),
        "int" | "float" => v.is_number(),
        "str" => v.is_string(),
        "list" => v.is_array(),
        "dict" => v.is_object(),
        _ => true,
    })
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..80])
    } else {
        s
    }
}

/// Checks one key against its definition (`type`, `nargs`, `choices`,
/// `default_kind`, `values`); pushes what is wrong.
fn check_value(
    file: &str,
    key: &str,
    v: &Value,
    def: &Value,
    int_as_float: bool,
    problems: &mut Vec<String>,
) {
    let wrong = |what: String| format!("{file}: `{key}` = `{}`: {what}", show(v));
    let ty = def["type"].as_str();
    let nargs = def.get("nargs").filter(|n| n.as_str() != Some("?"));
    let items: Vec<&Value> = match (nargs, v) {
        (Some(_), Value::Array(a)) => a.iter().collect(),
        (Some(n), _) => {
            problems.push(wrong(format!(
                "the option takes a list (nargs {n}), this is not one"
            )));
            return;
        }
        (None, _) => vec![v],
    };
    for item in items {
        if let Some(ty) = ty
            && !has_type(ty, item, int_as_float)
        {
            problems.push(wrong(format!("the trainer takes {ty} here")));
            continue;
        }
        if ty.is_none()
            && let Some(kind) = def["default_kind"].as_str()
            && !has_kind(kind, item)
        {
            problems.push(wrong(format!(
                "the trainer's default here is a {kind}, so it reads one"
            )));
            continue;
        }
        for list in ["choices", "values"] {
            if let Some(choices) = def[list].as_array() {
                let ok = choices.iter().any(|c| {
                    c == item
                        || (c.as_str().is_some()
                            && item.as_str().is_some_and(|s| {
                                list == "values"
                                    && s.to_lowercase() == c.as_str().unwrap_or_default()
                            }))
                });
                if !ok {
                    problems.push(wrong(format!(
                        "not one of the accepted values {}",
                        show(&Value::Array(choices.clone()))
                    )));
                }
            }
        }
    }
}

/// Keys of `map` against `defs` (a JSON object of definitions).
fn check_keys(
    file: &str,
    map: &Map<String, Value>,
    defs: &Value,
    where_: &str,
    int_as_float: bool,
    problems: &mut Vec<String>,
) {
    for (k, v) in map {
        match defs.get(k) {
            Some(def) => check_value(file, k, v, def, int_as_float, problems),
            None => problems.push(format!(
                "{file}: `{k}` = `{}`: {where_} has no such key",
                show(v)
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Per trainer

fn read(root: &Path, g: &GeneratedConfig, name: &str) -> (String, String) {
    let f = g
        .files
        .iter()
        .find(|f| f.path.ends_with(name))
        .unwrap_or_else(|| panic!("{name} not written: {:?}", g.files));
    let text = std::fs::read_to_string(root.join(&f.path)).unwrap();
    (f.path.clone(), text)
}

fn toml_json(file: &str, text: &str) -> Map<String, Value> {
    let t: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{file} is not TOML: {e}"));
    match serde_json::to_value(t).unwrap() {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn check_kohya(
    defs: &Definitions,
    root: &Path,
    g: &GeneratedConfig,
    model: &ModelSpec,
    problems: &mut Vec<String>,
) {
    let script = kohya::script(model.family);
    let args = defs.kohya_script(script);
    let (file, text) = read(root, g, "config.toml");
    // Sections are flattened; every key must be an option of this script.
    let mut flat = Map::new();
    for (k, v) in toml_json(&file, &text) {
        match v {
            Value::Object(section) => flat.extend(section),
            v => {
                flat.insert(k, v);
            }
        }
    }
    let where_ = format!("kohya's `{script}`");
    check_keys(&file, &flat, &args["options"], &where_, false, problems);

    // The launch line: the script's own flags after its name.
    let at = g.command.iter().position(|a| a == script);
    match at {
        None => problems.push(format!(
            "{file}: the command `{}` does not run `{script}`",
            g.command_line
        )),
        Some(i) => {
            for flag in g.command[i + 1..].iter().filter(|a| a.starts_with("--")) {
                if args["options"].get(&flag[2..]).is_none() {
                    problems.push(format!(
                        "{file}: the command passes `{flag}`, which `{script}` does not have"
                    ));
                }
            }
        }
    }

    let (file, text) = read(root, g, "dataset.toml");
    let ds = &defs.kohya_dataset;
    let doc = toml_json(&file, &text);
    for (k, v) in &doc {
        match (k.as_str(), v) {
            ("general", Value::Object(m)) => {
                check_keys(&file, m, &ds["general"], "[general]", false, problems)
            }
            ("datasets", Value::Array(list)) => {
                for d in list {
                    let Some(d) = d.as_object() else {
                        problems.push(format!("{file}: a [[datasets]] entry is not a table"));
                        continue;
                    };
                    let mut own = d.clone();
                    let subsets = own.remove("subsets");
                    check_keys(
                        &file,
                        &own,
                        &ds["datasets"],
                        "[[datasets]]",
                        false,
                        problems,
                    );
                    for s in subsets
                        .as_ref()
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let Some(s) = s.as_object() else { continue };
                        check_keys(
                            &file,
                            s,
                            &ds["subsets"],
                            "[[datasets.subsets]]",
                            false,
                            problems,
                        );
                        for (req, def) in ds["subsets"].as_object().into_iter().flatten() {
                            if def["required"] == Value::Bool(true) && !s.contains_key(req) {
                                problems.push(format!("{file}: a subset lacks `{req}`"));
                            }
                        }
                    }
                }
            }
            _ => problems.push(format!(
                "{file}: `{k}` = `{}`: the dataset config has only [general] and [[datasets]]",
                show(v)
            )),
        }
    }
}

/// SimpleTuner turns each config.json value into command-line text
/// (`cli_utils.py::mapping_to_cli_args`); this checks what argparse then sees.
fn check_simpletuner_option(
    file: &str,
    key: &str,
    v: &Value,
    opt: &Value,
    problems: &mut Vec<String>,
) {
    let ty = opt["type"].as_str().unwrap_or("str");
    let wrong = |what: &str| format!("{file}: `{key}` = `{}`: {what}", show(v));
    match v {
        Value::Null => {}
        Value::Bool(_) if ty != "bool" => problems.push(wrong(&format!(
            "becomes `--{key}` without a value, but the option takes {ty}"
        ))),
        Value::Bool(_) => {}
        Value::Number(n) => {
            let text = n.to_string();
            let ok = match ty {
                "int" => text.parse::<i64>().is_ok(),
                "float" => text.parse::<f64>().is_ok(),
                "bool" => false,
                _ => true,
            };
            if !ok {
                problems.push(wrong(&format!(
                    "becomes `--{key}={text}`, which argparse refuses: the option takes {ty}"
                )));
            } else if let Some(choices) = opt["choices"].as_array()
                && !choices.iter().any(|c| c.as_str() == Some(&text))
            {
                problems.push(wrong("not one of the option's choices"));
            }
        }
        Value::String(s) => {
            let ok = match ty {
                "int" => s.trim().parse::<i64>().is_ok(),
                "float" => s.trim().parse::<f64>().is_ok(),
                _ => true,
            };
            if !ok {
                problems.push(wrong(&format!("the option takes {ty}")));
            } else if let Some(choices) = opt["choices"].as_array()
                && !choices.iter().any(|c| c.as_str() == Some(s))
            {
                problems.push(wrong(&format!(
                    "not one of the option's choices {}",
                    show(&Value::Array(choices.clone()))
                )));
            }
        }
        Value::Array(_) if opt.get("nargs").is_some_and(|n| n != "?") => {}
        Value::Array(_) => problems.push(wrong(
            "a list becomes the option repeated, and argparse keeps only the last",
        )),
        Value::Object(_) => problems.push(wrong("a mapping is not passed to the trainer")),
    }
}

fn check_simpletuner(
    defs: &Definitions,
    root: &Path,
    g: &GeneratedConfig,
    problems: &mut Vec<String>,
) {
    let st = &defs.simpletuner;
    let options = st["options"].as_object().unwrap();
    let handled = st["config_json_handled_keys"].as_object().unwrap();
    let (file, text) = read(root, g, "config.json");
    let config: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let config = config
        .as_object()
        .unwrap_or_else(|| panic!("{file} is not an object"));
    for (k, v) in config {
        let key = k.trim_start_matches('-');
        let opt = options.get(key).or_else(|| {
            options.values().find(|o| {
                o["aliases"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == key))
            })
        });
        match opt {
            Some(opt) => check_simpletuner_option(&file, key, v, opt, problems),
            None if handled.contains_key(key) => {}
            None => problems.push(format!(
                "{file}: `{k}` = `{}`: SimpleTuner has no such option (argparse stops the run)",
                show(v)
            )),
        }
    }
    // Values checked at run time against SimpleTuner's own tables.
    if let Some(opt) = config.get("optimizer").and_then(Value::as_str)
        && st["optimizers"].get(opt).is_none()
    {
        problems.push(format!(
            "{file}: `optimizer` = `{opt}`: SimpleTuner has no such optimizer"
        ));
    }
    if let Some(family) = config.get("model_family").and_then(Value::as_str) {
        let flavours = &st["model_families"][family];
        if let Some(flavour) = config.get("model_flavour").and_then(Value::as_str)
            && !flavours
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == flavour))
        {
            problems.push(format!(
                "{file}: `model_flavour` = `{flavour}`: not a flavour of `{family}` ({flavours})"
            ));
        }
    }
    // The launch line: `simpletuner train` and its own options.
    let launch = &st["launch"]["options"];
    for flag in g.command.iter().filter(|a| a.starts_with('-')) {
        let name = flag.trim_start_matches('-');
        let known = launch.get(name).is_some()
            || launch.as_object().into_iter().flatten().any(|(_, o)| {
                o["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == flag.as_str()))
            });
        if !known {
            problems.push(format!(
                "{file}: the command `{}` passes `{flag}`, which `simpletuner train` does not have",
                g.command_line
            ));
        }
    }

    let (file, text) = read(root, g, "multidatabackend.json");
    let data: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let keys = &defs.simpletuner_data["keys"];
    for backend in data
        .as_array()
        .unwrap_or_else(|| panic!("{file} is not a list"))
    {
        let b = backend
            .as_object()
            .unwrap_or_else(|| panic!("{file}: a backend is not an object"));
        check_keys(
            &file,
            b,
            keys,
            "SimpleTuner's data backends",
            false,
            problems,
        );
    }
}

/// Walks a YAML/JSON value along the ai-toolkit schemas.
fn check_ai_toolkit_map(
    file: &str,
    path: &str,
    map: &Map<String, Value>,
    schema: &str,
    schemas: &Value,
    problems: &mut Vec<String>,
) {
    let defs = &schemas[schema];
    for (k, v) in map {
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        let Some(def) = defs.get(k) else {
            problems.push(format!(
                "{file}: `{here}` = `{}`: ai-toolkit does not read this key ({schema}); it would be ignored",
                show(v)
            ));
            continue;
        };
        check_value(file, &here, v, def, false, problems);
        if let Some(sub) = def["schema"].as_str() {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for (i, item) in items.iter().enumerate() {
                let at = if v.is_array() {
                    format!("{here}[{i}]")
                } else {
                    here.clone()
                };
                if let Some(m) = item.as_object() {
                    check_ai_toolkit_map(file, &at, m, sub, schemas, problems);
                }
            }
        }
    }
}

fn check_ai_toolkit(
    defs: &Definitions,
    root: &Path,
    g: &GeneratedConfig,
    problems: &mut Vec<String>,
) {
    let (file, text) = read(root, g, "job.yaml");
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
    let job: Value = serde_json::to_value(yaml).unwrap();
    let ait = &defs.ai_toolkit;
    let root_schema = ait["root"].as_str().unwrap();
    match job.as_object() {
        Some(m) => check_ai_toolkit_map(&file, "", m, root_schema, &ait["schemas"], problems),
        None => problems.push(format!("{file}: the job is not a mapping")),
    }
    let launch = &ait["launch"]["options"];
    for flag in g.command.iter().filter(|a| a.starts_with('-')) {
        if launch.get(flag.trim_start_matches('-')).is_none() {
            problems.push(format!(
                "{file}: the command passes `{flag}`, which run.py does not have"
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Every plan

struct Studio {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: Workspace,
}

fn studio() -> Studio {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let ws = Workspace::open(&root).unwrap();
    Studio {
        _dir: dir,
        root,
        ws,
    }
}

fn folders() -> Vec<ImageFolder> {
    vec![
        ImageFolder {
            path: "pics/fox".into(),
            images: 18,
        },
        ImageFolder {
            path: "pics/fox/close-ups".into(),
            images: 7,
        },
    ]
}

fn base_plan(
    model: &ModelSpec,
    backend: Backend,
    kind: TrainingType,
    preset: Preset,
) -> TrainingPlan {
    let project = new_project("ink-fox", kind, model.id, "", "zkfox", "pics/fox", "txt");
    let mut plan = preset_plan(&project, model, preset, backend, folders());
    if model.hf_repo.is_none() {
        // No official download: the artist names the checkpoint.
        plan.model_path = Some(format!("models/{}", model.checkpoint_file));
    }
    plan
}

fn label(plan: &TrainingPlan) -> String {
    format!(
        "{} / {} / {:?} / {} / {:?} / {:?} / {:?} / {:?}",
        plan.base_model,
        plan.backend.name(),
        plan.training_type,
        plan.preset.word(),
        plan.optimizer,
        plan.base_weights,
        plan.precision,
        if plan.train_text_encoder {
            "te"
        } else {
            "no te"
        }
    )
}

/// Writes the plan's configs with `generate_config` and checks them.
fn generate_and_check(
    s: &Studio,
    defs: &Definitions,
    plan: &TrainingPlan,
    problems: &mut Vec<String>,
) {
    let model = plan.model().unwrap();
    save_plan(&s.ws, plan).unwrap();
    let g = generate_config(&s.ws, &plan.project, None)
        .unwrap_or_else(|e| panic!("{}: {e}", label(plan)));
    let mut mine = Vec::new();
    match plan.backend {
        Backend::Kohya => check_kohya(defs, &s.root, &g, model, &mut mine),
        Backend::SimpleTuner => check_simpletuner(defs, &s.root, &g, &mut mine),
        Backend::AiToolkit => check_ai_toolkit(defs, &s.root, &g, &mut mine),
        Backend::Native => {}
    }
    for p in mine {
        problems.push(format!("[{}] {p}", label(plan)));
    }
}

const EXTERNAL: [Backend; 3] = [Backend::Kohya, Backend::SimpleTuner, Backend::AiToolkit];

fn report(problems: Vec<String>, plans: usize) {
    let mut unique: Vec<String> = Vec::new();
    for p in problems {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    assert!(
        unique.is_empty(),
        "{} problems in the configs of {plans} plans:\n{}",
        unique.len(),
        unique.join("\n")
    );
}

#[test]
fn every_preset_for_every_model_and_backend_writes_what_the_trainer_accepts() {
    let defs = Definitions::load();
    let s = studio();
    let mut problems = Vec::new();
    let mut plans = 0;
    for model in CATALOG {
        for backend in EXTERNAL {
            if !backend.support().families.contains(&model.family) {
                continue;
            }
            for kind in [
                TrainingType::Character,
                TrainingType::Style,
                TrainingType::Object,
            ] {
                for preset in [Preset::Quick, Preset::Standard, Preset::Thorough] {
                    let plan = base_plan(model, backend, kind, preset);
                    generate_and_check(&s, &defs, &plan, &mut problems);
                    plans += 1;
                }
            }
        }
    }
    assert!(plans >= 50, "only {plans} plans");
    report(problems, plans);
}

#[test]
fn every_optimizer_precision_and_base_storage_a_plan_can_choose_is_written_right() {
    let defs = Definitions::load();
    let s = studio();
    let mut problems = Vec::new();
    let mut plans = 0;
    for model in CATALOG {
        for backend in EXTERNAL {
            let support = backend.support();
            if !support.families.contains(&model.family) {
                continue;
            }
            let base = base_plan(model, backend, TrainingType::Style, Preset::Standard);
            let mut variants: Vec<TrainingPlan> = Vec::new();
            for &o in support.optimizers {
                let mut p = base.clone();
                p.optimizer = o;
                p.learning_rate = default_learning_rate(o, model.family);
                variants.push(p);
            }
            for &w in support.base_weights {
                let mut p = base.clone();
                p.base_weights = w;
                variants.push(p);
            }
            for &precision in support.precisions {
                let mut p = base.clone();
                p.precision = precision;
                variants.push(p);
            }
            if support.text_encoder_training.contains(&model.family) {
                let mut p = base.clone();
                p.train_text_encoder = true;
                p.cache_text_embeddings = false;
                p.text_encoder_lr = Some(p.learning_rate / 2.0);
                variants.push(p);
            }
            // The memory options of the estimate, each as the trainer writes it.
            if support.block_swap.contains(&model.family) {
                let mut p = base.clone();
                p.blocks_to_swap = 8;
                variants.push(p);
            }
            if support.low_vram {
                let mut p = base.clone();
                p.low_vram = true;
                variants.push(p);
            }
            if support.bf16_lora {
                let mut p = base.clone();
                p.bf16_lora = true;
                variants.push(p);
            }
            for coverage in [LoraCoverage::Attention, LoraCoverage::AllLinear] {
                let mut p = base.clone();
                p.lora_targets = Some(coverage);
                variants.push(p);
            }
            let mut wide = base.clone();
            wide.height = Some(wide.resolution * 3 / 4 / 64 * 64);
            variants.push(wide);
            let mut quiet = base.clone();
            quiet.sample_images = false;
            variants.push(quiet);
            let mut lean = base.clone();
            lean.cache_latents = false;
            lean.cache_text_embeddings = false;
            lean.gradient_checkpointing = !lean.gradient_checkpointing;
            lean.warmup_steps = 50;
            variants.push(lean);
            for p in variants {
                if !validate(&p, None).is_empty() {
                    continue;
                }
                generate_and_check(&s, &defs, &p, &mut problems);
                plans += 1;
            }
        }
    }
    assert!(plans >= 60, "only {plans} plans");
    report(problems, plans);
}

/// The checks themselves: each catches the kind of mistake it is for.
#[test]
fn the_checks_catch_unknown_keys_wrong_types_and_values_outside_the_choices() {
    let defs = Definitions::load();
    let sd15 = &defs.kohya_script("train_network.py")["options"];
    let sdxl = &defs.kohya_script("sdxl_train_network.py")["options"];
    let run = |f: &dyn Fn(&mut Vec<String>)| {
        let mut p = Vec::new();
        f(&mut p);
        p
    };
    let kohya = |defs_: &Value, k: &str, v: Value| {
        let mut m = Map::new();
        m.insert(k.into(), v);
        run(&|p| check_keys("config.toml", &m, defs_, "the script", false, p))
    };
    // The SD1.5 script has no text-encoder output cache; the SDXL one has.
    let p = kohya(sd15, "cache_text_encoder_outputs", Value::Bool(true));
    assert!(
        p[0].contains("`cache_text_encoder_outputs`") && p[0].contains("config.toml"),
        "{p:?}"
    );
    assert!(kohya(sdxl, "cache_text_encoder_outputs", Value::Bool(true)).is_empty());
    // Types as written: an int where a float is wanted, a float where an int is.
    assert!(!kohya(sd15, "network_dim", serde_json::json!(32.0)).is_empty());
    assert!(kohya(sd15, "network_dim", serde_json::json!(32)).is_empty());
    assert!(!kohya(sd15, "mixed_precision", serde_json::json!("bf32")).is_empty());
    assert!(!kohya(sd15, "text_encoder_lr", serde_json::json!(1e-5)).is_empty());
    assert!(kohya(sd15, "text_encoder_lr", serde_json::json!([1e-5])).is_empty());

    // SimpleTuner: `--snr_gamma=5.0` is refused, 5 is fine.
    let snr = &defs.simpletuner["options"]["snr_gamma"];
    let st = |v: Value| run(&|p| check_simpletuner_option("config.json", "snr_gamma", &v, snr, p));
    let p = st(serde_json::json!(5.0));
    assert!(
        p.len() == 1 && p[0].contains("`snr_gamma` = `5.0`"),
        "{p:?}"
    );
    assert!(st(serde_json::json!(5)).is_empty());
    assert!(!st(Value::Bool(true)).is_empty());

    // ai-toolkit: a key it does not read, and a value outside a Literal.
    let schemas = &defs.ai_toolkit["schemas"];
    let mut net = Map::new();
    net.insert("type".into(), serde_json::json!("loha"));
    net.insert("linear_rank".into(), serde_json::json!(16));
    let p =
        run(&|p| check_ai_toolkit_map("job.yaml", "network", &net, "NetworkConfig", schemas, p));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().any(|x| x.contains("`network.linear_rank`")));
    assert!(p.iter().any(|x| x.contains("`network.type` = `\"loha\"`")));
}
