//! The GPUs we know (memory, generation, rough speed), how a name given by a
//! person or by the driver is matched to exactly one of them, and which GPU
//! is here.
//!
//! [`GPU_TABLE`] is data: a card variant is an entry. A name is reduced to a
//! key (its words without vendor prefixes, in any case and spacing, plus
//! the memory size if one is given) and must then name exactly one entry:
//! `RTX 3060 Ti` is not the `RTX 3060`, and `RTX 3060` alone, which comes with
//! 8 GB or 12 GB, is refused with the two variants rather than guessed
//! ([`GpuNameError`]). [`detect`] asks NVML (the NVIDIA driver's management
//! library, loaded at run time) for the first GPU and picks the variant by the
//! memory the driver reports; on a machine without the driver it returns
//! `None` and the caller falls back to the GPU the user named with [`lookup`].

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

/// One card variant of the table.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GpuSpec {
    /// Name as NVIDIA writes it, without the `NVIDIA GeForce` prefix; a card
    /// sold with several memory sizes carries its size (`RTX 3060 12GB`).
    pub name: &'static str,
    /// Other spellings that mean this variant and no other (the driver's
    /// name where normalising the name does not already reach it).
    #[serde(skip)]
    pub aliases: &'static [&'static str],
    /// Names this variant shares with its siblings (`H100` for the PCIe, SXM
    /// and NVL cards): a name that reaches several variants is refused with
    /// them listed, unless the memory given picks one.
    #[serde(skip)]
    pub family: &'static [&'static str],
    /// Memory in GB, as the card is sold.
    pub vram_gib: f64,
    pub generation: GpuGeneration,
    pub class: GpuClass,
    /// Training throughput relative to an RTX 4090 (1.0). See [`GPU_TABLE`]
    /// for where the figures come from; good to about ±30 %.
    pub relative_speed: f64,
}

impl GpuSpec {
    /// Another spelling of this variant alone.
    const fn aka(mut self, aliases: &'static [&'static str]) -> GpuSpec {
        self.aliases = aliases;
        self
    }

    /// Names shared with sibling variants.
    const fn family(mut self, names: &'static [&'static str]) -> GpuSpec {
        self.family = names;
        self
    }

    /// Name and aliases: each reaches this variant alone.
    fn own_spellings(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    /// True when `key` names this card: its words are those of one of the
    /// card's spellings, and the memory given (if any) is the card's.
    fn answers_to(&self, key: &Key) -> bool {
        key.memory.is_none_or(|gb| same_size(gb, self.vram_gib))
            && self
                .own_spellings()
                .chain(self.family.iter().copied())
                .any(|s| Key::of(s).is_ok_and(|k| k.words == key.words))
    }
}

const fn gpu(
    name: &'static str,
    vram_gib: f64,
    generation: GpuGeneration,
    class: GpuClass,
    relative_speed: f64,
) -> GpuSpec {
    GpuSpec {
        name,
        aliases: &[],
        family: &[],
        vram_gib,
        generation,
        class,
        relative_speed,
    }
}

use crate::studio::Hint;
use GpuClass::{Consumer, Datacenter, Workstation};
use GpuGeneration::{Ada, Ampere, Blackwell, Hopper, Pascal, Turing, Volta};

