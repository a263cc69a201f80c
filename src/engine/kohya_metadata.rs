//! The metadata a LoRA file carries, in the keys and value formats kohya's
//! `train_network.py` writes and A1111/Forge, ComfyUI's managers and Civitai
//! read: the `ss_*` training facts (Civitai takes trigger words from
//! `ss_tag_frequency`), the base model's name and hashes, the
//! `sshs_*` hashes of the LoRA itself, and the SAI `modelspec.*` set.
//!
//! kohya builds the values with Python's `str()` (`True`, `None`, `1e-05`,
//! `(512, 512)`) and `json.dumps` (`{"a": 1}`, ASCII-only); the helpers here
//! write the same text, so a tool that parses kohya's files parses ours.
//! Sources: sd-scripts `train_network.py` (the metadata dict, tag frequency
//! per folder, lower-cased), `library/train_util.py` (`model_hash`,
//! `calculate_sha256`, `addnet_hash_*`, the `BucketManager` behind
//! `ss_min_bucket_reso`, `ss_max_bucket_reso` and `ss_bucket_info`),
//! `library/sai_model_spec.py`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The base model's name and hashes, as kohya records them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelIdentity {
    /// The file (or folder) name: `ss_sd_model_name`.
    pub name: String,
    /// `ss_sd_model_hash`: the old A1111 hash (8 hex digits of the SHA-256
    /// of 64 KiB at 1 MiB); `None` for a folder.
    pub legacy_hash: Option<String>,
    /// `ss_new_sd_model_hash`: the SHA-256 of the whole file.
    pub sha256: Option<String>,
}

impl ModelIdentity {
    /// Names and hashes `path`; `progress(done, total)` follows the bytes
    /// hashed (a 4 GB checkpoint takes a few seconds).
    pub fn of(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> std::io::Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !path.is_file() {
            return Ok(Self {
                name,
                ..Self::default()
            });
        }
        let mut file = std::fs::File::open(path)?;
        let total = file.metadata()?.len();
        let mut hasher = Sha256::new();
        let mut legacy = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut done = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            // the legacy hash reads bytes 0x100000..0x110000
            let (start, end) = (done, done + n as u64);
            let (lo, hi) = (start.max(0x10_0000), end.min(0x11_0000));
            if lo < hi {
                legacy.update(&buffer[(lo - start) as usize..(hi - start) as usize]);
            }
            done = end;
            progress(done, total);
        }
        Ok(Self {
            name,
            legacy_hash: Some(hex(&legacy.finalize())[..8].to_string()),
            sha256: Some(hex(&hasher.finalize())),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `sshs_model_hash` and `sshs_legacy_hash` of a LoRA file serialised
/// with only its `ss_*` metadata (what kohya hashes): the SHA-256 of the
/// tensor bytes after the header, and 8 hex digits of the SHA-256 of the
/// 64 KiB at 1 MiB (of nothing, for a smaller file).
pub fn addnet_hashes(file_bytes: &[u8]) -> (String, String) {
    let header = file_bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
        .unwrap_or(0);
    let data = file_bytes.get(8 + header..).unwrap_or(&[]);
    let model = hex(&Sha256::digest(data));
    let lo = file_bytes.len().min(0x10_0000);
    let hi = file_bytes.len().min(0x11_0000);
    let legacy = hex(&Sha256::digest(&file_bytes[lo..hi]))[..8].to_string();
    (model, legacy)
}

/// Python's `str(float)`: the shortest text that reads back the same
/// number, with `.0` on whole numbers and an exponent below 1e-4 or from
/// 1e16 on (`0.0001`, `1e-05`, `8.0`, `1e+16`).
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let exp = x.abs().log10().floor() as i32;
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust's `{:e}` is also the shortest round-trip digits: 1e-5, 1.5e-7
        let s = format!("{x:e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", e.abs())
    }
}

/// Python's `str(bool)`.
pub fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.into()
}

