//! Our workflow templates: API-format JSON files in `src/comfy/templates/`,
//! each with named parameters that point at node ids and input names.
//!
//! Filling a template never touches its text: the graph is parsed, defaults
//! for the base model are set (checkpoint file, size, sampler settings),
//! then the caller's values, each checked for its kind. A parameter can also
//! be given as `node_id.input_name`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::workflow::{Workflow, WorkflowError};
use crate::plan::catalog::{ModelFamily, ModelSpec};

/// What a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    Text,
    Integer,
    Number,
    /// A file in one of ComfyUI's model folders.
    Model,
    /// A picture to upload (give a workspace path in `inputs`).
    Picture,
}

/// One named parameter of a template.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub about: &'static str,
    /// `(node id, input name)` pairs it sets.
    #[serde(skip)]
    pub targets: &'static [(&'static str, &'static str)],
}

/// Which base models a template renders with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// SD1.5, SDXL, Pony, Illustrious: one checkpoint file.
    StableDiffusion,
    /// Flux: diffusion model, two text encoders and a VAE, loaded apart.
    Flux,
    /// Needs no diffusion model.
    Any,
}

/// A workflow template.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Template {
    pub name: &'static str,
    pub about: &'static str,
    pub family: Family,
    pub params: &'static [Param],
    #[serde(skip)]
    json: &'static str,
    /// Values that differ from the JSON file's (one file, several templates).
    #[serde(skip)]
    overrides: &'static [(&'static str, i64)],
}

const fn p(
    name: &'static str,
    kind: ParamKind,
    about: &'static str,
    targets: &'static [(&'static str, &'static str)],
) -> Param {
    Param {
        name,
        kind,
        about,
        targets,
    }
}

use ParamKind::{Integer, Model, Number, Picture, Text};

/// Parameters of the SD-family graphs (checkpoint 4, prompts 6/7, sampler 3, latent 5, save 9).
const SD_COMMON: [Param; 9] = [
    p(
        "checkpoint",
        Model,
        "checkpoint file",
        &[("4", "ckpt_name")],
    ),
    p("prompt", Text, "what to draw", &[("6", "text")]),
    p("negative", Text, "what to avoid", &[("7", "text")]),
    p("seed", Integer, "noise seed", &[("3", "seed")]),
    p("steps", Integer, "sampler steps", &[("3", "steps")]),
    p("cfg", Number, "prompt strength", &[("3", "cfg")]),
    p("sampler", Text, "sampler name", &[("3", "sampler_name")]),
    p("scheduler", Text, "scheduler name", &[("3", "scheduler")]),
    p(
        "prefix",
        Text,
        "output file prefix",
        &[("9", "filename_prefix")],
    ),
];
const SD_SIZE: [Param; 3] = [
    p("width", Integer, "pixels", &[("5", "width")]),
    p("height", Integer, "pixels", &[("5", "height")]),
    p(
        "batch_size",
        Integer,
        "pictures at once",
        &[("5", "batch_size")],
    ),
];
const LORA: [Param; 2] = [
    p("lora", Model, "LoRA file", &[("10", "lora_name")]),
    p(
        "lora_weight",
        Number,
        "LoRA strength",
        &[("10", "strength_model"), ("10", "strength_clip")],
    ),
];
const FLUX_COMMON: [Param; 11] = [
    p("unet", Model, "Flux model file", &[("1", "unet_name")]),
    p(
        "clip_l",
        Model,
        "CLIP-L text encoder",
        &[("2", "clip_name1")],
    ),
    p("t5", Model, "T5 text encoder", &[("2", "clip_name2")]),
    p("vae", Model, "VAE file", &[("3", "vae_name")]),
    p("prompt", Text, "what to draw", &[("4", "text")]),
    p("guidance", Number, "Flux guidance", &[("5", "guidance")]),
    p("seed", Integer, "noise seed", &[("8", "seed")]),
    p("steps", Integer, "sampler steps", &[("8", "steps")]),
    p("sampler", Text, "sampler name", &[("8", "sampler_name")]),
    p("scheduler", Text, "scheduler name", &[("8", "scheduler")]),
    p(
        "prefix",
        Text,
        "output file prefix",
        &[("11", "filename_prefix")],
    ),
];
const FLUX_SIZE: [Param; 3] = [
    p("width", Integer, "pixels", &[("7", "width")]),
    p("height", Integer, "pixels", &[("7", "height")]),
    p(
        "batch_size",
        Integer,
        "pictures at once",
        &[("7", "batch_size")],
    ),
];

