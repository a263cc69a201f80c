//! `grimoire/training/<name>/config.md`: the plan for people — backend,
//! model, preset, every parameter with a one-line explanation, the memory
//! estimate against the GPU, the time estimate, and where the files are.

use std::fmt::Write;

use super::GeneratedConfig;
use crate::plan::catalog::ModelSpec;
use crate::plan::gpu::Gpu;
use crate::plan::planner::explain_parameters;
use crate::plan::time::{duration_words, estimate_time};
use crate::plan::training::TrainingPlan;
use crate::plan::vram::estimate_vram;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Renders config.md.
pub fn config_md(
    plan: &TrainingPlan,
    model: &ModelSpec,
    gpu: Option<&Gpu>,
    generated: &GeneratedConfig,
) -> String {
    let mut md = String::new();
    let vram = estimate_vram(plan, model, gpu);
    let _ = writeln!(md, "# Training config — {}\n", plan.project);
    let _ = writeln!(
        md,
        "{} LoRA on **{}**, {} preset, trained with **{}**. Run `{}`; plan fingerprint `{}`.\n",
        capitalised(plan.training_type.with_article()),
        model.name,
        plan.preset.word(),
        plan.backend.name(),
        generated.run_name,
        generated.plan_hash
    );

    let _ = writeln!(md, "## GPU memory\n");
    match (gpu, vram.fits, vram.budget_gib) {
        (Some(g), Some(fits), Some(budget)) => {
            let _ = writeln!(
                md,
                "Estimated peak **{:.1} GB** against **{:.0} GB** on the {} ({:.1} GB usable with the 20 % safety margin): **{}**.\n",
                vram.total_gib,
                g.vram_gib,
                g.name,
                budget,
                if fits { "fits" } else { "does not fit" }
            );
        }
        _ => {
            let _ = writeln!(
                md,
                "Estimated peak **{:.1} GB**; no GPU was named or found, so it needs one with at least {:.0} GB.\n",
                vram.total_gib,
                vram.min_gpu_gb.ceil()
            );
        }
    }
    if !plan.train_text_encoder
        && let Some(limit) = super::text_encoder_cache_limit(plan.backend, model.family)
    {
        let _ = writeln!(md, "Captions are not cached: {limit}.\n");
    }
    let _ = writeln!(md, "| part | GB | why |\n|---|---:|---|");
    for c in &vram.components {
        let _ = writeln!(md, "| {} | {:.2} | {} |", c.part, c.gib, cell(&c.why));
    }
    let _ = writeln!(md, "\n{}\n", vram.accuracy);

    let _ = writeln!(md, "## Time\n");
    match gpu {
        Some(g) => {
            let t = estimate_time(plan, model, g, None);
            let _ = writeln!(
                md,
                "About **{}** on the {}: {} steps of about {:.1} s, plus {:.0} min to load and cache. Rough (±50 %); basis: {}.\n",
                duration_words(t.total_minutes),
                g.name,
                t.steps,
                t.seconds_per_step,
                t.setup_minutes,
                t.basis
            );
        }
        None => {
            let _ = writeln!(
                md,
                "{} steps; name the GPU to get a time estimate.\n",
                plan.total_steps()
            );
        }
    }

    let _ = writeln!(md, "## Every setting\n");
    let _ = writeln!(md, "| setting | value | what it does |\n|---|---|---|");
    for p in explain_parameters(plan, model) {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} |",
            p.name,
            cell(&p.value),
            cell(&p.meaning)
        );
    }

    let _ = writeln!(md, "\n## Files\n");
    for f in &generated.files {
        let _ = writeln!(md, "- `{}` — {}", f.path, f.role);
    }
    let _ = writeln!(
        md,
        "- outputs (checkpoints, samples): `{}`",
        generated.output_dir
    );
    if !generated.model_files.is_empty() {
        let _ = writeln!(md, "\nThe trainer loads:");
        for m in &generated.model_files {
            let _ = writeln!(md, "- `{m}`");
        }
    }
    let _ = writeln!(
        md,
        "\n## Command\n\nIn {}:\n\n```sh\n{}\n```\n\nDo not start it by hand: gates 3 (environment) and 4 (dry run) must pass first, and `launch_training` runs it.",
        generated.working_dir, generated.command_line
    );
    md
}

/// `an object` → `An object`.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