/// Every card variant we know; a name must reach exactly one (see [`lookup`]).
///
/// Where the speeds come from: the RTX 4090, T4 and H100 are placed by the
/// Hugging Face FLUX QLoRA post, which ran the same job on the three. Every
/// other card is placed against its neighbours by NVIDIA's published dense
/// FP16/BF16 tensor throughput and memory bandwidth (FP32 throughput for
/// Pascal and the GTX 16 series, which have no tensor cores); laptop cards
/// run at a fraction of the desktop card's power and sit well below it. No
/// figure is a measured LoRA run on that card: they are rough (±30 %), good
/// for hours against days, not for ranking two close cards.
pub static GPU_TABLE: &[GpuSpec] = &[
    // GeForce, Pascal and the GTX 16 series (no tensor cores).
    gpu("GTX 1060 3GB", 3.0, Pascal, Consumer, 0.04),
    gpu("GTX 1060 6GB", 6.0, Pascal, Consumer, 0.05),
    gpu("GTX 1070", 8.0, Pascal, Consumer, 0.07),
    gpu("GTX 1070 Ti", 8.0, Pascal, Consumer, 0.08),
    gpu("GTX 1080", 8.0, Pascal, Consumer, 0.09),
    gpu("GTX 1080 Ti", 11.0, Pascal, Consumer, 0.12),
    gpu("GTX 1650", 4.0, Turing, Consumer, 0.05),
    gpu("GTX 1650 SUPER", 4.0, Turing, Consumer, 0.06),
    gpu("GTX 1660", 6.0, Turing, Consumer, 0.07),
    gpu("GTX 1660 SUPER", 6.0, Turing, Consumer, 0.08),
    gpu("GTX 1660 Ti", 6.0, Turing, Consumer, 0.08),
    // GeForce RTX 20 (Turing).
    gpu("RTX 2060 6GB", 6.0, Turing, Consumer, 0.15),
    gpu("RTX 2060 12GB", 12.0, Turing, Consumer, 0.16),
    gpu("RTX 2060 SUPER", 8.0, Turing, Consumer, 0.17),
    gpu("RTX 2070", 8.0, Turing, Consumer, 0.19),
    gpu("RTX 2070 SUPER", 8.0, Turing, Consumer, 0.22),
    gpu("RTX 2080", 8.0, Turing, Consumer, 0.24),
    gpu("RTX 2080 SUPER", 8.0, Turing, Consumer, 0.26),
    gpu("RTX 2080 Ti", 11.0, Turing, Consumer, 0.30),
    gpu("TITAN RTX", 24.0, Turing, Consumer, 0.33),
    // GeForce RTX 30 (Ampere).
    gpu("RTX 3050 6GB", 6.0, Ampere, Consumer, 0.10),
    gpu("RTX 3050 8GB", 8.0, Ampere, Consumer, 0.14),
    gpu("RTX 3060 8GB", 8.0, Ampere, Consumer, 0.22),
    gpu("RTX 3060 12GB", 12.0, Ampere, Consumer, 0.25),
    gpu("RTX 3060 Ti", 8.0, Ampere, Consumer, 0.30),
    gpu("RTX 3070", 8.0, Ampere, Consumer, 0.35),
    gpu("RTX 3070 Ti", 8.0, Ampere, Consumer, 0.38),
    gpu("RTX 3080 10GB", 10.0, Ampere, Consumer, 0.45),
    gpu("RTX 3080 12GB", 12.0, Ampere, Consumer, 0.48),
    gpu("RTX 3080 Ti", 12.0, Ampere, Consumer, 0.50),
    gpu("RTX 3090", 24.0, Ampere, Consumer, 0.55),
    gpu("RTX 3090 Ti", 24.0, Ampere, Consumer, 0.60),
    gpu("RTX 3050 Laptop 4GB", 4.0, Ampere, Consumer, 0.08),
    gpu("RTX 3050 Laptop 6GB", 6.0, Ampere, Consumer, 0.09),
    gpu("RTX 3050 Ti Laptop", 4.0, Ampere, Consumer, 0.09),
    gpu("RTX 3060 Laptop", 6.0, Ampere, Consumer, 0.18),
    gpu("RTX 3070 Laptop", 8.0, Ampere, Consumer, 0.25),
    gpu("RTX 3070 Ti Laptop", 8.0, Ampere, Consumer, 0.28),
    gpu("RTX 3080 Laptop 8GB", 8.0, Ampere, Consumer, 0.30),
    gpu("RTX 3080 Laptop 16GB", 16.0, Ampere, Consumer, 0.30),
    gpu("RTX 3080 Ti Laptop", 16.0, Ampere, Consumer, 0.38),
    // GeForce RTX 40 (Ada).
    gpu("RTX 4060", 8.0, Ada, Consumer, 0.28),
    gpu("RTX 4060 Ti 8GB", 8.0, Ada, Consumer, 0.35),
    gpu("RTX 4060 Ti 16GB", 16.0, Ada, Consumer, 0.35),
    gpu("RTX 4070", 12.0, Ada, Consumer, 0.45),
    gpu("RTX 4070 SUPER", 12.0, Ada, Consumer, 0.52),
    gpu("RTX 4070 Ti", 12.0, Ada, Consumer, 0.58),
    gpu("RTX 4070 Ti SUPER", 16.0, Ada, Consumer, 0.62),
    gpu("RTX 4080", 16.0, Ada, Consumer, 0.75),
    gpu("RTX 4080 SUPER", 16.0, Ada, Consumer, 0.78),
    gpu("RTX 4090", 24.0, Ada, Consumer, 1.00),
    gpu("RTX 4050 Laptop", 6.0, Ada, Consumer, 0.18),
    gpu("RTX 4060 Laptop", 8.0, Ada, Consumer, 0.22),
    gpu("RTX 4070 Laptop", 8.0, Ada, Consumer, 0.27),
    gpu("RTX 4080 Laptop", 12.0, Ada, Consumer, 0.45),
    gpu("RTX 4090 Laptop", 16.0, Ada, Consumer, 0.55),
    // GeForce RTX 50 (Blackwell).
    gpu("RTX 5060", 8.0, Blackwell, Consumer, 0.33),
    gpu("RTX 5060 Ti 8GB", 8.0, Blackwell, Consumer, 0.40),
    gpu("RTX 5060 Ti 16GB", 16.0, Blackwell, Consumer, 0.40),
    gpu("RTX 5070", 12.0, Blackwell, Consumer, 0.55),
    gpu("RTX 5070 Ti", 16.0, Blackwell, Consumer, 0.75),
    gpu("RTX 5080", 16.0, Blackwell, Consumer, 0.90),
    gpu("RTX 5090", 32.0, Blackwell, Consumer, 1.40),
    gpu("RTX 5060 Laptop", 8.0, Blackwell, Consumer, 0.25),
    gpu("RTX 5070 Laptop", 8.0, Blackwell, Consumer, 0.30),
    gpu("RTX 5070 Ti Laptop", 12.0, Blackwell, Consumer, 0.40),
    gpu("RTX 5080 Laptop", 16.0, Blackwell, Consumer, 0.55),
    gpu("RTX 5090 Laptop", 24.0, Blackwell, Consumer, 0.70),
    // Workstation cards.
    gpu("Quadro RTX 6000", 24.0, Turing, Workstation, 0.33),
    gpu("Quadro RTX 8000", 48.0, Turing, Workstation, 0.33).aka(&["RTX 8000"]),
    gpu("RTX A2000 6GB", 6.0, Ampere, Workstation, 0.15),
    gpu("RTX A2000 12GB", 12.0, Ampere, Workstation, 0.15),
    gpu("RTX A4000", 16.0, Ampere, Workstation, 0.35),
    gpu("RTX A4500", 20.0, Ampere, Workstation, 0.42),
    gpu("RTX A5000", 24.0, Ampere, Workstation, 0.50),
    gpu("RTX A6000", 48.0, Ampere, Workstation, 0.60),
    gpu("RTX 4000 Ada", 20.0, Ada, Workstation, 0.40),
    gpu("RTX 5000 Ada", 32.0, Ada, Workstation, 0.75),
    gpu("RTX 6000 Ada", 48.0, Ada, Workstation, 1.00),
    gpu("RTX PRO 6000 Blackwell", 96.0, Blackwell, Workstation, 1.50).aka(&[
        "RTX PRO 6000",
        "RTX PRO 6000 Blackwell Workstation Edition",
        "RTX PRO 6000 Blackwell Server Edition",
    ]),
    // Data-centre cards, as clouds rent them.
    gpu("Tesla P40", 24.0, Pascal, Datacenter, 0.10),
    gpu("Tesla P100 12GB", 12.0, Pascal, Datacenter, 0.15).family(&["P100 PCIe"]),
    gpu("Tesla P100 16GB", 16.0, Pascal, Datacenter, 0.15)
        .aka(&["P100 SXM"])
        .family(&["P100 PCIe"]),
    gpu("Tesla V100 16GB", 16.0, Volta, Datacenter, 0.40).family(&["V100 SXM", "V100 PCIe"]),
    gpu("Tesla V100 32GB", 32.0, Volta, Datacenter, 0.40).family(&["V100 SXM", "V100 PCIe"]),
    gpu("Tesla T4", 16.0, Turing, Datacenter, 0.17),
    gpu("A10", 24.0, Ampere, Datacenter, 0.45),
    gpu("A10G", 24.0, Ampere, Datacenter, 0.40),
    gpu("A40", 48.0, Ampere, Datacenter, 0.60),
    gpu("A100 40GB", 40.0, Ampere, Datacenter, 1.30).family(&["A100 SXM", "A100 PCIe"]),
    gpu("A100 80GB", 80.0, Ampere, Datacenter, 1.35).family(&["A100 SXM", "A100 PCIe"]),
    gpu("L4", 24.0, Ada, Datacenter, 0.30),
    gpu("L40", 48.0, Ada, Datacenter, 0.90),
    gpu("L40S", 48.0, Ada, Datacenter, 1.05),
    gpu("H100 PCIe", 80.0, Hopper, Datacenter, 1.50).family(&["H100"]),
    // The driver calls the SXM card `NVIDIA H100 80GB HBM3`.
    gpu("H100 SXM", 80.0, Hopper, Datacenter, 2.00)
        .aka(&["H100 HBM3"])
        .family(&["H100"]),
    gpu("H100 NVL", 94.0, Hopper, Datacenter, 1.80).family(&["H100"]),
    gpu("H200", 141.0, Hopper, Datacenter, 2.10),
    gpu("H200 NVL", 141.0, Hopper, Datacenter, 1.90),
    gpu("B200", 180.0, Blackwell, Datacenter, 3.00),
];

