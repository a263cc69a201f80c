//! What went wrong in a trainer's run, from its own words: out-of-memory,
//! a missing module or file, a caption it could not read, CUDA and driver
//! errors, a loss that became NaN, a hang, a crash.
//!
//! [`classify_line`] recognises one line (the signatures are in
//! `research/backends.md` §2, copied from the trainers' and PyTorch's
//! sources); [`Diagnosis::from_signals`] picks the one that explains the run
//! and says what to do. Both are pure and tested on the real messages.

use serde::Serialize;

/// The kinds of failure a dry run can end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The GPU ran out of memory.
    OutOfMemory,
    /// The computer's own memory ran out (the kernel killed the trainer).
    HostOutOfMemory,
    /// A Python module the trainer imports is not installed.
    MissingModule,
    /// A model or other file it needs is not there.
    MissingFile,
    /// The model file is there but cannot be read (truncated, a Git LFS pointer).
    BadModelFile,
    /// A caption could not be read or encoded.
    CaptionError,
    /// The trainer found no pictures to train on.
    NoPictures,
    /// CUDA, the driver or a GPU library failed.
    CudaError,
    /// The loss became NaN or infinite.
    NanLoss,
    /// It printed nothing for too long and was stopped.
    Hang,
    /// It stopped with an error or a signal that is none of the above.
    Crash,
    /// It ended without error but did fewer steps than asked.
    TooFewSteps,
}

impl FailureKind {
    /// Short words for the kind, as the record names it.
    pub fn words(self) -> &'static str {
        match self {
            FailureKind::OutOfMemory => "out of GPU memory",
            FailureKind::HostOutOfMemory => "out of system memory",
            FailureKind::MissingModule => "a Python module is missing",
            FailureKind::MissingFile => "a file is missing",
            FailureKind::BadModelFile => "the model file cannot be read",
            FailureKind::CaptionError => "a caption cannot be read",
            FailureKind::NoPictures => "no pictures found",
            FailureKind::CudaError => "a CUDA or driver error",
            FailureKind::NanLoss => "the loss became NaN",
            FailureKind::Hang => "the trainer hung",
            FailureKind::Crash => "the trainer crashed",
            FailureKind::TooFewSteps => "too few steps",
        }
    }

    /// Which explains a run best when several show up (lower wins): the
    /// cause before its consequences (a missing module before the crash
    /// it causes, memory before the CUDA error that reports it).
    fn rank(self) -> u8 {
        match self {
            FailureKind::OutOfMemory => 0,
            FailureKind::HostOutOfMemory => 1,
            FailureKind::MissingModule => 2,
            FailureKind::BadModelFile => 3,
            FailureKind::MissingFile => 4,
            FailureKind::CaptionError => 5,
            FailureKind::NoPictures => 6,
            FailureKind::CudaError => 7,
            FailureKind::NanLoss => 8,
            FailureKind::Hang => 9,
            FailureKind::Crash => 10,
            FailureKind::TooFewSteps => 11,
        }
    }

    /// Whether the run must be stopped as soon as this is seen (a trainer
    /// may go on after it, burning GPU time: kohya trains on with a NaN loss,
    /// ai-toolkit skips out-of-memory batches).
    pub fn stops_the_run(self) -> bool {
        !matches!(self, FailureKind::Crash | FailureKind::TooFewSteps)
    }
}

/// One line that says something went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Signal {
    pub kind: FailureKind,
    /// The line itself.
    pub evidence: String,
    /// The path, module or caption file it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

fn signal(kind: FailureKind, line: &str, subject: Option<String>) -> Option<Signal> {
    Some(Signal {
        kind,
        evidence: line.trim().chars().take(400).collect(),
        subject,
    })
}

/// The text between the first pair of `open`/`close` after `after`.
fn quoted_after(line: &str, after: &str, quotes: &[char]) -> Option<String> {
    let rest = &line[line.find(after)? + after.len()..];
    let start = rest.find(quotes)?;
    let q = rest[start..].chars().next()?;
    let inner = &rest[start + q.len_utf8()..];
    let end = inner.find(q)?;
    Some(inner[..end].to_string())
}