/// A string as `json.dumps` writes it (ASCII only, `\uXXXX` escapes).
pub fn py_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An insertion-ordered map, as Python's dicts are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V> Ordered<V> {
    pub fn entry_or(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let at = match self.0.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.0.push((key.to_string(), make()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

/// kohya's `ss_tag_frequency`: per folder, each comma-separated tag of
/// each caption, stripped and lower-cased, with how many captions have it,
/// in the order first seen. `captions` are (folder name, caption).
pub fn tag_frequency<'a>(
    captions: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Ordered<Ordered<usize>> {
    let mut freq: Ordered<Ordered<usize>> = Ordered::default();
    for (folder, caption) in captions {
        let dir = freq.entry_or(folder, Ordered::default);
        for tag in caption.split(',') {
            let tag = tag.trim();
            if !tag.is_empty() {
                *dir.entry_or(&tag.to_lowercase(), || 0) += 1;
            }
        }
    }
    freq
}

/// `json.dumps` of a map of maps of whole numbers.
pub fn py_json_nested(map: &Ordered<Ordered<usize>>) -> String {
    let outer: Vec<String> = map
        .0
        .iter()
        .map(|(k, inner)| {
            let inner: Vec<String> = inner
                .0
                .iter()
                .map(|(t, n)| format!("{}: {n}", py_json_string(t)))
                .collect();
            format!("{}: {{{}}}", py_json_string(k), inner.join(", "))
        })
        .collect();
    format!("{{{}}}", outer.join(", "))
}

/// One folder of the dataset: kohya's `ss_dataset_dirs` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetDir {
    pub name: String,
    pub n_repeats: usize,
    pub img_count: usize,
}

/// `json.dumps` of kohya's `ss_dataset_dirs`.
pub fn py_json_dataset_dirs(dirs: &[DatasetDir]) -> String {
    let entries: Vec<String> = dirs
        .iter()
        .map(|d| {
            format!(
                "{}: {{\"n_repeats\": {}, \"img_count\": {}}}",
                py_json_string(&d.name),
                d.n_repeats,
                d.img_count
            )
        })
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// kohya's `ss_bucket_info`: the buckets that hold pictures and how far
/// the pictures' aspect ratios are from their buckets'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketInfo {
    /// `((width, height), pictures in it counting repeats)`, sorted by
    /// width, then height; kohya numbers them from 0 in this order.
    pub buckets: Vec<((usize, usize), usize)>,
    /// The mean of |bucket width/height − picture width/height| over the
    /// pictures (without repeats); `None` when no picture's own size is
    /// known (a latent cache written before sizes were kept).
    pub mean_ar_error: Option<f64>,
}

impl BucketInfo {
    /// `pictures` is each picture's bucket and, when known, its own
    /// `(width, height)`; every picture is counted `repeats` times, as kohya
    /// counts them.
    pub fn of(
        pictures: impl IntoIterator<Item = ((usize, usize), Option<(u32, u32)>)>,
        repeats: usize,
    ) -> Self {
        let mut buckets: Vec<((usize, usize), usize)> = Vec::new();
        let mut errors = Vec::new();
        for (bucket, size) in pictures {
            match buckets.iter_mut().find(|(b, _)| *b == bucket) {
                Some((_, n)) => *n += repeats,
                None => buckets.push((bucket, repeats)),
            }
            if let Some((iw, ih)) = size {
                let bucket_ar = bucket.0 as f64 / bucket.1.max(1) as f64;
                errors.push((bucket_ar - iw as f64 / ih.max(1) as f64).abs());
            }
        }
        buckets.sort_unstable();
        let mean_ar_error =
            (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64);
        Self {
            buckets,
            mean_ar_error,
        }
    }
}

/// `json.dumps` of kohya's `bucket_info` dict: `{"buckets": {"4": {"resolution":
/// [512, 512], "count": 10}}, "mean_img_ar_error": 0.0}`.
pub fn py_json_bucket_info(info: &BucketInfo) -> String {
    let buckets: Vec<String> = info
        .buckets
        .iter()
        .enumerate()
        .map(|(i, ((w, h), n))| format!("\"{i}\": {{\"resolution\": [{w}, {h}], \"count\": {n}}}"))
        .collect();
    let mut text = format!("{{\"buckets\": {{{}}}", buckets.join(", "));
    if let Some(error) = info.mean_ar_error {
        text.push_str(&format!(", \"mean_img_ar_error\": {}", py_float(error)));
    }
    text.push('}');
    text
}

/// `2026-12-06T22:30:00` for a Unix time (UTC).
pub fn iso_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Everything the metadata says about a run.
#[derive(Debug, Clone)]
pub struct TrainingFacts {
    pub output_name: String,
    /// `stable-diffusion-v1` or `stable-diffusion-xl-v1-base`.
    pub modelspec_architecture: &'static str,
    /// `sd_v1` or `sdxl_base_v1-0`.
    pub base_model_version: &'static str,
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub conv_rank: usize,
    pub conv_alpha: f64,
    pub train_text_encoder: bool,
    pub learning_rate: f64,
    pub text_encoder_lr: f64,
    pub optimizer: String,
    pub lr_scheduler: String,
    pub warmup_steps: usize,
    pub steps: usize,
    pub max_train_steps: usize,
    pub epoch: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub batches_per_epoch: usize,
    pub num_train_images: usize,
    pub seed: u64,
    pub clip_skip: usize,
    pub noise_offset: f64,
    pub min_snr_gamma: Option<f64>,
    pub v_prediction: bool,
    /// The training resolution (the bucket area's side), `(w, h)`.
    pub resolution: (usize, usize),
    /// The smallest and largest side of any bucket (kohya's
    /// `min_bucket_reso` and `max_bucket_reso` for the same buckets).
    pub bucket_side_range: (usize, usize),
    pub bucket_info: BucketInfo,
    pub shuffle_caption: bool,
    pub keep_tokens: usize,
    /// kohya's `--mixed_precision`: `no`, `fp16` or `bf16`.
    pub mixed_precision: &'static str,
    pub gradient_checkpointing: bool,
    pub model: ModelIdentity,
    pub dataset_dirs: Vec<DatasetDir>,
    pub tag_frequency: Ordered<Ordered<usize>>,
    pub started_at: u64,
    pub finished_at: u64,
}

impl TrainingFacts {
    /// The keys kohya's `train_network.py` writes for this run, values in
    /// kohya's text (the `sshs_*` hashes are added when the file is
    /// serialised, see [`addnet_hashes`]).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        let (w, h) = self.resolution;
        put(
            "ss_session_id",
            (self.started_at % 2_147_483_647).to_string(),
        );
        put("ss_training_started_at", self.started_at.to_string());
        put("ss_training_finished_at", self.finished_at.to_string());
        put("ss_output_name", self.output_name.clone());
        put("ss_learning_rate", py_float(self.learning_rate));
        put("ss_text_encoder_lr", py_float(self.text_encoder_lr));
        put("ss_unet_lr", py_float(self.learning_rate));
        put("ss_num_train_images", self.num_train_images.to_string());
        put("ss_num_validation_images", "0".into());
        put("ss_num_reg_images", "0".into());
        put(
            "ss_num_batches_per_epoch",
            self.batches_per_epoch.to_string(),
        );
        put("ss_num_epochs", self.epochs.to_string());
        put("ss_epoch", self.epoch.to_string());
        put("ss_steps", self.steps.to_string());
        put("ss_max_train_steps", self.max_train_steps.to_string());
        put(
            "ss_gradient_checkpointing",
            py_bool(self.gradient_checkpointing),
        );
        put("ss_gradient_accumulation_steps", "1".into());
        put("ss_lr_warmup_steps", self.warmup_steps.to_string());
        put("ss_lr_scheduler", self.lr_scheduler.clone());
        put("ss_network_module", "networks.lora".into());
        put("ss_network_dim", self.rank.to_string());
        put("ss_network_alpha", py_float(self.alpha));
        put("ss_network_dropout", py_float(self.dropout));
        if self.conv_rank > 0 {
            put(
                "ss_network_args",
                format!(
                    "{{\"conv_dim\": \"{}\", \"conv_alpha\": \"{}\"}}",
                    self.conv_rank,
                    py_float(self.conv_alpha)
                ),
            );
        }
        put(
            "ss_network_train_unet_only",
            py_bool(!self.train_text_encoder),
        );
        put("ss_mixed_precision", self.mixed_precision.into());
        put("ss_full_fp16", py_bool(false));
        put("ss_v2", py_bool(false));
        put("ss_base_model_version", self.base_model_version.into());
        put("ss_clip_skip", self.clip_skip.to_string());
        put("ss_max_token_length", "None".into());
        put("ss_cache_latents", py_bool(true));
        put("ss_seed", self.seed.to_string());
        put("ss_lowram", py_bool(false));
        put("ss_noise_offset", py_float(self.noise_offset));
        put(
            "ss_min_snr_gamma",
            self.min_snr_gamma.map_or("None".into(), py_float),
        );
        put("ss_optimizer", self.optimizer.clone());
        put("ss_max_grad_norm", "0.0".into());
        put("ss_prior_loss_weight", "1.0".into());
        put("ss_zero_terminal_snr", py_bool(false));
        put("ss_loss_type", "l2".into());
        put("ss_batch_size_per_device", self.batch_size.to_string());
        put("ss_total_batch_size", self.batch_size.to_string());
        put("ss_resolution", format!("({w}, {h})"));
        put("ss_color_aug", py_bool(false));
        put("ss_flip_aug", py_bool(false));
        put("ss_random_crop", py_bool(false));
        put("ss_shuffle_caption", py_bool(self.shuffle_caption));
        put("ss_enable_bucket", py_bool(true));
        put("ss_bucket_no_upscale", py_bool(false));
        put("ss_min_bucket_reso", self.bucket_side_range.0.to_string());
        put("ss_max_bucket_reso", self.bucket_side_range.1.to_string());
        put("ss_bucket_info", py_json_bucket_info(&self.bucket_info));
        put("ss_keep_tokens", self.keep_tokens.to_string());
        put("ss_dataset_dirs", py_json_dataset_dirs(&self.dataset_dirs));
        put("ss_reg_dataset_dirs", "{}".into());
        put("ss_tag_frequency", py_json_nested(&self.tag_frequency));
        put("ss_sd_model_name", self.model.name.clone());
        if let Some(hash) = &self.model.legacy_hash {
            put("ss_sd_model_hash", hash.clone());
        }
        if let Some(hash) = &self.model.sha256 {
            put("ss_new_sd_model_hash", hash.clone());
        }
        put(
            "ss_training_comment",
            "trained by the Ategnatos native engine (burn)".into(),
        );
        // the SAI model spec, as sai_model_spec.build_metadata writes it
        let lora_arch = format!("{}/lora", self.modelspec_architecture);
        let is_sdxl = self.modelspec_architecture.contains("-xl-");
        put("modelspec.sai_model_spec", "1.0.1".into());
        put("modelspec.architecture", lora_arch);
        put(
            "modelspec.implementation",
            if is_sdxl {
                "https://github.com/Stability-AI/generative-models"
            } else {
                "diffusers"
            }
            .into(),
        );
        put("modelspec.title", self.output_name.clone());
        put("modelspec.resolution", format!("{w}x{h}"));
        put("modelspec.date", iso_date(self.started_at));
        put(
            "modelspec.prediction_type",
            if self.v_prediction { "v" } else { "epsilon" }.into(),
        );
        if self.clip_skip > 1 {
            put("modelspec.encoder_layer", self.clip_skip.to_string());
        }
        put(
            "modelspec.implementation_version",
            format!("ategnatos/{}", env!("CARGO_PKG_VERSION")),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (x, text) in [
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (8.0, "8.0"),
            (0.5, "0.5"),
            (1.5e-7, "1.5e-07"),
            (0.0, "0.0"),
            (1e16, "1e+16"),
            (123456.0, "123456.0"),
        ] {
            assert_eq!(py_float(x), text, "{x}");
        }
    }

    #[test]
    fn tag_frequency_is_kohyas_per_folder_lowercased_count() {
        let freq = tag_frequency([
            ("10_ink fox", "zkfox, Red Fox, snow"),
            ("10_ink fox", "zkfox, red fox,  , night"),
            ("2_sketches", "zkfox, café"),
        ]);
        assert_eq!(
            py_json_nested(&freq),
            r#"{"10_ink fox": {"zkfox": 2, "red fox": 2, "snow": 1, "night": 1}, "2_sketches": {"zkfox": 1, "caf\u00e9": 1}}"#
        );
    }

    #[test]
    fn bucket_info_is_kohyas_json_buckets_sorted_and_counted_with_repeats() {
        let info = BucketInfo::of(
            [
                ((640, 384), Some((1600, 900))),
                ((512, 512), Some((1000, 1000))),
                ((512, 512), Some((700, 700))),
            ],
            2,
        );
        let error = (640.0 / 384.0 - 1600.0 / 900.0_f64).abs() / 3.0;
        assert_eq!(
            py_json_bucket_info(&info),
            format!(
                r#"{{"buckets": {{"0": {{"resolution": [512, 512], "count": 4}}, "1": {{"resolution": [640, 384], "count": 2}}}}, "mean_img_ar_error": {}}}"#,
                py_float(error)
            )
        );
        // a cache without the pictures' sizes has no error to report
        let unknown = BucketInfo::of([((512, 512), None)], 1);
        assert_eq!(
            py_json_bucket_info(&unknown),
            r#"{"buckets": {"0": {"resolution": [512, 512], "count": 1}}}"#
        );
    }

    #[test]
    fn the_date_is_iso_8601() {
        assert_eq!(iso_date(0), "1970-01-01T00:00:00");
        assert_eq!(iso_date(1_700_000_000), "2023-11-14T22:13:20");
        assert_eq!(iso_date(951_782_400), "2000-02-29T00:00:00");
    }

    #[test]
    fn the_model_hashes_are_a1111s() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        // 1.5 MiB of a repeating pattern: the legacy hash covers 1 MiB..1 MiB + 64 KiB
        let bytes: Vec<u8> = (0..(3 << 19)).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let id = ModelIdentity::of(&path, &mut |_, _| {}).unwrap();
        assert_eq!(id.name, "m.safetensors");
        assert_eq!(
            id.sha256.as_deref(),
            Some(hex(&Sha256::digest(&bytes)).as_str())
        );
        let legacy = hex(&Sha256::digest(&bytes[0x10_0000..0x11_0000]));
        assert_eq!(id.legacy_hash.as_deref(), Some(&legacy[..8]));
    }
}