/// The GPU an estimate compares against.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Gpu {
    /// Name: the table's (which [`lookup`] finds again), or the driver's for
    /// a detected card the table lacks.
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

    /// A card known only by its memory (`12GB`), with the speed of an RTX
    /// 3060-class GPU. Its name (`12 GB GPU`) reads back as the same card.
    fn of_size(gb: f64) -> Gpu {
        Gpu {
            name: format!("{gb} GB GPU"),
            vram_gib: gb,
            generation: GpuGeneration::Ampere,
            relative_speed: 0.3,
            source: GpuSource::Named,
        }
    }
}

/// A GPU name that does not lead to exactly one card.
#[derive(Debug, thiserror::Error)]
pub enum GpuNameError {
    /// No card of the table has this name.
    #[error("`{given}` is not a GPU Ategnatos knows")]
    Unknown {
        given: String,
        /// The table's names nearest to the one given, nearest first.
        closest: Vec<&'static str>,
        /// The memory the name gave, if any.
        memory: Option<f64>,
    },
    /// The name fits several variants (memory sizes, or PCIe and SXM cards).
    #[error("{}", ambiguous_message(.given, .variants))]
    Ambiguous {
        given: String,
        variants: Vec<&'static GpuSpec>,
    },
    /// The card is known, but not with the memory given.
    #[error("`{given}`: that card comes with {}, not {} GB", sizes(.variants), gb(*.memory))]
    WrongMemory {
        given: String,
        memory: f64,
        variants: Vec<&'static GpuSpec>,
    },
    /// Two memory sizes, or one no card has (0 GB, 100000 GB).
    #[error("`{given}` does not give one memory size from 1 to 1024 GB")]
    BadMemory { given: String },
}

impl Hint for GpuNameError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            GpuNameError::Unknown {
                closest, memory, ..
            } => {
                let size = format!("`{}GB`", gb(memory.unwrap_or(12.0)));
                if closest.is_empty() {
                    format!(
                        "name the card as its box or the driver writes it (`RTX 4090`, \
                         `RTX 3060 12GB`, `A100 80GB`, `Tesla T4`), or give its memory alone, \
                         as {size}"
                    )
                } else {
                    format!(
                        "the nearest names Ategnatos knows are {}; or give the card's memory \
                         alone, as {size}",
                        or_list(closest.iter().map(|n| format!("`{n}`")))
                    )
                }
            }
            GpuNameError::Ambiguous { variants, .. } => {
                let names = or_list(variants.iter().map(|v| format!("`{}`", v.name)));
                if distinct_sizes(variants) {
                    let largest = variants.iter().map(|v| v.vram_gib).fold(0.0, f64::max);
                    format!(
                        "say {names}, or give the memory alone as `{}GB`",
                        gb(largest)
                    )
                } else {
                    format!("say which: {names}")
                }
            }
            GpuNameError::WrongMemory {
                memory, variants, ..
            } => format!(
                "say {}, or, for a card with {} GB, give the memory alone as `{}GB`",
                or_list(variants.iter().map(|v| format!("`{}`", v.name))),
                gb(*memory),
                gb(*memory)
            ),
            GpuNameError::BadMemory { .. } => "give the memory in GB, from 1 to 1024 (`12GB`), \
                 or the card's name (`RTX 4060 Ti 16GB`)"
                .to_string(),
        })
    }
}

