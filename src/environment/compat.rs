//! Driver ↔ CUDA ↔ PyTorch ↔ GPU compatibility, as data
//! (`fixtures/env/compat.toml`, built into the binary), and the checks that
//! turn a mismatch into a message and the one command that fixes it.
//!
//! The table says which CUDA each driver runs, which CUDA builds each
//! PyTorch release ships (with its torchvision), and which CUDA each GPU
//! generation needs. The checks are pure functions of versions, so they are
//! tested on the version strings real machines report.

use std::cmp::Ordering;
use std::sync::OnceLock;

use serde::Deserialize;

const TABLE_TOML: &str = include_str!("../../fixtures/env/compat.toml");

/// PyTorch's wheel index; a CUDA build is `<this>/cu124`.
pub const TORCH_INDEX: &str = "https://download.pytorch.org/whl";

/// A dotted version (`550.54.14`, `12.4`, `2.5.1+cu124` reads as 2.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub Vec<u32>);

impl Version {
    /// The leading numbers of `text`; `None` when it starts with none.
    pub fn parse(text: &str) -> Option<Version> {
        let core = text.trim().split(['+', ' ', '-']).next().unwrap_or("");
        let parts: Vec<u32> = core
            .split('.')
            .map_while(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        (!parts.is_empty()).then_some(Version(parts))
    }

    /// CUDA as NVML reports it: 12040 → 12.4.
    pub fn from_cuda_int(n: i32) -> Version {
        Version(vec![(n / 1000) as u32, ((n % 1000) / 10) as u32])
    }

    fn part(&self, i: usize) -> u32 {
        self.0.get(i).copied().unwrap_or(0)
    }

    /// Same major and minor.
    pub fn same_minor(&self, other: &Version) -> bool {
        self.part(0) == other.part(0) && self.part(1) == other.part(1)
    }

    /// `cu124` for 12.4.
    pub fn cuda_tag(&self) -> String {
        format!("cu{}{}", self.part(0), self.part(1))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(f, "{}", parts.join("."))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CudaRow {
    pub version: String,
    pub linux: String,
    pub windows: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TorchRow {
    pub version: String,
    pub torchvision: String,
    pub cuda: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ArchRow {
    pub compute_capability: String,
    pub generation: String,
    pub min_cuda: String,
}

/// The whole table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompatTable {
    pub cuda: Vec<CudaRow>,
    pub torch: Vec<TorchRow>,
    pub arch: Vec<ArchRow>,
}

/// The table built into this binary. A table that does not parse (a bad
/// edit of the data file) is caught by the tests; here it reads as empty,
/// so the checks find nothing rather than stop the program.
pub fn table() -> &'static CompatTable {
    static TABLE: OnceLock<CompatTable> = OnceLock::new();
    TABLE.get_or_init(|| toml::from_str(TABLE_TOML).unwrap_or_default())
}

fn v(text: &str) -> Version {
    Version::parse(text).unwrap_or(Version(vec![0]))
}

impl CompatTable {
    fn min_driver(row: &CudaRow) -> Version {
        v(if cfg!(windows) {
            &row.windows
        } else {
            &row.linux
        })
    }

    /// The newest CUDA the driver runs.
    pub fn max_cuda_for_driver(&self, driver: &Version) -> Option<Version> {
        self.cuda
            .iter()
            .filter(|r| Self::min_driver(r) <= *driver)
            .map(|r| v(&r.version))
            .max()
    }

    /// The oldest driver that runs `cuda` (the row for its minor, or the
    /// next newer row).
    pub fn min_driver_for_cuda(&self, cuda: &Version) -> Option<Version> {
        self.cuda
            .iter()
            .filter(|r| v(&r.version) >= Version(vec![cuda.part(0), cuda.part(1)]))
            .min_by_key(|r| v(&r.version))
            .map(Self::min_driver)
    }

    /// The release row of the minor series `torch` belongs to.
    pub fn torch_release(&self, torch: &Version) -> Option<&TorchRow> {
        self.torch.iter().find(|r| v(&r.version).same_minor(torch))
    }

    /// The generation row for a compute capability (the closest at or below it).
    pub fn arch_for(&self, cc: &Version) -> Option<&ArchRow> {
        self.arch
            .iter()
            .filter(|r| v(&r.compute_capability) <= *cc)
            .max_by_key(|r| v(&r.compute_capability))
    }
}

/// A version problem and the command that fixes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Mismatch {
    pub message: String,
    /// What to do, with the exact command.
    pub fix: String,
}

/// `pip install torch==… torchvision==… --index-url …/cuXYZ`.
pub fn pip_torch_line(release: &TorchRow, cuda: &Version) -> String {
    format!(
        "pip install torch=={} torchvision=={} --index-url {TORCH_INDEX}/{}",
        release.version,
        release.torchvision,
        cuda.cuda_tag()
    )
}

/// The newest CUDA build of `release` that a driver supporting `driver_cuda` runs.
fn best_build(release: &TorchRow, driver_cuda: &Version) -> Option<Version> {
    release
        .cuda
        .iter()
        .map(|c| v(c))
        .filter(|c| c <= driver_cuda)
        .max()
}

fn driver_major(d: &Version) -> u32 {
    d.part(0)
}

/// Does a PyTorch built for `torch_cuda` run on a driver that supports CUDA
/// up to `driver_cuda`? `torch_cuda` `None` is a CPU-only build, a problem
/// only where there is a GPU to use.
pub fn check_torch_against_driver(
    table: &CompatTable,
    torch_version: &str,
    torch_cuda: Option<&str>,
    driver_cuda: &Version,
    driver_version: Option<&str>,
) -> Option<Mismatch> {
    let torch = Version::parse(torch_version)?;
    let release = table.torch_release(&torch);
    let install_fitting = |why_driver: &str| -> String {
        match release.and_then(|r| best_build(r, driver_cuda).map(|c| (r, c))) {
            Some((r, c)) => format!(
                "{why_driver}install the CUDA {c} build: `{}`",
                pip_torch_line(r, &c)
            ),
            None => format!(
                "{why_driver}install a PyTorch built for CUDA {driver_cuda} or older (see {TORCH_INDEX})"
            ),
        }
    };
    let Some(built) = torch_cuda.and_then(Version::parse) else {
        return Some(Mismatch {
            message: format!(
                "this PyTorch ({torch_version}) is a CPU-only build: it cannot use the GPU"
            ),
            fix: install_fitting(""),
        });
    };
    let built = Version(vec![built.part(0), built.part(1)]);
    if built <= *driver_cuda {
        return None;
    }
    let driver_text = driver_version
        .map(|d| format!("the driver ({d})"))
        .unwrap_or_else(|| "the driver".into());
    let update = match table.min_driver_for_cuda(&built) {
        Some(d) => format!(
            "update the NVIDIA driver to {} or newer ({d}), or ",
            driver_major(&d)
        ),
        None => "update the NVIDIA driver, or ".into(),
    };
    Some(Mismatch {
        message: format!(
            "this PyTorch ({torch_version}) was built for CUDA {built} but {driver_text} supports only CUDA {driver_cuda}"
        ),
        fix: install_fitting(&update),
    })
}

/// Does this PyTorch have kernels for a GPU of compute capability `cc`?
/// `arch_list` is `torch.cuda.get_arch_list()` (`sm_86`, ...); when it is
/// empty the check falls back to the CUDA the build was made with.
pub fn check_torch_against_gpu(
    table: &CompatTable,
    torch_version: &str,
    torch_cuda: Option<&str>,
    arch_list: &[String],
    gpu_name: &str,
    cc: &Version,
    driver_cuda: Option<&Version>,
) -> Option<Mismatch> {
    let row = table.arch_for(cc)?;
    let needed = v(&row.min_cuda);
    let sm = format!("sm_{}{}", cc.part(0), cc.part(1));
    let built = torch_cuda.and_then(Version::parse)?;
    let card = cc.part(0) * 10 + cc.part(1);
    let has_kernels = if arch_list.is_empty() {
        built >= needed
    } else {
        arch_list.iter().any(|a| {
            let number = |prefix: &str| a.strip_prefix(prefix).and_then(|n| n.parse::<u32>().ok());
            // Machine code for sm_XY runs on the same major at Y or above;
            // PTX (`compute_XY`) runs on anything at or above XY, by JIT.
            number("sm_").is_some_and(|n| n / 10 == card / 10 && n <= card)
                || number("compute_").is_some_and(|n| n <= card)
        })
    };
    if has_kernels {
        return None;
    }
    let fix = table
        .torch
        .iter()
        .filter_map(|r| {
            r.cuda
                .iter()
                .map(|c| v(c))
                .filter(|c| *c >= needed && driver_cuda.is_none_or(|d| c <= d))
                .max()
                .map(|c| (r, c))
        })
        .max_by_key(|(r, _)| v(&r.version));
    let fix = match fix {
        Some((r, c)) => format!("install a build for CUDA {c}: `{}`", pip_torch_line(r, &c)),
        None => match table.min_driver_for_cuda(&needed) {
            Some(d) => format!(
                "update the NVIDIA driver to {} or newer ({d}), then install a PyTorch built for CUDA {needed} or newer",
                driver_major(&d)
            ),
            None => format!("install a PyTorch built for CUDA {needed} or newer"),
        },
    };
    Some(Mismatch {
        message: format!(
            "the {gpu_name} ({}, compute capability {cc}) needs a PyTorch built for CUDA {needed} or newer; this one ({torch_version}, CUDA {built}) has no kernels for it ({sm} is not in its list): training would stop with \"no kernel image is available for execution on the device\"",
            row.generation
        ),
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_in_the_repository_parses_and_is_ordered() {
        let t: CompatTable = toml::from_str(TABLE_TOML).unwrap();
        assert!(t.cuda.len() >= 10 && t.torch.len() >= 8 && t.arch.len() >= 8);
        let cudas: Vec<Version> = t.cuda.iter().map(|r| v(&r.version)).collect();
        assert!(cudas.windows(2).all(|w| w[0] < w[1]), "{cudas:?}");
        let drivers: Vec<Version> = t.cuda.iter().map(|r| v(&r.linux)).collect();
        assert!(drivers.windows(2).all(|w| w[0] < w[1]), "{drivers:?}");
        for r in &t.torch {
            assert!(Version::parse(&r.version).is_some() && !r.cuda.is_empty());
        }
    }

    #[test]
    fn versions_parse_as_drivers_and_torch_print_them() {
        assert_eq!(
            Version::parse("550.54.14"),
            Some(Version(vec![550, 54, 14]))
        );
        assert_eq!(Version::parse("2.5.1+cu124"), Some(Version(vec![2, 5, 1])));
        assert_eq!(
            Version::parse("2.6.0.dev20241112"),
            Some(Version(vec![2, 6, 0]))
        );
        assert_eq!(Version::parse("n/a"), None);
        assert_eq!(Version::from_cuda_int(12040), Version(vec![12, 4]));
        assert!(Version::parse("535.183.01") > Version::parse("535.54.03"));
        assert_eq!(v("12.4").cuda_tag(), "cu124");
    }

    #[cfg(not(windows))]
    #[test]
    fn a_driver_supports_the_cuda_of_its_table_row() {
        let t = table();
        assert_eq!(t.max_cuda_for_driver(&v("550.54.14")), Some(v("12.4")));
        assert_eq!(t.max_cuda_for_driver(&v("535.183.01")), Some(v("12.2")));
        assert_eq!(t.max_cuda_for_driver(&v("470.82.01")), None);
        assert_eq!(t.min_driver_for_cuda(&v("12.4")), Some(v("550.54.14")));
        // 12.7 was never released: the next row up.
        assert_eq!(t.min_driver_for_cuda(&v("12.7")), Some(v("570.26")));
    }

    #[cfg(not(windows))]
    #[test]
    fn a_torch_newer_than_the_driver_gets_the_update_or_the_build_that_fits() {
        let m = check_torch_against_driver(
            table(),
            "2.5.1+cu124",
            Some("12.4"),
            &v("12.1"),
            Some("530.30.02"),
        )
        .unwrap();
        assert_eq!(
            m.message,
            "this PyTorch (2.5.1+cu124) was built for CUDA 12.4 but the driver (530.30.02) supports only CUDA 12.1"
        );
        assert_eq!(
            m.fix,
            "update the NVIDIA driver to 550 or newer (550.54.14), or install the CUDA 12.1 build: `pip install torch==2.5.1 torchvision==0.20.1 --index-url https://download.pytorch.org/whl/cu121`"
        );
        // The same torch on a 550 driver is fine; so is an older build.
        assert_eq!(
            check_torch_against_driver(table(), "2.5.1+cu124", Some("12.4"), &v("12.4"), None),
            None
        );
        assert_eq!(
            check_torch_against_driver(table(), "2.5.1+cu121", Some("12.1"), &v("12.8"), None),
            None
        );
    }

    #[test]
    fn a_cpu_only_torch_on_a_gpu_machine_gets_the_cuda_build() {
        let m =
            check_torch_against_driver(table(), "2.6.0+cpu", None, &v("12.4"), Some("550.54.14"))
                .unwrap();
        assert!(m.message.contains("CPU-only"), "{m:?}");
        assert!(
            m.fix.contains("torch==2.6.0 torchvision==0.21.0 --index-url https://download.pytorch.org/whl/cu124"),
            "{m:?}"
        );
    }

    #[test]
    fn a_blackwell_card_needs_a_cuda_12_8_build() {
        let archs: Vec<String> = [
            "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = check_torch_against_gpu(
            table(),
            "2.5.1+cu124",
            Some("12.4"),
            &archs,
            "RTX 5090",
            &v("12.0"),
            Some(&v("12.8")),
        )
        .unwrap();
        assert!(
            m.message.contains("sm_120") && m.message.contains("12.8"),
            "{m:?}"
        );
        assert!(
            m.fix
                .contains("--index-url https://download.pytorch.org/whl/cu128"),
            "{m:?}"
        );
        // An Ada card runs the sm_86 machine code in that list.
        assert_eq!(
            check_torch_against_gpu(
                table(),
                "2.5.1+cu124",
                Some("12.4"),
                &archs,
                "RTX 4090",
                &v("8.9"),
                None
            ),
            None
        );
    }
}
