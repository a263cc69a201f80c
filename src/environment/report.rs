//! The environment report in words: the one-paragraph summary a tool
//! returns, and `environment.md` for the artist.

use super::{EnvironmentReport, Severity};
use crate::plan::training::{Backend, TrainingPlan};

fn gb(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0} GB")
    } else {
        format!("{x:.1} GB")
    }
}

fn backend_owner(b: Backend) -> String {
    match b {
        Backend::Kohya => "kohya's".into(),
        Backend::SimpleTuner => "SimpleTuner's".into(),
        Backend::AiToolkit => "ai-toolkit's".into(),
        Backend::Native => "the engine's".into(),
    }
}

/// "Your RTX 4090 has 24 GB, 22.8 free — enough for this plan's 17.1 GB. …"
pub fn summary(r: &EnvironmentReport, plan: Option<&TrainingPlan>) -> String {
    let mut s = Vec::new();
    match (&r.memory, r.gpu.first()) {
        (Some(m), _) => s.push(format!(
            "Your {} has {}, {:.1} free — {} for this plan's {:.1} GB.",
            m.device,
            gb(m.total_gib),
            m.free_gib,
            if m.fits { "enough" } else { "not enough" },
            m.needed_gib
        )),
        (None, Some(g)) => s.push(format!(
            "Your {} has {}{}.",
            g.short_name(),
            gb(g.total_gib()),
            g.free_gib()
                .map(|f| format!(", {f:.1} free"))
                .unwrap_or_default()
        )),
        (None, None) => s.push(format!(
            "No NVIDIA GPU found{}.",
            if r.gpu.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.gpu.notes.join("; "))
            }
        )),
    }
    if r.gpu.gpus.len() > 1 {
        s.push(format!("({} GPUs in all.)", r.gpu.gpus.len()));
    }
    let torch = r
        .python
        .as_ref()
        .and_then(|p| p.answer.as_ref())
        .map(|a| &a.torch)
        .filter(|t| t.installed);
    let incompatible = r.findings.iter().any(|f| f.topic == "compatibility");
    match (&r.gpu.driver_version, &r.gpu.cuda_version) {
        (Some(d), Some(c)) => {
            let mut line = format!("Driver {d} supports CUDA {c}");
            match (torch.and_then(|t| t.version.as_ref()), r.backend) {
                (Some(v), Some(b)) => line.push_str(&format!(
                    "; the PyTorch in {} environment is {v}: {}.",
                    backend_owner(b),
                    if incompatible {
                        "not compatible (see below)"
                    } else {
                        "compatible"
                    }
                )),
                _ => line.push('.'),
            }
            s.push(line);
        }
        _ => {
            if let (Some(v), Some(b)) = (torch.and_then(|t| t.version.as_ref()), r.backend) {
                s.push(format!(
                    "The PyTorch in {} environment is {v}{}.",
                    backend_owner(b),
                    if torch.and_then(|t| t.mps_available) == Some(true) {
                        ", with Apple's MPS"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    if let Some(i) = &r.install {
        s.push(format!(
            "{} is in `{}`{}: {}.",
            i.backend.name(),
            i.dir.display(),
            i.commit
                .as_ref()
                .map(|c| format!(" (commit {c})"))
                .unwrap_or_default(),
            if i.can_start {
                "it can start".to_string()
            } else if !i.missing.is_empty() {
                format!("it cannot start, {} module(s) are missing", i.missing.len())
            } else {
                "it cannot start".to_string()
            }
        ));
    }
    if let Some(n) = &r.native
        && matches!(r.backend, Some(Backend::Native) | None)
    {
        s.push(n.summary.clone());
    }
    match (&r.disk.free_gib, &r.disk.need) {
        (Some(free), Some(need)) => s.push(format!(
            "{} free on the workspace disk; this run needs about {}.",
            gb(*free),
            gb(need.total_gib)
        )),
        (Some(free), None) => s.push(format!("{} free on the workspace disk.", gb(*free))),
        _ => {}
    }
    for f in r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Blocking)
    {
        s.push(format!("Blocking: {} — {}.", f.message, f.what_to_do));
    }
    for f in r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
    {
        s.push(format!("Warning: {} — {}.", f.message, f.what_to_do));
    }
    if plan.is_some() {
        s.push(if r.ready {
            "Nothing blocks this plan here.".into()
        } else {
            "Fix the blocking problems, then check again.".into()
        });
    }
    if let Some(f) = &r.report_file {
        s.push(format!("Report: {f}."));
    }
    s.join(" ")
}

/// `environment.md`.
pub fn markdown(r: &EnvironmentReport) -> String {
    let mut md = format!(
        "# Environment: {}\n\n**{}**\n\n{}\n\n",
        r.project.as_deref().unwrap_or("this machine"),
        if r.ready { "Ready" } else { "Not ready" },
        r.summary
    );
    md.push_str(&format!("## Accelerator\n\n{}\n\n", r.accelerator));
    md.push_str("## GPUs\n\n");
    if r.gpu.gpus.is_empty() {
        md.push_str("None found.\n");
    } else {
        md.push_str("| # | GPU | memory | free | compute capability |\n|---|---|---|---|---|\n");
        for g in &r.gpu.gpus {
            md.push_str(&format!(
                "| {} | {} | {:.1} GB | {} | {} |\n",
                g.index,
                g.name,
                g.total_gib(),
                g.free_gib()
                    .map(|f| format!("{f:.1} GB"))
                    .unwrap_or_else(|| "-".into()),
                g.compute_capability.as_deref().unwrap_or("-")
            ));
            for p in &g.processes {
                md.push_str(&format!(
                    "  - also using it: {} (pid {}){}\n",
                    p.name.as_deref().unwrap_or("a program"),
                    p.pid,
                    p.used_mib.map(|m| format!(", {m} MiB")).unwrap_or_default()
                ));
            }
        }
    }
    md.push_str(&format!(
        "\n- Driver: {}\n- CUDA the driver supports: {}\n- Source: {:?}\n",
        r.gpu.driver_version.as_deref().unwrap_or("-"),
        r.gpu.cuda_version.as_deref().unwrap_or("-"),
        r.gpu.source
    ));
    for n in &r.gpu.notes {
        md.push_str(&format!("- {n}\n"));
    }
    if let Some(p) = &r.python {
        md.push_str(&format!(
            "\n## Python\n\n- Interpreter: `{}` ({})\n",
            p.interpreter.display(),
            p.found_by
        ));
        if let Some(a) = &p.answer {
            md.push_str(&format!(
                "- Python {} on {} {}\n",
                a.python, a.platform, a.machine
            ));
            let t = &a.torch;
            if t.installed {
                md.push_str(&format!(
                    "- PyTorch {} (CUDA build {}), CUDA available: {}, MPS available: {}\n",
                    t.version.as_deref().unwrap_or("?"),
                    t.cuda.as_deref().unwrap_or("none"),
                    t.cuda_available.map_or("-".into(), |b| b.to_string()),
                    t.mps_available.map_or("-".into(), |b| b.to_string())
                ));
                if !t.arch_list.is_empty() {
                    md.push_str(&format!("- Kernels for: {}\n", t.arch_list.join(", ")));
                }
            } else {
                md.push_str("- PyTorch: not installed\n");
            }
            for (name, version) in &a.packages {
                md.push_str(&format!(
                    "- {name}: {}\n",
                    version.as_deref().unwrap_or("not installed")
                ));
            }
        }
        if let Some(problem) = &p.problem {
            md.push_str(&format!(
                "- **{}** — {}\n",
                problem.message, problem.what_to_do
            ));
        }
    }
    if let Some(i) = &r.install {
        md.push_str(&format!(
            "\n## {}\n\n- Folder: `{}` ({})\n- Commit: {}\n- Entry scripts: {}\n- Can start: {}\n",
            i.backend.name(),
            i.dir.display(),
            i.found_by,
            i.commit.as_deref().unwrap_or("-"),
            i.entry_scripts.join(", "),
            if i.can_start { "yes" } else { "no" }
        ));
        if !i.missing.is_empty() {
            md.push_str("\n| missing module | package | imported by |\n|---|---|---|\n");
            for m in &i.missing {
                md.push_str(&format!(
                    "| {} | {} | {} |\n",
                    m.module, m.package, m.imported_by
                ));
            }
        }
        if let Some(line) = &i.pip_install {
            md.push_str(&format!(
                "\nInstall them all at once:\n\n```\n{line}\n```\n"
            ));
        }
    }
    if let Some(n) = &r.native {
        md.push_str(&format!("\n## The Ategnatos engine\n\n{}\n", n.summary));
    }
    if let Some(m) = &r.memory {
        md.push_str(&format!(
            "\n## Memory\n\n{}: {:.1} GB free of {:.1} GB; the plan needs about {:.1} GB — {}.\n",
            m.device,
            m.free_gib,
            m.total_gib,
            m.needed_gib,
            if m.fits { "enough" } else { "not enough" }
        ));
    }
    md.push_str("\n## Disk\n\n");
    match r.disk.free_gib {
        Some(f) => md.push_str(&format!("{f:.1} GB free on the workspace disk.\n")),
        None => md.push_str("Free space unknown on this system.\n"),
    }
    if let Some(need) = &r.disk.need {
        md.push_str(&format!(
            "\nThis run needs about {:.1} GB:\n\n",
            need.total_gib
        ));
        for p in &need.parts {
            md.push_str(&format!("- {}: {:.2} GB\n", p.what, p.gib));
        }
    }
    if !r.models.is_empty() {
        md.push_str("\n## Model files\n\n");
        for m in &r.models {
            md.push_str(&format!(
                "- `{}` ({}): {}{}\n",
                m.given,
                m.kind,
                if m.exists { "present" } else { "not here" },
                m.size_gib
                    .map(|s| format!(", {s:.2} GB"))
                    .unwrap_or_default()
            ));
        }
    }
    if !r.apple_plan_changes.is_empty() {
        md.push_str("\n## Apple Silicon (MPS)\n\nWhat training with MPS needs from the plan:\n\n");
        for c in &r.apple_plan_changes {
            md.push_str(&format!("- {c}\n"));
        }
    }
    md.push_str("\n## Problems and fixes\n\n");
    if r.findings.is_empty() {
        md.push_str("None.\n");
    }
    for f in &r.findings {
        md.push_str(&format!(
            "- **{}** ({}) {} — {}\n",
            f.severity.word(),
            f.topic,
            f.message,
            f.what_to_do
        ));
    }
    md.push_str(&format!("\nFingerprint `{}`\n", r.fingerprint));
    md
}