fn ambiguous_message(given: &str, variants: &[&GpuSpec]) -> String {
    if distinct_sizes(variants) {
        format!("`{given}` comes with {}", sizes(variants))
    } else {
        format!(
            "`{given}` is more than one card: {}",
            and_list(
                variants
                    .iter()
                    .map(|v| format!("{} ({} GB)", v.name, gb(v.vram_gib)))
            )
        )
    }
}

/// True when no two variants have the same memory, so the memory picks one.
fn distinct_sizes(variants: &[&GpuSpec]) -> bool {
    variants.iter().enumerate().all(|(i, a)| {
        variants[i + 1..]
            .iter()
            .all(|b| !same_size(a.vram_gib, b.vram_gib))
    })
}

/// `8 GB or 12 GB`.
fn sizes(variants: &[&GpuSpec]) -> String {
    let mut gbs: Vec<f64> = variants.iter().map(|v| v.vram_gib).collect();
    gbs.sort_by(f64::total_cmp);
    gbs.dedup_by(|a, b| same_size(*a, *b));
    or_list(gbs.into_iter().map(|g| format!("{} GB", gb(g))))
}

/// `16`, `12.5`.
fn gb(x: f64) -> String {
    format!("{x}")
}

fn or_list(items: impl Iterator<Item = String>) -> String {
    joined(items.collect(), "or")
}

fn and_list(items: impl Iterator<Item = String>) -> String {
    joined(items.collect(), "and")
}

fn joined(mut items: Vec<String>, word: &str) -> String {
    match items.pop() {
        None => String::new(),
        Some(last) if items.is_empty() => last,
        Some(last) => format!("{} {word} {last}", items.join(", ")),
    }
}

fn same_size(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.05
}

/// A GPU name reduced to what tells cards apart: `NVIDIA GeForce RTX
/// 4060-Ti 16 GB`, `rtx4060ti 16gb` and `RTX 4060 Ti 16GB` are one key.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    /// Lower-case words, sorted, without vendor words (`NVIDIA`, `GeForce`,
    /// `Tesla`, `RTX`, `GTX`, `GPU`), with joined suffixes split (`4070tis` →
    /// `4070 ti super`), `SXM2`/`SXM4`/`SXM5` as `sxm`, and `Laptop`,
    /// `Mobile` and `Max-Q` as `laptop`.
    words: Vec<String>,
    /// The memory size in GB, wherever the name gives it (`12GB`, `12 GB`,
    /// `12G`, `12 GiB`, `A100-SXM4-80GB`).
    memory: Option<f64>,
}

/// A name with two memory sizes, or one no card has.
#[derive(Debug)]
struct BadMemory;

/// Words that do not tell NVIDIA cards apart.
const NOISE: &[&str] = &[
    "nvidia",
    "geforce",
    "tesla",
    "rtx",
    "gtx",
    "gpu",
    "graphics",
    "with",
    "design",
    "generation",
    "edition",
];

/// How memory sizes are written after the number.
const UNITS: &[&str] = &["gib", "gb", "g"];

impl Key {
    /// The key of `name`; `Err` when it gives two memory sizes, or one
    /// outside 1–1024 GB.
    fn of(name: &str) -> Result<Key, BadMemory> {
        let text: String = name
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '.' {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        let tokens: Vec<&str> = text
            .split_whitespace()
            .map(|t| t.trim_matches('.'))
            .filter(|t| !t.is_empty())
            .collect();
        let mut words: Vec<String> = Vec::new();
        let mut memory = None;
        let mut set_memory = |gb: f64| {
            if memory.is_some() || !(1.0..=1024.0).contains(&gb) {
                return Err(BadMemory);
            }
            memory = Some(gb);
            Ok(())
        };
        let mut i = 0;
        while i < tokens.len() {
            let token = tokens[i];
            let next = tokens.get(i + 1).copied();
            i += 1;
            if let Some(gb) = with_unit(token) {
                set_memory(gb)?;
                continue;
            }
            if let (Some(gb), Some(unit)) = (number(token), next)
                && UNITS.contains(&unit)
            {
                set_memory(gb)?;
                i += 1;
                continue;
            }
            if token == "max" && next == Some("q") {
                words.push("laptop".into());
                i += 1;
                continue;
            }
            if NOISE.contains(&token) {
                continue;
            }
            let token = ["rtx", "gtx"]
                .iter()
                .find_map(|p| token.strip_prefix(p).filter(|rest| !rest.is_empty()))
                .unwrap_or(token);
            match token {
                "laptop" | "mobile" | "notebook" | "maxq" => words.push("laptop".into()),
                "sxm2" | "sxm3" | "sxm4" | "sxm5" => words.push("sxm".into()),
                _ => words.extend(split_suffix(token).into_iter().map(String::from)),
            }
        }
        words.sort();
        words.dedup();
        Ok(Key { words, memory })
    }
}

/// `12gb`, `12g`, `12.5gib` → the number.
fn with_unit(token: &str) -> Option<f64> {
    UNITS
        .iter()
        .find_map(|u| token.strip_suffix(u).and_then(number))
}

fn number(token: &str) -> Option<f64> {
    let plain = token.starts_with(|c: char| c.is_ascii_digit())
        && token.chars().all(|c| c.is_ascii_digit() || c == '.');
    if plain { token.parse().ok() } else { None }
}

/// `4070ti` → `4070 ti`, `4080s` → `4080 super`, `4070tis` → `4070 ti super`;
/// other words as they are.
fn split_suffix(token: &str) -> Vec<&str> {
    let digits = token.chars().take_while(char::is_ascii_digit).count();
    let (model, suffix) = token.split_at(digits);
    let parts: &[&'static str] = match suffix {
        "ti" => &["ti"],
        "s" | "super" => &["super"],
        "tis" | "tisuper" => &["ti", "super"],
        _ => &[],
    };
    if digits >= 3 && !parts.is_empty() {
        std::iter::once(model)
            .chain(parts.iter().copied())
            .collect()
    } else if token == "tis" {
        vec!["ti", "super"]
    } else {
        vec![token]
    }
}

/// The cards `key` names: those one of whose spellings has its words, and
/// whose memory is the one given (if any).
fn matching(key: &Key) -> Vec<&'static GpuSpec> {
    GPU_TABLE.iter().filter(|g| g.answers_to(key)).collect()
}

