//! The GPUs we know (memory, generation, rough speed) and which one is here.
//!
//! [`GPU_TABLE`] is data: a card is an entry. [`detect`] asks NVML (the
//! NVIDIA driver's management library, loaded at run time) for the first GPU;
//! on a machine without the driver it returns `None` and the caller falls
//! back to the GPU the user named with [`lookup`].

use serde::Serialize;

/// Who makes the card for whom; rented GPUs are mostly data-centre ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpuClass {
    Consumer,
    Workstation,
    Datacenter,
}

/// NVIDIA architecture generation. bf16 needs Ampere or newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpuGeneration {
    Pascal,
    Volta,
    Turing,
    Ampere,
    Ada,
    Hopper,
    Blackwell,
}

impl GpuGeneration {
    /// From a CUDA compute capability (`8.6` → Ampere).
    pub fn from_compute_capability(major: u32, minor: u32) -> GpuGeneration {
        match (major, minor) {
            (0..=6, _) => GpuGeneration::Pascal,
            (7, 0..=2) => GpuGeneration::Volta,
            (7, _) => GpuGeneration::Turing,
            (8, 9) => GpuGeneration::Ada,
            (8, _) => GpuGeneration::Ampere,
            (9, _) => GpuGeneration::Hopper,
            _ => GpuGeneration::Blackwell,
        }
    }

    /// True when the tensor cores compute in bfloat16.
    pub fn supports_bf16(self) -> bool {
        self >= GpuGeneration::Ampere
    }
}

/// One card of the table.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GpuSpec {
    /// Name as NVIDIA writes it, without the `NVIDIA GeForce` prefix.
    pub name: &'static str,
    /// Other spellings (lower case) users type.
    #[serde(skip)]
    pub aliases: &'static [&'static str],
    /// Memory in GiB, as the card is sold.
    pub vram_gib: f64,
    pub generation: GpuGeneration,
    pub class: GpuClass,
    /// Training throughput relative to an RTX 4090 (1.0). Rough: from the
    /// FLUX QLoRA post (4090 vs T4 vs H100 on the same job) and the cards'
    /// dense bf16/fp16 tensor throughput; good to ±30 %.
    pub relative_speed: f64,
}

const fn gpu(
    name: &'static str,
    aliases: &'static [&'static str],
    vram_gib: f64,
    generation: GpuGeneration,
    class: GpuClass,
    relative_speed: f64,
) -> GpuSpec {
    GpuSpec {
        name,
        aliases,
        vram_gib,
        generation,
        class,
        relative_speed,
    }
}

use GpuClass::{Consumer, Datacenter, Workstation};
use GpuGeneration::{Ada, Ampere, Blackwell, Hopper, Pascal, Turing, Volta};