const fn cat<const A: usize, const B: usize, const N: usize>(
    a: [Param; A],
    b: [Param; B],
) -> [Param; N] {
    assert!(A + B == N);
    let mut out = [p("", Text, "", &[]); N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

const TXT2IMG: [Param; 12] = cat(SD_COMMON, SD_SIZE);
const LORA_TEST: [Param; 14] = cat(TXT2IMG, LORA);
const IMG2IMG: [Param; 11] = cat(
    SD_COMMON,
    [
        p("image", Picture, "starting picture", &[("10", "image")]),
        p(
            "denoise",
            Number,
            "how much changes (0-1)",
            &[("3", "denoise")],
        ),
    ],
);
const CONTROLNET: [Param; 15] = cat(
    TXT2IMG,
    [
        p(
            "control_image",
            Picture,
            "guide picture",
            &[("10", "image")],
        ),
        p(
            "controlnet",
            Model,
            "ControlNet file",
            &[("11", "control_net_name")],
        ),
        p(
            "control_strength",
            Number,
            "guide strength",
            &[("12", "strength")],
        ),
    ],
);
const FLUX_TXT2IMG: [Param; 14] = cat(FLUX_COMMON, FLUX_SIZE);
const FLUX_LORA_TEST: [Param; 16] = cat(FLUX_TXT2IMG, LORA);
const FLUX_IMG2IMG: [Param; 13] = cat(
    FLUX_COMMON,
    [
        p("image", Picture, "starting picture", &[("12", "image")]),
        p(
            "denoise",
            Number,
            "how much changes (0-1)",
            &[("8", "denoise")],
        ),
    ],
);
const UPSCALE: [Param; 3] = [
    p("image", Picture, "picture to enlarge", &[("1", "image")]),
    p(
        "upscale_model",
        Model,
        "ESRGAN-type model",
        &[("2", "model_name")],
    ),
    p(
        "prefix",
        Text,
        "output file prefix",
        &[("4", "filename_prefix")],
    ),
];
const SMOKE: [Param; 4] = [
    p("width", Integer, "pixels", &[("1", "width")]),
    p("height", Integer, "pixels", &[("1", "height")]),
    p("color", Integer, "0xRRGGBB as a number", &[("1", "color")]),
    p(
        "prefix",
        Text,
        "output file prefix",
        &[("3", "filename_prefix")],
    ),
];
const INVERT: [Param; 2] = [
    p("image", Picture, "picture", &[("1", "image")]),
    p(
        "prefix",
        Text,
        "output file prefix",
        &[("3", "filename_prefix")],
    ),
];

/// Every template.
pub static TEMPLATES: &[Template] = &[
    Template {
        name: "txt2img",
        about: "text to picture with SD1.5, SDXL, Pony or Illustrious",
        family: Family::StableDiffusion,
        params: &TXT2IMG,
        json: include_str!("templates/txt2img.json"),
        overrides: &[],
    },
    Template {
        name: "txt2img-flux",
        about: "text to picture with Flux",
        family: Family::Flux,
        params: &FLUX_TXT2IMG,
        json: include_str!("templates/txt2img-flux.json"),
        overrides: &[],
    },
    Template {
        name: "img2img",
        about: "rework a picture with SD1.5/SDXL",
        family: Family::StableDiffusion,
        params: &IMG2IMG,
        json: include_str!("templates/img2img.json"),
        overrides: &[],
    },
    Template {
        name: "img2img-flux",
        about: "rework a picture with Flux",
        family: Family::Flux,
        params: &FLUX_IMG2IMG,
        json: include_str!("templates/img2img-flux.json"),
        overrides: &[],
    },
    Template {
        name: "controlnet-sdxl",
        about: "SDXL guided by a picture (pose, edges, depth)",
        family: Family::StableDiffusion,
        params: &CONTROLNET,
        json: include_str!("templates/controlnet-sdxl.json"),
        overrides: &[],
    },
    Template {
        name: "upscale",
        about: "enlarge a picture with an ESRGAN-type model",
        family: Family::Any,
        params: &UPSCALE,
        json: include_str!("templates/upscale.json"),
        overrides: &[],
    },
    Template {
        name: "lora-test",
        about: "one picture with a LoRA (SD1.5/SDXL)",
        family: Family::StableDiffusion,
        params: &LORA_TEST,
        json: include_str!("templates/lora-test.json"),
        overrides: &[],
    },
    Template {
        name: "lora-test-flux",
        about: "one picture with a Flux LoRA",
        family: Family::Flux,
        params: &FLUX_LORA_TEST,
        json: include_str!("templates/lora-test-flux.json"),
        overrides: &[],
    },
    Template {
        name: "batch-variations",
        about: "4 variations of one prompt at once (SD1.5/SDXL)",
        family: Family::StableDiffusion,
        params: &TXT2IMG,
        json: include_str!("templates/txt2img.json"),
        overrides: &[("batch_size", 4)],
    },
    Template {
        name: "smoke",
        about: "a plain coloured square, no model needed: checks the connection",
        family: Family::Any,
        params: &SMOKE,
        json: include_str!("templates/smoke.json"),
        overrides: &[],
    },
    Template {
        name: "invert-image",
        about: "inverts an uploaded picture, no model needed",
        family: Family::Any,
        params: &INVERT,
        json: include_str!("templates/invert-image.json"),
        overrides: &[],
    },
];

/// Template names, for messages.
pub fn names() -> String {
    TEMPLATES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds a template by name.
pub fn find(name: &str) -> Option<&'static Template> {
    let wanted = name.trim().to_ascii_lowercase();
    TEMPLATES.iter().find(|t| t.name == wanted)
}

/// Sampler settings that suit a base model.
pub fn model_defaults(model: &ModelSpec) -> Vec<(&'static str, Value)> {
    let side = json!(model.native_resolution);
    let mut out = vec![("width", side.clone()), ("height", side)];
    match model.family {
        ModelFamily::Flux => {
            out.push(("unet", json!(model.checkpoint_file)));
            let schnell = model.id == "flux-schnell";
            out.push(("steps", json!(if schnell { 4 } else { 20 })));
        }
        _ => {
            out.push(("checkpoint", json!(model.checkpoint_file)));
            let (cfg, steps) = match (model.family, model.id) {
                (ModelFamily::Sd15, _) => (7.0, 25),
                (_, "pony") => (7.0, 25),
                (_, "illustrious") => (5.5, 28),
                _ => (6.5, 25),
            };
            out.push(("cfg", json!(cfg)));
            out.push(("steps", json!(steps)));
            if model.id == "pony" {
                out.push((
                    "negative",
                    json!("score_4, score_5, score_6, blurry, lowres, deformed, watermark, text"),
                ));
            }
        }
    }
    out
}

impl Template {
    /// The template's graph as written.
    pub fn base(&self) -> Result<Workflow, WorkflowError> {
        Workflow::from_json(self.json)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Whether `model` suits this template; the refusal says which one does.
    pub fn check_model(&self, model: &ModelSpec) -> Result<(), WorkflowError> {
        let fits = match self.family {
            Family::Any => true,
            Family::Flux => model.family == ModelFamily::Flux,
            Family::StableDiffusion => {
                matches!(model.family, ModelFamily::Sd15 | ModelFamily::Sdxl)
            }
        };
        if fits {
            return Ok(());
        }
        let instead = match model.family {
            ModelFamily::Flux => {
                "use the -flux templates (txt2img-flux, img2img-flux, lora-test-flux)"
            }
            ModelFamily::Sd3 => "SD3.5 has no template yet: submit your own API-format workflow",
            _ => "use txt2img, img2img, lora-test or batch-variations",
        };
        Err(WorkflowError::BadParameter {
            name: "base_model".into(),
            reason: format!(
                "the template `{}` is not made for {} ({})",
                self.name,
                model.name,
                model.family.word()
            ),
            hint: instead.into(),
        })
    }

    /// The graph filled with `model`'s defaults, then `values` (by
    /// parameter name or `node_id.input_name`).
    pub fn fill(
        &self,
        model: Option<&ModelSpec>,
        values: &Map<String, Value>,
    ) -> Result<Workflow, WorkflowError> {
        let mut wf = self.base()?;
        if let Some(m) = model {
            self.check_model(m)?;
            for (name, value) in model_defaults(m) {
                if self.param(name).is_some() {
                    self.set(&mut wf, name, value)?;
                }
            }
        }
        for (name, value) in self.overrides {
            self.set(&mut wf, name, json!(value))?;
        }
        for (name, value) in values {
            self.set(&mut wf, name, value.clone())?;
        }
        Ok(wf)
    }

    fn set(&self, wf: &mut Workflow, name: &str, value: Value) -> Result<(), WorkflowError> {
        let Some(param) = self.param(name) else {
            if let Some((node, input)) = name.split_once('.') {
                return wf.set_input(node, input, value);
            }
            let known: Vec<&str> = self.params.iter().map(|p| p.name).collect();
            return Err(WorkflowError::BadParameter {
                name: name.to_string(),
                reason: format!("the template `{}` has no such parameter", self.name),
                hint: format!("its parameters are: {}", known.join(", ")),
            });
        };
        let value = check_kind(param, value)?;
        for (node, input) in param.targets {
            wf.set_input(node, input, value.clone())?;
        }
        Ok(())
    }
}

/// `value` as `param` takes it (a whole number for integers, text for names).
fn check_kind(param: &Param, value: Value) -> Result<Value, WorkflowError> {
    let bad = |wanted: &str| WorkflowError::BadParameter {
        name: param.name.to_string(),
        reason: format!("`{value}` is not {wanted}"),
        hint: format!("give {wanted} ({})", param.about),
    };
    match param.kind {
        ParamKind::Integer => match &value {
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(value),
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                Ok(json!(n.as_f64().unwrap_or(0.0) as i64))
            }
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(|i| json!(i))
                .map_err(|_| bad("a whole number")),
            _ => Err(bad("a whole number")),
        },
        ParamKind::Number => match &value {
            Value::Number(_) => Ok(value),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|f| json!(f))
                .map_err(|_| bad("a number")),
            _ => Err(bad("a number")),
        },
        ParamKind::Text | ParamKind::Model | ParamKind::Picture => match &value {
            Value::String(s) if param.kind == ParamKind::Text || !s.trim().is_empty() => Ok(value),
            _ => Err(bad("text")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::catalog::lookup;
    use crate::studio::Hint;

    /// Core node classes of ComfyUI 0.3.75 (`/object_info` of the research server).
    const CORE: &[&str] = &[
        "CheckpointLoaderSimple",
        "CLIPTextEncode",
        "EmptyLatentImage",
        "KSampler",
        "VAEDecode",
        "VAEEncode",
        "SaveImage",
        "LoraLoader",
        "LoadImage",
        "ControlNetLoader",
        "ControlNetApplyAdvanced",
        "UNETLoader",
        "DualCLIPLoader",
        "VAELoader",
        "FluxGuidance",
        "EmptySD3LatentImage",
        "UpscaleModelLoader",
        "ImageUpscaleWithModel",
        "EmptyImage",
        "ImageInvert",
    ];

    #[test]
    fn every_template_is_a_valid_graph_whose_parameters_exist() {
        for t in TEMPLATES {
            let wf = t.base().unwrap_or_else(|e| panic!("{}: {e}", t.name));
            for id in wf.ids() {
                assert!(
                    CORE.contains(&wf.class_of(id)),
                    "{}: {}",
                    t.name,
                    wf.class_of(id)
                );
            }
            assert_eq!(wf.nodes_of_class("SaveImage").len(), 1, "{}", t.name);
            for param in t.params {
                for (node, input) in param.targets {
                    assert!(
                        wf.input(node, input).is_some(),
                        "{}: {}",
                        t.name,
                        param.name
                    );
                }
            }
            let mut names: Vec<&str> = t.params.iter().map(|p| p.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), t.params.len(), "{}", t.name);
        }
    }

    #[test]
    fn a_template_is_filled_by_node_and_input_with_the_models_defaults() {
        let t = find("lora-test").unwrap();
        let mut values = Map::new();
        values.insert("lora_weight".into(), json!(0.3));
        values.insert("prompt".into(), json!("zkfox, a fox"));
        values.insert("seed".into(), json!("7"));
        values.insert("3.denoise".into(), json!(0.9));
        let wf = t.fill(Some(lookup("sd15").unwrap()), &values).unwrap();
        assert_eq!(wf.input("10", "strength_model"), Some(&json!(0.3)));
        assert_eq!(wf.input("10", "strength_clip"), Some(&json!(0.3)));
        assert_eq!(wf.input("6", "text"), Some(&json!("zkfox, a fox")));
        assert_eq!(wf.input("3", "seed"), Some(&json!(7)));
        assert_eq!(wf.input("3", "denoise"), Some(&json!(0.9)));
        assert_eq!(wf.input("5", "width"), Some(&json!(512)));
        assert_eq!(
            wf.input("4", "ckpt_name"),
            Some(&json!("v1-5-pruned-emaonly.safetensors"))
        );
        let batch = find("batch-variations")
            .unwrap()
            .fill(None, &Map::new())
            .unwrap();
        assert_eq!(batch.input("5", "batch_size"), Some(&json!(4)));
    }

    #[test]
    fn wrong_values_and_models_are_refused_with_what_fits() {
        let t = find("txt2img").unwrap();
        let mut values = Map::new();
        values.insert("steps".into(), json!("many"));
        let e = t.fill(None, &values).unwrap_err();
        assert!(
            e.to_string().contains("`\"many\"` is not a whole number"),
            "{e}"
        );
        let mut values = Map::new();
        values.insert("stpes".into(), json!(3));
        let e = t.fill(None, &values).unwrap_err();
        assert!(e.hint().unwrap().contains("steps"), "{e}");
        let e = t
            .fill(Some(lookup("flux-dev").unwrap()), &Map::new())
            .unwrap_err();
        assert!(e.hint().unwrap().contains("txt2img-flux"), "{e}");
        let flux = find("txt2img-flux")
            .unwrap()
            .fill(Some(lookup("flux-schnell").unwrap()), &Map::new())
            .unwrap();
        assert_eq!(flux.input("8", "steps"), Some(&json!(4)));
        assert_eq!(
            flux.input("1", "unet_name"),
            Some(&json!("flux1-schnell.safetensors"))
        );
    }
}