/// Finds the one card a name means, ignoring case, spacing, hyphens and the
/// `NVIDIA GeForce` prefix; a memory size in the name (`RTX 3080 12GB`)
/// picks the variant. A name that fits several variants is refused with them
/// listed, never guessed. A bare memory size (`12GB`, `8 gb`) gives an
/// unnamed card of that size with the speed of an RTX 3060-class GPU.
pub fn lookup(name: &str) -> Result<Gpu, GpuNameError> {
    let given = name.trim().to_string();
    let Ok(key) = Key::of(name) else {
        return Err(GpuNameError::BadMemory { given });
    };
    if key.words.is_empty() {
        return match key.memory {
            Some(gb) => Ok(Gpu::of_size(gb)),
            None => Err(GpuNameError::Unknown {
                given,
                closest: Vec::new(),
                memory: None,
            }),
        };
    }
    match matching(&key).as_slice() {
        [one] => Ok(Gpu::named(one)),
        [] => {
            if let Some(memory) = key.memory {
                let any_size = matching(&Key {
                    memory: None,
                    ..key.clone()
                });
                if !any_size.is_empty() {
                    return Err(GpuNameError::WrongMemory {
                        given,
                        memory,
                        variants: any_size,
                    });
                }
            }
            Err(GpuNameError::Unknown {
                given,
                closest: closest(&key),
                memory: key.memory,
            })
        }
        several => Err(GpuNameError::Ambiguous {
            given,
            variants: several.to_vec(),
        }),
    }
}

/// Up to five table names near an unknown one: first those sharing its
/// model number (`6000` in `RTX 6000`), then another word (`Ti`), then
/// those within two letters of it; nearest first within each.
fn closest(key: &Key) -> Vec<&'static str> {
    let wanted = key.words.join(" ");
    let mut near: Vec<((u8, usize), &'static str)> = GPU_TABLE
        .iter()
        .filter_map(|g| {
            g.own_spellings()
                .filter_map(|s| Key::of(s).ok())
                .filter_map(|k| {
                    let shared = |w: &&String| key.words.contains(*w);
                    let tier = if k
                        .words
                        .iter()
                        .filter(shared)
                        .any(|w| w.contains(char::is_numeric))
                    {
                        0
                    } else if k.words.iter().any(|w| shared(&w)) {
                        1
                    } else {
                        2
                    };
                    let d = edit_distance(&wanted, &k.words.join(" "));
                    (tier < 2 || d <= 2).then_some((tier, d))
                })
                .min()
                .map(|rank| (rank, g.name))
        })
        .collect();
    near.sort_by_key(|&(rank, _)| rank);
    near.into_iter().take(5).map(|(_, name)| name).collect()
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The table's variant for the card the driver names, chosen by the memory
/// it reports where the name fits several (`NVIDIA GeForce RTX 3060` with
/// 11.8 GiB is the 12 GB card). `None` for a card the table lacks, or when
/// the memory does not tell two variants apart.
fn identify(driver_name: &str, reported_gib: f64) -> Option<&'static GpuSpec> {
    let key = Key::of(driver_name).ok()?;
    if key.words.is_empty() {
        return None;
    }
    let found = matching(&key);
    let off = |g: &GpuSpec| (g.vram_gib - reported_gib).abs();
    let best = found
        .iter()
        .copied()
        .min_by(|a, b| off(a).total_cmp(&off(b)))?;
    let tied = found.iter().filter(|g| off(g) == off(best)).count();
    (tied == 1).then_some(best)
}

/// The card the driver reports, named as the table names it when known (so
/// a plan that stores the name finds the same card again), with the memory
/// the driver counts.
fn from_driver(name: String, total_gib: f64, generation: Option<GpuGeneration>) -> Gpu {
    let known = identify(&name, total_gib);
    Gpu {
        name: known.map_or(name, |k| k.name.to_string()),
        vram_gib: total_gib,
        generation: generation
            .or(known.map(|k| k.generation))
            .unwrap_or(GpuGeneration::Ampere),
        relative_speed: known.map_or(0.5, |k| k.relative_speed),
        source: GpuSource::Detected,
    }
}