/// Every card we know. Longer names come first where one contains another
/// (`RTX 4060 Ti` before `RTX 4060`), so matching a driver name picks the right one.
pub static GPU_TABLE: &[GpuSpec] = &[
    gpu(
        "GTX 1080 Ti",
        &["1080ti", "1080 ti"],
        11.0,
        Pascal,
        Consumer,
        0.12,
    ),
    gpu(
        "RTX 2080 Ti",
        &["2080ti", "2080 ti"],
        11.0,
        Turing,
        Consumer,
        0.30,
    ),
    gpu("RTX 3060", &["3060"], 12.0, Ampere, Consumer, 0.25),
    gpu("RTX 3070", &["3070"], 8.0, Ampere, Consumer, 0.35),
    gpu(
        "RTX 3080 Ti",
        &["3080ti", "3080 ti"],
        12.0,
        Ampere,
        Consumer,
        0.50,
    ),
    gpu("RTX 3080", &["3080"], 10.0, Ampere, Consumer, 0.45),
    gpu(
        "RTX 3090 Ti",
        &["3090ti", "3090 ti"],
        24.0,
        Ampere,
        Consumer,
        0.60,
    ),
    gpu("RTX 3090", &["3090"], 24.0, Ampere, Consumer, 0.55),
    gpu(
        "RTX 4060 Ti",
        &["4060ti", "4060 ti"],
        16.0,
        Ada,
        Consumer,
        0.35,
    ),
    gpu("RTX 4060", &["4060"], 8.0, Ada, Consumer, 0.28),
    gpu(
        "RTX 4070 Ti SUPER",
        &["4070tis", "4070 ti super"],
        16.0,
        Ada,
        Consumer,
        0.62,
    ),
    gpu(
        "RTX 4070 Ti",
        &["4070ti", "4070 ti"],
        12.0,
        Ada,
        Consumer,
        0.58,
    ),
    gpu("RTX 4070", &["4070"], 12.0, Ada, Consumer, 0.45),
    gpu(
        "RTX 4080 SUPER",
        &["4080s", "4080 super"],
        16.0,
        Ada,
        Consumer,
        0.78,
    ),
    gpu("RTX 4080", &["4080"], 16.0, Ada, Consumer, 0.75),
    gpu("RTX 4090", &["4090"], 24.0, Ada, Consumer, 1.00),
    gpu(
        "RTX 5060 Ti",
        &["5060ti", "5060 ti"],
        16.0,
        Blackwell,
        Consumer,
        0.40,
    ),
    gpu(
        "RTX 5070 Ti",
        &["5070ti", "5070 ti"],
        16.0,
        Blackwell,
        Consumer,
        0.75,
    ),
    gpu("RTX 5080", &["5080"], 16.0, Blackwell, Consumer, 0.90),
    gpu("RTX 5090", &["5090"], 32.0, Blackwell, Consumer, 1.40),
    gpu("RTX A4000", &["a4000"], 16.0, Ampere, Workstation, 0.35),
    gpu("RTX A5000", &["a5000"], 24.0, Ampere, Workstation, 0.50),
    gpu("RTX A6000", &["a6000"], 48.0, Ampere, Workstation, 0.60),
    gpu(
        "RTX 6000 Ada",
        &["6000 ada", "rtx6000ada"],
        48.0,
        Ada,
        Workstation,
        1.00,
    ),
    gpu("Tesla T4", &["t4"], 16.0, Turing, Datacenter, 0.17),
    gpu("Tesla V100", &["v100"], 16.0, Volta, Datacenter, 0.40),
    gpu("A10G", &["a10g"], 24.0, Ampere, Datacenter, 0.45),
    gpu("A10", &["a10"], 24.0, Ampere, Datacenter, 0.45),
    gpu("L4", &["l4"], 24.0, Ada, Datacenter, 0.30),
    gpu("L40S", &["l40s"], 48.0, Ada, Datacenter, 1.05),
    gpu(
        "A100 80GB",
        &["a100-80gb", "a100 80gb", "a100-80g", "a100 80g"],
        80.0,
        Ampere,
        Datacenter,
        1.30,
    ),
    gpu(
        "A100",
        &["a100", "a100-40gb", "a100 40gb"],
        40.0,
        Ampere,
        Datacenter,
        1.30,
    ),
    gpu(
        "H100",
        &["h100", "h100 sxm", "h100 pcie"],
        80.0,
        Hopper,
        Datacenter,
        2.00,
    ),
    gpu("H200", &["h200"], 141.0, Hopper, Datacenter, 2.10),
    gpu("B200", &["b200"], 180.0, Blackwell, Datacenter, 3.00),
];

/// The GPU an estimate compares against.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Gpu {
    /// Name (from the driver when detected).
    pub name: String,
    /// Total memory, GiB.
    pub vram_gib: f64,
    pub generation: GpuGeneration,
    /// Throughput relative to an RTX 4090.
    pub relative_speed: f64,
    /// `detected` (asked the driver), or `named` (the user said which).
    pub source: GpuSource,
}

/// Where we learned which GPU it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpuSource {
    Detected,
    Named,
}

impl Gpu {
    /// A card of the table, as named by the user.
    pub fn named(spec: &GpuSpec) -> Gpu {
        Gpu {
            name: spec.name.to_string(),
            vram_gib: spec.vram_gib,
            generation: spec.generation,
            relative_speed: spec.relative_speed,
            source: GpuSource::Named,
        }
    }
}

/// A GPU name we do not know.
#[derive(Debug, thiserror::Error)]
#[error("`{given}` is not a GPU Ategnatos knows")]
pub struct UnknownGpu {
    pub given: String,
}

impl UnknownGpu {
    pub fn hint(&self) -> Option<String> {
        let names: Vec<&str> = GPU_TABLE.iter().map(|g| g.name).collect();
        Some(format!(
            "name one of: {} (or give its memory in GB, from 1 to 1024, e.g. `12GB`)",
            names.join(", ")
        ))
    }
}