/// What the end of a log says went wrong, in words (`out of GPU memory:
/// <the line>`), from its last lines; `None` when nothing there does.
pub fn explain_log(path: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let best = text
        .split(['\n', '\r'])
        .filter_map(classify_line)
        .min_by_key(|s| s.kind.rank())?;
    let evidence: String = best.evidence.chars().take(200).collect();
    Some(format!("{}: {}", best.kind.words(), evidence.trim()))
}

/// What `line` says went wrong, if anything.
pub fn classify_line(line: &str) -> Option<Signal> {
    let lower = line.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    use FailureKind::*;

    if has("cuda out of memory")
        || has("outofmemoryerror")
        || has("cuda error: out of memory")
        || has("cublas_status_alloc_failed")
        || has("oom during training step")
        || has("mps backend out of memory")
    {
        return signal(OutOfMemory, line, None);
    }
    if has("defaultcpuallocator: can't allocate memory") {
        return signal(HostOutOfMemory, line, None);
    }
    if let Some(module) = line
        .find("No module named ")
        .and_then(|_| quoted_after(line, "No module named ", &['\'', '"']))
    {
        let top = module.split('.').next().unwrap_or(&module).to_string();
        return signal(MissingModule, line, Some(top));
    }
    if has("cannot import name")
        && let Some(from) = quoted_after(line, " from ", &['\'', '"'])
    {
        let top = from.split('.').next().unwrap_or(&from).to_string();
        return signal(MissingModule, line, Some(top));
    }
    if has("headertoolarge")
        || has("error while deserializing header")
        || has("is not a usable weights file")
    {
        let path = quoted_after(line, "`", &['`']).or_else(|| {
            line.find('`')
                .and_then(|i| line[i + 1..].split('`').next().map(String::from))
        });
        return signal(BadModelFile, line, path);
    }
    if has("illegal char in file (not utf-8)") {
        let path = line.rsplit_once(": ").map(|(_, p)| p.trim().to_string());
        return signal(CaptionError, line, path);
    }
    if has("unicodedecodeerror") {
        return signal(CaptionError, line, None);
    }
    if line.contains("` has no caption") {
        return signal(CaptionError, line, quoted_after(line, "", &['`']));
    }
    if has("no such file or directory") {
        let path = quoted_after(line, "No such file or directory", &['\'', '"', '`'])
            .or_else(|| quoted_after(line, "could not read ", &['`']));
        return signal(MissingFile, line, path);
    }
    if has("is not a local folder and is not a valid model identifier")
        || has("does not appear to have a file named")
        || has("incorrect path_or_model_id")
    {
        let path = quoted_after(line, "", &['\'', '"']).or_else(|| {
            line.split_whitespace()
                .find(|w| w.contains('/'))
                .map(String::from)
        });
        return signal(MissingFile, line, path);
    }
    if has("no data found. please verify arguments")
        || has("no images found in")
        || has("no images were discovered by the bucket manager")
        || has("produced no usable samples")
    {
        return signal(NoPictures, line, None);
    }
    if has("no kernel image is available")
        || has("is not compatible with the current pytorch installation")
        || has("cuda driver version is insufficient")
        || has("found no nvidia driver")
        || has("torch not compiled with cuda enabled")
        || has("cuda setup failed despite gpu being available")
        || has("xformers can't load c++/cuda extensions")
        || has("cuda error:")
        || has("cudnn_status_")
        || has("nccl error")
        || has("has no `cuda` backend")
    {
        return signal(CudaError, line, None);
    }
    if has("loss is nan")
        || has("non-finite training loss")
        || has("training loss became nan")
        || (has("loss became") && (has("nan") || has("inf")))
    {
        return signal(NanLoss, line, None);
    }
    None
}