/// Asks the NVIDIA driver for the first GPU. `None` without a driver or GPU.
pub fn detect() -> Option<Gpu> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let device = nvml.device_by_index(0).ok()?;
    let name = device.name().ok()?;
    let total = device.memory_info().ok()?.total;
    let generation = device
        .cuda_compute_capability()
        .map(|cc| GpuGeneration::from_compute_capability(cc.major as u32, cc.minor as u32))
        .ok();
    Some(from_driver(
        name,
        total as f64 / (1u64 << 30) as f64,
        generation,
    ))
}

/// The GPU to plan for: the one named, else the one detected.
pub fn resolve(named: Option<&str>) -> Result<Option<Gpu>, GpuNameError> {
    resolve_with(named, detect)
}

fn resolve_with(
    named: Option<&str>,
    detect: impl FnOnce() -> Option<Gpu>,
) -> Result<Option<Gpu>, GpuNameError> {
    let Some(name) = named.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(detect());
    };
    match lookup(name) {
        Ok(gpu) => Ok(Some(gpu)),
        // A detected card the table lacks is stored in the plan under the
        // driver's name: on the same machine, that name means that card.
        Err(unknown @ GpuNameError::Unknown { .. }) => match detect() {
            Some(here) if here.name.eq_ignore_ascii_case(name) => Ok(Some(here)),
            _ => Err(unknown),
        },
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(given: &str) -> String {
        match lookup(given) {
            Ok(g) => g.name,
            Err(e) => panic!("{given}: {e}"),
        }
    }

    fn memory_of(given: &str) -> f64 {
        match lookup(given) {
            Ok(g) => g.vram_gib,
            Err(e) => panic!("{given}: {e}"),
        }
    }

    /// The cards a name reaches, by name.
    fn reached(given: &str) -> Vec<&'static str> {
        Key::of(given)
            .map(|k| matching(&k).iter().map(|g| g.name).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_ti_a_memory_variant_or_a_12gb_card_is_not_taken_for_another() {
        // Issue 13: each of these used to be matched by a subset of its words.
        assert_eq!(name_of("RTX 3060 Ti"), "RTX 3060 Ti");
        assert_eq!(memory_of("RTX 3060 Ti"), 8.0);
        assert_eq!(name_of("RTX 4060 Ti 8GB"), "RTX 4060 Ti 8GB");
        assert_eq!(memory_of("RTX 4060 Ti 8GB"), 8.0);
        assert_eq!(memory_of("RTX 4060 Ti 16GB"), 16.0);
        assert_eq!(memory_of("RTX 3080 12GB"), 12.0);
        assert_eq!(memory_of("RTX 3080 10GB"), 10.0);
        // Ti, SUPER, Ti SUPER and the laptop card are four other cards.
        let four = [
            "RTX 4070",
            "RTX 4070 Ti",
            "RTX 4070 SUPER",
            "RTX 4070 Ti SUPER",
            "RTX 4070 Laptop",
        ];
        for n in four {
            assert_eq!(name_of(n), n);
        }
        assert_eq!(memory_of("RTX 4090 Laptop"), 16.0);
        assert_eq!(memory_of("RTX 4090"), 24.0);
    }

    #[test]
    fn names_as_people_and_drivers_write_them() {
        for (given, card) in [
            ("4090", "RTX 4090"),
            ("rtx4090", "RTX 4090"),
            ("RTX 4090 (24 GB)", "RTX 4090"),
            ("NVIDIA GeForce RTX 3060 Ti", "RTX 3060 Ti"),
            ("3060ti", "RTX 3060 Ti"),
            ("rtx 4060ti 16gb", "RTX 4060 Ti 16GB"),
            ("RTX 4060 Ti 16 GiB", "RTX 4060 Ti 16GB"),
            ("4060-Ti-8G", "RTX 4060 Ti 8GB"),
            ("rtx 3080 12 gb", "RTX 3080 12GB"),
            ("4070tis", "RTX 4070 Ti SUPER"),
            ("RTX 4070 TiS", "RTX 4070 Ti SUPER"),
            ("4080s", "RTX 4080 SUPER"),
            ("gtx1080ti", "GTX 1080 Ti"),
            ("NVIDIA GeForce RTX 4090 Laptop GPU", "RTX 4090 Laptop"),
            ("RTX 4080 Mobile", "RTX 4080 Laptop"),
            ("RTX 4070 Max-Q", "RTX 4070 Laptop"),
            (
                "NVIDIA GeForce RTX 3050 6GB Laptop GPU",
                "RTX 3050 Laptop 6GB",
            ),
            ("Tesla T4", "Tesla T4"),
            ("t4", "Tesla T4"),
            ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
            ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
            ("NVIDIA A100 80GB PCIe", "A100 80GB"),
            ("a100-80g", "A100 80GB"),
            ("NVIDIA H100 80GB HBM3", "H100 SXM"),
            ("NVIDIA H100 PCIe", "H100 PCIe"),
            ("H100 SXM5", "H100 SXM"),
            ("NVIDIA H100 NVL", "H100 NVL"),
            ("NVIDIA H200", "H200"),
            ("Tesla V100-SXM2-32GB", "Tesla V100 32GB"),
            ("Tesla P100-PCIE-16GB", "Tesla P100 16GB"),
            ("NVIDIA RTX A6000", "RTX A6000"),
            ("a6000", "RTX A6000"),
            ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada"),
            ("Quadro RTX 8000", "Quadro RTX 8000"),
            ("RTX 8000", "Quadro RTX 8000"),
            (
                "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
                "RTX PRO 6000 Blackwell",
            ),
            ("NVIDIA A10G", "A10G"),
            ("NVIDIA A10", "A10"),
            ("NVIDIA L40S", "L40S"),
            ("NVIDIA GeForce GTX 1660 SUPER", "GTX 1660 SUPER"),
            ("NVIDIA GeForce GTX 1060 6GB", "GTX 1060 6GB"),
            ("NVIDIA TITAN RTX", "TITAN RTX"),
        ] {
            assert_eq!(name_of(given), card, "{given}");
        }
        assert_eq!(
            lookup("Tesla T4").unwrap().generation,
            GpuGeneration::Turing
        );
    }

    #[test]
    fn every_name_and_alias_reaches_its_own_card_and_no_other() {
        for g in GPU_TABLE {
            for spelling in g.own_spellings() {
                let mut forms = vec![
                    spelling.to_string(),
                    spelling.to_lowercase(),
                    spelling.to_uppercase(),
                    spelling.replace(' ', "-"),
                    format!("NVIDIA GeForce {spelling}"),
                    format!("  {spelling}  "),
                ];
                // With the card's memory added, where the spelling has none.
                if Key::of(spelling).unwrap().memory.is_none() {
                    forms.push(format!("{spelling} {}GB", gb(g.vram_gib)));
                }
                for form in forms {
                    assert_eq!(
                        reached(&form),
                        [g.name],
                        "`{form}` must reach {} alone",
                        g.name
                    );
                    assert_eq!(name_of(&form), g.name, "{form}");
                }
            }
        }
    }

    #[test]
    fn the_table_holds_together() {
        for (i, g) in GPU_TABLE.iter().enumerate() {
            assert!(
                GPU_TABLE[i + 1..].iter().all(|o| o.name != g.name),
                "{} twice",
                g.name
            );
            assert!(g.vram_gib >= 1.0 && g.relative_speed > 0.0, "{}", g.name);
            // A memory size written in a spelling is the card's.
            for s in g.own_spellings().chain(g.family.iter().copied()) {
                let k = Key::of(s).unwrap();
                assert!(!k.words.is_empty(), "{s}");
                if let Some(m) = k.memory {
                    assert!(same_size(m, g.vram_gib), "{s} on {}", g.name);
                }
            }
            // A family name is shared: alone it reaches several cards.
            for f in g.family {
                let found = reached(f);
                assert!(
                    found.len() >= 2 && found.contains(&g.name),
                    "{f}: {found:?}"
                );
            }
        }
        // bf16 follows the generation; the table's generations are right for that.
        assert!(!lookup("Tesla T4").unwrap().generation.supports_bf16());
        assert!(lookup("RTX 3060 12GB").unwrap().generation.supports_bf16());
    }

    #[test]
    fn a_name_with_several_memory_sizes_is_refused_with_the_variants() {
        for (given, said) in [
            ("RTX 4060 Ti", "8 GB or 16 GB"),
            ("NVIDIA GeForce RTX 4060 Ti", "8 GB or 16 GB"),
            ("RTX 3060", "8 GB or 12 GB"),
            ("3080", "10 GB or 12 GB"),
            ("RTX 2060", "6 GB or 12 GB"),
            ("RTX 3050", "6 GB or 8 GB"),
            ("RTX 5060 Ti", "8 GB or 16 GB"),
            ("RTX 3080 Laptop", "8 GB or 16 GB"),
            ("A100", "40 GB or 80 GB"),
            ("NVIDIA A100-SXM4", "40 GB or 80 GB"),
            ("V100", "16 GB or 32 GB"),
        ] {
            let err = lookup(given).unwrap_err();
            assert!(
                matches!(err, GpuNameError::Ambiguous { .. }),
                "{given}: {err}"
            );
            assert_eq!(err.to_string(), format!("`{given}` comes with {said}"));
            let hint = err.hint().unwrap();
            // Every variant named in the hint is a name that is accepted.
            let GpuNameError::Ambiguous { variants, .. } = &err else {
                unreachable!()
            };
            for v in variants {
                assert!(hint.contains(&format!("`{}`", v.name)), "{hint}");
                assert_eq!(name_of(v.name), v.name);
            }
        }
        let err = lookup("RTX 4060 Ti").unwrap_err();
        assert_eq!(
            err.hint().unwrap(),
            "say `RTX 4060 Ti 8GB` or `RTX 4060 Ti 16GB`, or give the memory alone as `16GB`"
        );
        // Cards with the same memory are told apart by name only.
        let err = lookup("H100").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`H100` is more than one card: H100 PCIe (80 GB), H100 SXM (80 GB) and H100 NVL (94 GB)"
        );
        assert_eq!(
            err.hint().unwrap(),
            "say which: `H100 PCIe`, `H100 SXM` or `H100 NVL`"
        );
        // The memory narrows them down, to one where it can.
        assert_eq!(name_of("H100 94GB"), "H100 NVL");
        let err = lookup("H100 80GB").unwrap_err();
        assert!(
            err.to_string()
                .contains("H100 PCIe (80 GB) and H100 SXM (80 GB)"),
            "{err}"
        );
    }

    #[test]
    fn a_memory_the_card_does_not_come_with_is_refused() {
        let err = lookup("RTX 4090 16GB").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`RTX 4090 16GB`: that card comes with 24 GB, not 16 GB"
        );
        assert!(err.hint().unwrap().contains("`RTX 4090`"), "{err:?}");
        let err = lookup("RTX 3060 11GB").unwrap_err();
        assert!(
            err.to_string().contains("8 GB or 12 GB, not 11 GB"),
            "{err}"
        );
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("`RTX 3060 12GB`") && hint.contains("`11GB`"),
            "{hint}"
        );
        for bad in ["A100 40GB 80GB", "0 GB", "100000 GB"] {
            let err = lookup(bad).unwrap_err();
            assert!(
                matches!(err, GpuNameError::BadMemory { .. }),
                "{bad}: {err}"
            );
            assert!(err.hint().unwrap().contains("`12GB`"));
        }
    }

    #[test]
    fn an_unknown_name_suggests_the_nearest_and_never_guesses() {
        let err = lookup("RTX 4095").unwrap_err();
        assert_eq!(err.to_string(), "`RTX 4095` is not a GPU Ategnatos knows");
        assert!(
            err.hint().unwrap().contains("`RTX 4090`"),
            "{:?}",
            err.hint()
        );
        // `RTX 6000` is the Quadro of 2018 or the Ada of 2022: both are offered, neither taken.
        let err = lookup("RTX 6000").unwrap_err();
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("`RTX 6000 Ada`") && hint.contains("`Quadro RTX 6000`"),
            "{hint}"
        );
        // Nothing near: examples, and the memory the name gave.
        let err = lookup("voodoo 2 12GB").unwrap_err();
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("`RTX 4090`") && hint.contains("`12GB`"),
            "{hint}"
        );
        assert!(matches!(
            lookup("").unwrap_err(),
            GpuNameError::Unknown { .. }
        ));
        // A word too many is another card, not this one.
        assert!(lookup("RTX 4090 Ti").is_err());
        assert!(lookup("RTX 4060 Ti Laptop").is_err());
    }

    #[test]
    fn a_card_given_by_its_memory_is_found_again_by_the_name_it_is_shown_under() {
        // A plan stores the card's name; `12GB` must read back as 12 GB.
        for (given, gib) in [
            ("12GB", 12.0),
            ("12.5 gb", 12.5),
            ("8 GiB", 8.0),
            ("24G", 24.0),
        ] {
            let card = lookup(given).unwrap();
            assert_eq!(card.vram_gib, gib, "{given}");
            let again = lookup(&card.name).unwrap();
            assert_eq!((again.name, again.vram_gib), (card.name, gib), "{given}");
        }
        assert!(lookup("0 GB").is_err() && lookup("100000 GB").is_err());
    }

    #[test]
    fn driver_names_pick_the_variant_by_the_memory_reported() {
        // Names as NVML writes them, with the memory it reports (GiB).
        for (driver, reported, card) in [
            ("NVIDIA GeForce RTX 4060 Ti", 15.99, "RTX 4060 Ti 16GB"),
            ("NVIDIA GeForce RTX 4060 Ti", 7.99, "RTX 4060 Ti 8GB"),
            ("NVIDIA GeForce RTX 3060", 11.76, "RTX 3060 12GB"),
            ("NVIDIA GeForce RTX 3060", 8.0, "RTX 3060 8GB"),
            ("NVIDIA GeForce RTX 3080", 11.76, "RTX 3080 12GB"),
            ("NVIDIA GeForce RTX 3080", 10.0, "RTX 3080 10GB"),
            ("NVIDIA GeForce RTX 3060 Ti", 8.0, "RTX 3060 Ti"),
            (
                "NVIDIA GeForce RTX 3080 Laptop GPU",
                15.7,
                "RTX 3080 Laptop 16GB",
            ),
            (
                "NVIDIA GeForce RTX 4090 Laptop GPU",
                15.99,
                "RTX 4090 Laptop",
            ),
            ("NVIDIA A100-SXM4-80GB", 79.15, "A100 80GB"),
            ("NVIDIA A100-PCIE-40GB", 39.4, "A100 40GB"),
            ("NVIDIA H100 80GB HBM3", 79.6, "H100 SXM"),
            ("NVIDIA H100 PCIe", 79.6, "H100 PCIe"),
            ("Tesla T4", 15.0, "Tesla T4"),
            ("Tesla V100-SXM2-16GB", 15.8, "Tesla V100 16GB"),
            ("NVIDIA L4", 22.5, "L4"),
            ("NVIDIA RTX A6000", 47.99, "RTX A6000"),
        ] {
            let gpu = from_driver(driver.into(), reported, None);
            assert_eq!(gpu.name, card, "{driver} with {reported} GiB");
            assert_eq!(gpu.vram_gib, reported, "the driver's count is kept");
            assert_eq!(gpu.source, GpuSource::Detected);
            // The name a plan stores reads back as the same card.
            assert_eq!(name_of(&gpu.name), card);
        }
        // A card the table lacks keeps the driver's name and memory.
        let odd = from_driver("NVIDIA Foo 9000".into(), 20.0, Some(GpuGeneration::Hopper));
        assert_eq!((odd.name.as_str(), odd.vram_gib), ("NVIDIA Foo 9000", 20.0));
        assert_eq!(odd.generation, GpuGeneration::Hopper);
    }

    #[test]
    fn a_plan_naming_the_detected_card_the_table_lacks_still_finds_it() {
        let here = || Some(from_driver("NVIDIA Foo 9000".into(), 20.0, None));
        let found = resolve_with(Some("NVIDIA Foo 9000"), here)
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.name.as_str(), found.source),
            ("NVIDIA Foo 9000", GpuSource::Detected)
        );
        // Another unknown name is still refused, and a known one is the table's card.
        assert!(resolve_with(Some("NVIDIA Bar 1"), here).is_err());
        assert_eq!(
            resolve_with(Some("4090"), here).unwrap().unwrap().name,
            "RTX 4090"
        );
        assert!(matches!(
            resolve_with(Some("RTX 3060"), here),
            Err(GpuNameError::Ambiguous { .. })
        ));
        assert_eq!(
            resolve_with(Some("  "), here).unwrap().unwrap().name,
            "NVIDIA Foo 9000"
        );
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