fn normalise(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let trimmed = lower
        .replace("nvidia", "")
        .replace("geforce", "")
        .replace("tesla", "")
        .replace('-', " ");
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Finds a card by name or alias, ignoring case and the `NVIDIA GeForce`
/// prefix. A bare memory size (`12GB`, `8 gb`) gives an unnamed card of that
/// size with the speed of an RTX 3060-class GPU.
pub fn lookup(name: &str) -> Result<Gpu, UnknownGpu> {
    let wanted = normalise(name);
    let unknown = || UnknownGpu {
        given: name.to_string(),
    };
    if wanted.is_empty() {
        return Err(unknown());
    }
    if let Some(gb) = parse_memory_size(&wanted) {
        return Ok(Gpu {
            name: format!("{gb} GB GPU"),
            vram_gib: gb,
            generation: GpuGeneration::Ampere,
            relative_speed: 0.3,
            source: GpuSource::Named,
        });
    }
    let exact = GPU_TABLE.iter().find(|g| {
        normalise(g.name) == wanted
            || g.aliases.iter().any(|a| normalise(a) == wanted)
            || normalise(g.name).replace("rtx ", "") == wanted
    });
    if let Some(spec) = exact {
        return Ok(Gpu::named(spec));
    }
    // Driver names carry extra words (`NVIDIA A100-SXM4-80GB`): take the
    // entry all of whose words appear, the one with the most words first.
    let words: Vec<&str> = wanted.split(' ').collect();
    let covers = |name: &str| name.split(' ').all(|w| words.contains(&w));
    GPU_TABLE
        .iter()
        .filter_map(|g| {
            let names: Vec<String> = std::iter::once(g.name)
                .chain(g.aliases.iter().copied())
                .map(normalise)
                .collect();
            let best = names
                .iter()
                .filter(|n| covers(n))
                .map(|n| n.split(' ').count())
                .max()?;
            Some((best, g))
        })
        .max_by_key(|(n, g)| (*n, g.name.len()))
        .map(|(_, g)| Gpu::named(g))
        .ok_or_else(unknown)
}

fn parse_memory_size(text: &str) -> Option<f64> {
    // `12 GB GPU` is how an unnamed card is shown (and stored in a plan).
    let text = text.trim().trim_end_matches("gpu");
    let t = text
        .trim()
        .trim_end_matches("gib")
        .trim_end_matches("gb")
        .trim_end_matches('g');
    if t.len() == text.trim().len() {
        return None;
    }
    let gb: f64 = t.trim().parse().ok()?;
    (1.0..=1024.0).contains(&gb).then_some(gb)
}

/// Asks the NVIDIA driver for the first GPU. `None` without a driver or GPU.
pub fn detect() -> Option<Gpu> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let device = nvml.device_by_index(0).ok()?;
    let name = device.name().ok()?;
    let total = device.memory_info().ok()?.total;
    let vram_gib = total as f64 / (1u64 << 30) as f64;
    let generation = device
        .cuda_compute_capability()
        .map(|cc| GpuGeneration::from_compute_capability(cc.major as u32, cc.minor as u32))
        .ok();
    let known = lookup(&name).ok();
    Some(Gpu {
        name,
        vram_gib,
        generation: generation
            .or(known.as_ref().map(|k| k.generation))
            .unwrap_or(GpuGeneration::Ampere),
        relative_speed: known.map(|k| k.relative_speed).unwrap_or(0.5),
        source: GpuSource::Detected,
    })
}

/// The GPU to plan for: the one named, else the one detected.
pub fn resolve(named: Option<&str>) -> Result<Option<Gpu>, UnknownGpu> {
    match named.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => lookup(n).map(Some),
        None => Ok(detect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_people_and_drivers_write_them() {
        assert_eq!(lookup("4090").unwrap().name, "RTX 4090");
        assert_eq!(lookup("rtx 4060 ti").unwrap().vram_gib, 16.0);
        assert_eq!(
            lookup("NVIDIA GeForce RTX 4060 Ti").unwrap().name,
            "RTX 4060 Ti"
        );
        assert_eq!(lookup("NVIDIA GeForce RTX 3060").unwrap().vram_gib, 12.0);
        assert_eq!(lookup("NVIDIA A100-SXM4-80GB").unwrap().vram_gib, 80.0);
        assert_eq!(lookup("NVIDIA H100 80GB HBM3").unwrap().name, "H100");
        assert_eq!(
            lookup("Tesla T4").unwrap().generation,
            GpuGeneration::Turing
        );
        assert_eq!(lookup("12GB").unwrap().vram_gib, 12.0);
        let err = lookup("voodoo 2").unwrap_err();
        assert!(err.hint().unwrap().contains("RTX 4090"));
    }

    #[test]
    fn a_card_given_by_its_memory_is_found_again_by_the_name_it_is_shown_under() {
        // A plan stores the card's name; `12GB` must read back as 12 GB.
        for (given, gib) in [("12GB", 12.0), ("12.5 gb", 12.5), ("8 GiB", 8.0)] {
            let card = lookup(given).unwrap();
            assert_eq!(card.vram_gib, gib, "{given}");
            let again = lookup(&card.name).unwrap();
            assert_eq!((again.name, again.vram_gib), (card.name, gib), "{given}");
        }
        assert!(lookup("0 GB").is_err() && lookup("100000 GB").is_err());
    }

    #[test]
    fn bf16_starts_with_ampere() {
        assert!(!GpuGeneration::from_compute_capability(7, 5).supports_bf16());
        assert!(GpuGeneration::from_compute_capability(8, 6).supports_bf16());
        assert_eq!(
            GpuGeneration::from_compute_capability(8, 9),
            GpuGeneration::Ada
        );
        assert_eq!(
            GpuGeneration::from_compute_capability(12, 0),
            GpuGeneration::Blackwell
        );
    }

    #[test]
    fn detection_never_panics_without_a_driver() {
        // On a machine without the NVIDIA driver this is None; with one, a real card.
        if let Some(g) = detect() {
            assert!(g.vram_gib > 1.0);
        }
    }
}