/// The verdict on a failed run, with what to do.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Diagnosis {
    pub kind: FailureKind,
    /// What happened, in plain words, with the value in backticks.
    pub message: String,
    /// What to do about it.
    pub what_to_do: String,
    /// The trainer's own lines that show it.
    pub evidence: Vec<String>,
    /// The path, module or caption file it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Out of memory: the next smaller batch to try.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_batch: Option<u32>,
}

/// What the diagnosis needs to know about the run.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// The batch size the run used.
    pub batch_size: u32,
    /// Steps finished before it stopped.
    pub steps_done: u64,
    pub steps_wanted: u64,
    /// How it ended, in words (`exit code 1`), when it ended by itself.
    pub ended: Option<String>,
    /// The signal that ended it, when it was killed by one we did not send.
    pub killed_by: Option<i32>,
    /// The last lines it printed.
    pub last_lines: Vec<String>,
    /// The Python of the trainer's environment, for pip lines.
    pub python: Option<String>,
}

/// `12.00 MiB` after `Tried to allocate`, `23.65 GiB` of total capacity.
fn oom_numbers(evidence: &str) -> (Option<String>, Option<String>) {
    let tried = (|| {
        let rest = &evidence[evidence.find("Tried to allocate ")? + 18..];
        let mut words = rest.split_whitespace();
        let number = words.next()?;
        let unit = words.next()?.trim_end_matches(['.', ',', ')']);
        Some(format!("{number} {unit}"))
    })();
    let total = evidence
        .find("total capacity of ")
        .and_then(|i| {
            let mut w = evidence[i + 18..].split_whitespace();
            Some(format!(
                "{} {}",
                w.next()?,
                w.next()?.trim_end_matches(['.', ','])
            ))
        })
        .or_else(|| {
            let i = evidence.find(" total capacity")?;
            // `(GPU 0; 11.76 GiB total capacity; ...`
            let size = evidence[..i].rsplit(['(', ';']).next()?.trim();
            (!size.is_empty()).then(|| size.to_string())
        });
    (tried, total)
}

impl Diagnosis {
    /// The diagnosis of a run from the signals seen, or `None` when nothing
    /// went wrong that the signals or the facts show.
    pub fn from_signals(signals: &[Signal], facts: &RunFacts) -> Option<Diagnosis> {
        // Stdout and stderr arrive in either order: of the lines that show
        // the same failure, the one naming its file or module wins.
        let chosen = signals
            .iter()
            .min_by_key(|s| (s.kind.rank(), s.subject.is_none()));
        let evidence_for = |kind: FailureKind| -> Vec<String> {
            signals
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.evidence.clone())
                .take(3)
                .collect()
        };
        let pip = |package: &str| match &facts.python {
            Some(p) => format!(
                "`{} -m pip install {package}`",
                crate::backends::shell_quote(p)
            ),
            None => format!("`pip install {package}` in the trainer's environment"),
        };
        let Some(s) = chosen else {
            return Self::from_facts(facts);
        };
        let subject = s.subject.clone();
        let named = subject
            .as_deref()
            .map(|x| format!(" `{x}`"))
            .unwrap_or_default();
        let mut d = Diagnosis {
            kind: s.kind,
            message: String::new(),
            what_to_do: String::new(),
            evidence: evidence_for(s.kind),
            subject: subject.clone(),
            suggested_batch: None,
        };
        match s.kind {
            FailureKind::OutOfMemory => {
                let all = d.evidence.join(" ");
                let detail = match oom_numbers(&all) {
                    (Some(t), Some(c)) => format!(" (it needed {t} more on a {c} card)"),
                    (Some(t), None) => format!(" (it needed {t} more)"),
                    (None, Some(c)) => format!(" (a {c} card)"),
                    (None, None) => String::new(),
                };
                let smaller = (facts.batch_size / 2).max(1);
                d.message = format!(
                    "the GPU ran out of memory at batch {}{detail}",
                    facts.batch_size
                );
                if facts.batch_size > 1 {
                    d.suggested_batch = Some(smaller);
                    d.what_to_do = format!(
                        "plan again with batch {smaller} (plan_training with batch_size {smaller}; it keeps the number of pictures seen by adjusting steps), then run gates 2, 3 and 4 again"
                    );
                } else {
                    d.what_to_do = "at batch 1 the plan itself is too big for this GPU: plan again with gradient checkpointing, cached latents and text embeddings, an 8-bit optimizer or a lower resolution (plan_training shrinks it for this GPU), or use a GPU with more memory".into();
                }
            }
            FailureKind::HostOutOfMemory => {
                d.message =
                    "the computer ran out of memory (RAM) and the system stopped the trainer"
                        .into();
                d.what_to_do = "close other programs, add swap, or use a machine with more RAM; loading and quantising Flux needs about 50 GB".into();
            }
            FailureKind::MissingModule => {
                let package = subject.clone().unwrap_or_else(|| "the module".into());
                d.message = format!(
                    "the trainer stopped because the Python module{named} is not installed in its environment"
                );
                d.what_to_do = format!(
                    "install it with {}, then run gate 3 (run_gate 3), which checks every module at once",
                    pip(&package.replace('_', "-"))
                );
            }
            FailureKind::BadModelFile => {
                d.message = format!(
                    "the model file{named} cannot be read: it is truncated or a Git LFS pointer, not the weights"
                );
                d.what_to_do =
                    "download the model again (check its size against the source), then run gate 3"
                        .into();
            }
            FailureKind::MissingFile => {
                d.message = format!(
                    "the trainer could not find{}",
                    if named.is_empty() {
                        " a file it needs".into()
                    } else {
                        named.clone()
                    }
                );
                d.what_to_do = "put the file there, or point the plan at the right one (plan_training with model_path), write the config again (generate_config) and run gates 2 to 4".into();
            }
            FailureKind::CaptionError => {
                d.message = format!(
                    "the trainer could not read the caption{}",
                    if named.is_empty() {
                        String::new()
                    } else {
                        named.clone()
                    }
                );
                d.what_to_do = "save that caption as UTF-8 text (write_captions rewrites it), then run gate 1 again".into();
            }
            FailureKind::NoPictures => {
                d.message = "the trainer found no pictures to train on".into();
                d.what_to_do = "check that the dataset folder in the plan still holds the pictures and their captions, write the config again (generate_config) and run the gates again".into();
            }
            FailureKind::CudaError => {
                d.message =
                    "CUDA failed: the driver, the GPU and this PyTorch do not work together".into();
                d.what_to_do = "run gate 3 (run_gate 3): its compatibility table names the driver or PyTorch build to install".into();
            }
            FailureKind::NanLoss => {
                d.message = "the loss became NaN (not a number): training would produce an empty or broken LoRA".into();
                d.what_to_do = "lower the learning rate, use bf16 instead of fp16 (fp16 overflows on SDXL's VAE and on Flux), or keep alpha at or below the rank; plan again (plan_training) and run gates 2 to 4".into();
            }
            FailureKind::Hang => {
                d.message = "the trainer printed nothing for too long and was stopped".into();
                d.what_to_do = "look at the end of dry-run.log for what it was doing; a first run may be downloading a model (give it a longer wait), otherwise check the GPU is not busy with another program".into();
            }
            FailureKind::Crash | FailureKind::TooFewSteps => return Self::from_facts(facts),
        }
        Some(d)
    }

    /// A failure the lines did not explain: a crash, a signal, too few steps.
    fn from_facts(facts: &RunFacts) -> Option<Diagnosis> {
        let last_error = facts
            .last_lines
            .iter()
            .rev()
            .find(|l| l.contains("Error") || l.contains("Exception") || l.starts_with("error:"))
            .cloned();
        if let Some(sig) = facts.killed_by {
            let (kind, message, what_to_do) = if sig == 9 {
                (
                    FailureKind::HostOutOfMemory,
                    "the trainer was killed (signal 9, SIGKILL): most often the system ran out of memory".to_string(),
                    "close other programs, add swap, or use a machine with more RAM".to_string(),
                )
            } else {
                (
                    FailureKind::Crash,
                    format!(
                        "the trainer crashed (signal {sig}, {})",
                        super::process::signal_name(sig)
                    ),
                    "look at the end of dry-run.log; a crash inside PyTorch or a GPU library often means a driver or library mismatch: run gate 3 (run_gate 3)".to_string(),
                )
            };
            return Some(Diagnosis {
                kind,
                message,
                what_to_do,
                evidence: last_error.into_iter().collect(),
                subject: None,
                suggested_batch: None,
            });
        }
        match &facts.ended {
            Some(how) if how != "exit code 0" => Some(Diagnosis {
                kind: FailureKind::Crash,
                message: match &last_error {
                    Some(e) => format!("the trainer stopped with {how}: {e}"),
                    None => format!("the trainer stopped with {how}"),
                },
                what_to_do: "read the end of dry-run.log for the cause; fix it and run the dry run again".into(),
                evidence: last_error.into_iter().collect(),
                subject: None,
                suggested_batch: None,
            }),
            Some(_) if facts.steps_done < 2 => Some(Diagnosis {
                kind: FailureKind::TooFewSteps,
                message: format!(
                    "the trainer finished without an error after {} step(s); the dry run needs at least 2 with a finite loss",
                    facts.steps_done
                ),
                what_to_do: "look at dry-run.log: the trainer may not have found the pictures or may not print its progress".into(),
                evidence: facts.last_lines.iter().rev().take(3).rev().cloned().collect(),
                subject: None,
                suggested_batch: None,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> Option<(FailureKind, Option<String>)> {
        classify_line(line).map(|s| (s.kind, s.subject))
    }

    #[test]
    fn the_line_naming_the_caption_wins_whichever_stream_came_first() {
        let named = classify_line("ERROR    illegal char in file (not UTF-8) / ファイルにUTF-8以外の文字があります: /w/set/p1.txt").unwrap();
        let bare =
            classify_line("UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 3")
                .unwrap();
        assert_eq!(bare.kind, FailureKind::CaptionError);
        for signals in [[named.clone(), bare.clone()], [bare, named]] {
            let d = Diagnosis::from_signals(&signals, &RunFacts::default()).unwrap();
            assert_eq!(d.subject.as_deref(), Some("/w/set/p1.txt"));
            assert!(d.message.contains("`/w/set/p1.txt`"), "{}", d.message);
        }
    }

    #[test]
    fn pytorchs_out_of_memory_messages_old_and_new() {
        let new = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 23.65 GiB of which 3.06 MiB is free. Including non-PyTorch memory, this process has 23.63 GiB memory in use.";
        let old = "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 11.76 GiB total capacity; 10.51 GiB already allocated; 4.94 MiB free; 10.71 GiB reserved in total by PyTorch)";
        for line in [
            new,
            old,
            "RuntimeError: CUDA error: out of memory",
            "# OOM during training step, skipping batch 1/3 #",
        ] {
            assert_eq!(
                kind(line).map(|k| k.0),
                Some(FailureKind::OutOfMemory),
                "{line}"
            );
        }
        assert_eq!(
            oom_numbers(new),
            (Some("20.00 MiB".into()), Some("23.65 GiB".into()))
        );
        assert_eq!(
            oom_numbers(old),
            (Some("20.00 MiB".into()), Some("11.76 GiB".into()))
        );
        let facts = RunFacts {
            batch_size: 4,
            ..RunFacts::default()
        };
        let d = Diagnosis::from_signals(&[classify_line(new).unwrap()], &facts).unwrap();
        assert_eq!(d.suggested_batch, Some(2));
        assert!(
            d.message.contains("batch 4")
                && d.message.contains("20.00 MiB")
                && d.message.contains("23.65 GiB"),
            "{}",
            d.message
        );
        assert!(d.what_to_do.contains("batch 2"), "{}", d.what_to_do);
    }

    #[test]
    fn modules_files_captions_and_cuda_are_named() {
        assert_eq!(
            kind("ModuleNotFoundError: No module named 'lion_pytorch'"),
            Some((FailureKind::MissingModule, Some("lion_pytorch".into())))
        );
        assert_eq!(
            kind("ModuleNotFoundError: No module named 'library.train_util'"),
            Some((FailureKind::MissingModule, Some("library".into())))
        );
        assert_eq!(
            kind(
                "FileNotFoundError: [Errno 2] No such file or directory: '/models/sd_xl_base_1.0.safetensors'"
            ),
            Some((
                FailureKind::MissingFile,
                Some("/models/sd_xl_base_1.0.safetensors".into())
            ))
        );
        assert_eq!(
            kind(
                "error: could not read `/m/ldm.safetensors`: No such file or directory (os error 2)"
            ),
            Some((FailureKind::MissingFile, Some("/m/ldm.safetensors".into())))
        );
        assert_eq!(
            kind(
                "2024-05-01 12:00:00 ERROR illegal char in file (not UTF-8) / ファイルにUTF-8以外の文字があります: /data/fox/fox-03.txt"
            ),
            Some((
                FailureKind::CaptionError,
                Some("/data/fox/fox-03.txt".into())
            ))
        );
        assert_eq!(
            kind(
                "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge"
            )
            .map(|k| k.0),
            Some(FailureKind::BadModelFile)
        );
        assert_eq!(
            kind(
                "RuntimeError: CUDA error: no kernel image is available for execution on the device"
            )
            .map(|k| k.0),
            Some(FailureKind::CudaError)
        );
        assert_eq!(
            kind("RuntimeError: Non-finite training loss detected (loss=nan, data_backend_id=fox, filepaths=['a.png'])").map(|k| k.0),
            Some(FailureKind::NanLoss)
        );
        assert_eq!(kind("epoch 1/10"), None);
        assert_eq!(
            kind("steps:  10%|█ | 1/10 [00:01<00:09, 1.00it/s, avr_loss=0.1]"),
            None
        );
    }

    #[test]
    fn the_cause_wins_over_its_consequences() {
        let lines = [
            "Traceback (most recent call last):",
            "RuntimeError: CUDA error: an illegal memory access was encountered",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
        ];
        let signals: Vec<Signal> = lines.iter().filter_map(|l| classify_line(l)).collect();
        let d = Diagnosis::from_signals(
            &signals,
            &RunFacts {
                batch_size: 1,
                ..RunFacts::default()
            },
        )
        .unwrap();
        assert_eq!(d.kind, FailureKind::OutOfMemory);
        assert_eq!(d.suggested_batch, None);
        assert!(d.what_to_do.contains("batch 1"), "{}", d.what_to_do);
    }

    #[test]
    fn a_signal_or_an_exit_code_without_words_is_a_crash() {
        let facts = RunFacts {
            killed_by: Some(11),
            last_lines: vec!["steps:  33%|███ | 1/3 [..]".into()],
            ..RunFacts::default()
        };
        let d = Diagnosis::from_signals(&[], &facts).unwrap();
        assert_eq!(d.kind, FailureKind::Crash);
        assert!(d.message.contains("SIGSEGV"), "{}", d.message);
        let facts = RunFacts {
            ended: Some("exit code 0".into()),
            steps_done: 3,
            steps_wanted: 3,
            ..RunFacts::default()
        };
        assert!(Diagnosis::from_signals(&[], &facts).is_none());
        let facts = RunFacts {
            steps_done: 1,
            ..facts
        };
        assert_eq!(
            Diagnosis::from_signals(&[], &facts).unwrap().kind,
            FailureKind::TooFewSteps
        );
    }
}
