//! The artist's eye: the taste Ategnatos remembers between conversations
//! (colour, texture, composition, style, subject, and what to avoid or
//! never do), each preference with how many times the artist confirmed it.
//!
//! The record is `grimoire/.state/eye.json`; `grimoire/eye.md` is its
//! rendering, one preference a line, in a shape this module can read back.
//! Both are written only here, atomically, the record first. A damaged
//! record is never written over blindly: when `eye.md` still reads, the
//! preferences are recovered from it and the damaged record is kept aside
//! (renamed, with a timestamp) before the repaired one is written; when
//! neither reads, every call refuses and says which file to fix.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::studio::{Hint, StudioError, Workspace, check_project_name, clock, write_atomic};

/// What a preference is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    Colour,
    Texture,
    Composition,
    Style,
    Subject,
}

impl Aspect {
    pub const ALL: [Aspect; 5] = [
        Aspect::Colour,
        Aspect::Texture,
        Aspect::Composition,
        Aspect::Style,
        Aspect::Subject,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Aspect::Colour => "colour",
            Aspect::Texture => "texture",
            Aspect::Composition => "composition",
            Aspect::Style => "style",
            Aspect::Subject => "subject",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Aspect::Colour => "Colour",
            Aspect::Texture => "Texture",
            Aspect::Composition => "Composition",
            Aspect::Style => "Style",
            Aspect::Subject => "Subject",
        }
    }

    fn from_word(word: &str) -> Option<Aspect> {
        Aspect::ALL.into_iter().find(|a| a.word() == word)
    }
}

/// How the artist feels about it: a like, something to steer away from
/// (AVOID: a soft negative, fine when asked for), or a hard line (NEVER).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    // Ordered first: a NEVER outranks everything else when shown.
    Never,
    Avoid,
    #[default]
    Like,
}

impl Stance {
    pub fn word(self) -> &'static str {
        match self {
            Stance::Never => "NEVER",
            Stance::Avoid => "AVOID",
            Stance::Like => "like",
        }
    }

    fn from_word(word: &str) -> Option<Stance> {
        [Stance::Never, Stance::Avoid, Stance::Like]
            .into_iter()
            .find(|s| s.word() == word)
    }
}

/// One remembered preference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Preference {
    pub aspect: Aspect,
    pub stance: Stance,
    /// In the artist's words.
    pub text: String,
    /// How many times the artist stated or confirmed it.
    pub confirmed: u32,
    /// Only for this project; absent means everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// When first noted (empty when recovered from `eye.md`).
    #[serde(default)]
    pub first_noted: String,
    #[serde(default)]
    pub last_confirmed: String,
}

impl Preference {
    /// `NEVER (colour): neon pink, confirmed 3×`.
    pub fn short(&self) -> String {
        let scope = match &self.project {
            Some(p) => format!(", project `{p}`"),
            None => String::new(),
        };
        format!(
            "{} ({}): {}, confirmed {}×{scope}",
            self.stance.word(),
            self.aspect.word(),
            self.text,
            self.confirmed
        )
    }

    fn same_subject(&self, aspect: Aspect, text: &str, project: Option<&str>) -> bool {
        self.aspect == aspect
            && normalised(&self.text) == normalised(text)
            && self.project.as_deref() == project
    }

    fn applies_to(&self, project: Option<&str>) -> bool {
        match (&self.project, project) {
            (None, _) => true,
            (Some(mine), Some(asked)) => mine == asked,
            (Some(_), None) => false,
        }
    }
}

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Eye {
    pub preferences: Vec<Preference>,
}

/// Longest preference text kept (a preference is a phrase, not an essay).
pub const MAX_TEXT_CHARS: usize = 200;
/// How many preferences a caption preview or evaluation shows.
pub const SHOWN_WITH_WORK: usize = 8;

/// Why the eye could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum EyeError {
    #[error(
        "the artist's eye is damaged: `{record}` cannot be read ({record_reason}) and neither can `{rendering}` ({rendering_reason}); nothing was changed"
    )]
    Damaged {
        record: String,
        record_reason: String,
        rendering: String,
        rendering_reason: String,
    },
    #[error("a preference needs words: the text `{text}` is empty")]
    EmptyText { text: String },
    #[error("the preference is {chars} characters long, more than {MAX_TEXT_CHARS}")]
    TooLong { chars: usize },
    #[error("there is no {aspect} preference `{text}` to forget{scope}")]
    NotRemembered {
        aspect: &'static str,
        text: String,
        scope: String,
        close: Vec<String>,
    },
    #[error(transparent)]
    Studio(#[from] StudioError),
}

impl Hint for EyeError {
    fn hint(&self) -> Option<String> {
        match self {
            EyeError::Damaged { rendering, .. } => Some(format!(
                "open `{rendering}` and repair the line it names (each preference is `- text — stance, aspect, confirmed N×`), or move both files aside to start a fresh eye"
            )),
            EyeError::EmptyText { .. } => {
                Some("say the preference in a few words, e.g. `warm ochre light`".into())
            }
            EyeError::TooLong { .. } => {
                Some("keep it to a phrase; store each idea as its own preference".into())
            }
            EyeError::NotRemembered { close, .. } if !close.is_empty() => Some(format!(
                "recall_preferences lists what is remembered; close ones: {}",
                close.join("; ")
            )),
            EyeError::NotRemembered { .. } => {
                Some("recall_preferences lists what is remembered".into())
            }
            EyeError::Studio(e) => e.hint(),
        }
    }
}

fn record_path(ws: &Workspace) -> PathBuf {
    ws.state_dir().join("eye.json")
}

fn rendering_path(ws: &Workspace) -> PathBuf {
    ws.grimoire().join("eye.md")
}

/// What was read, and whether it had to be recovered.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub eye: Eye,
    /// Set when the record was damaged and `eye.md` stood in for it: why.
    pub recovered: Option<String>,
    /// `eye.md` differs from the record (hand-edited or damaged): it is kept
    /// aside before it is rendered again.
    pub rendering_differs: bool,
}

/// Reads the eye without changing anything.
pub fn load(ws: &Workspace) -> Result<Loaded, EyeError> {
    let record = record_path(ws);
    let rendering = rendering_path(ws);
    let md = read_optional(&rendering)?;
    let parsed_md = md.as_deref().map(parse_rendering);
    match read_optional(&record)? {
        Some(bytes) => match serde_json::from_slice::<Eye>(&bytes) {
            Ok(eye) => {
                let rendering_differs = match &parsed_md {
                    None => false,
                    Some(Ok(from_md)) => !same_preferences(from_md, &eye),
                    Some(Err(_)) => true,
                };
                Ok(Loaded {
                    eye,
                    recovered: None,
                    rendering_differs,
                })
            }
            Err(e) => match parsed_md {
                Some(Ok(eye)) => Ok(Loaded {
                    eye,
                    recovered: Some(format!(
                        "`{}` was damaged ({e}); the preferences were read back from `{}`",
                        ws.display_path(&record),
                        ws.display_path(&rendering)
                    )),
                    rendering_differs: false,
                }),
                Some(Err(md_reason)) => Err(damaged(ws, e.to_string(), md_reason)),
                None => Err(damaged(ws, e.to_string(), "it is missing".into())),
            },
        },
        None => match parsed_md {
            None => Ok(Loaded {
                eye: Eye::default(),
                recovered: None,
                rendering_differs: false,
            }),
            Some(Ok(eye)) => Ok(Loaded {
                recovered: (!eye.preferences.is_empty()).then(|| {
                    format!(
                        "`{}` was missing; the preferences were read back from `{}`",
                        ws.display_path(&record),
                        ws.display_path(&rendering)
                    )
                }),
                eye,
                rendering_differs: false,
            }),
            Some(Err(md_reason)) => Err(damaged(ws, "it is missing".into(), md_reason)),
        },
    }
}

fn damaged(ws: &Workspace, record_reason: String, rendering_reason: String) -> EyeError {
    EyeError::Damaged {
        record: ws.display_path(&record_path(ws)),
        record_reason,
        rendering: ws.display_path(&rendering_path(ws)),
        rendering_reason,
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, EyeError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StudioError::Read {
            path: path.to_path_buf(),
            source,
        }
        .into()),
    }
}

fn same_preferences(a: &Eye, b: &Eye) -> bool {
    let key = |p: &Preference| {
        (
            p.aspect,
            p.stance,
            normalised(&p.text),
            p.confirmed,
            p.project.clone(),
        )
    };
    let mut ka: Vec<_> = a.preferences.iter().map(key).collect();
    let mut kb: Vec<_> = b.preferences.iter().map(key).collect();
    ka.sort();
    kb.sort();
    ka == kb
}

/// Lowercase words separated by single spaces: how two phrasings of the
/// same preference are matched.
fn normalised(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line of text, whitespace collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the artist said.
#[derive(Debug, Clone)]
pub struct Remember {
    pub text: String,
    pub aspect: Aspect,
    pub stance: Stance,
    pub project: Option<String>,
    /// Drop the preference instead.
    pub forget: bool,
}

/// What remembering did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Remembered {
    /// `added`, `confirmed`, `changed` (stance) or `forgotten`.
    pub action: &'static str,
    pub preference: Preference,
    /// Preferences remembered in all.
    pub total: usize,
    pub file: String,
    /// Set when a damaged record was repaired: what happened, and where the
    /// damaged copy was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<String>,
}

impl Remembered {
    pub fn plain_summary(&self) -> String {
        let p = &self.preference;
        let mut s = match self.action {
            "added" => format!("Remembered: {}.", p.short()),
            "confirmed" => format!("Confirmed again ({}× now): {}.", p.confirmed, p.short()),
            "changed" => format!("Changed: now {}.", p.short()),
            _ => format!("Forgot: {}.", p.short()),
        };
        s.push_str(&format!(" {} preference(s) in {}.", self.total, self.file));
        if let Some(r) = &self.repaired {
            s.push(' ');
            s.push_str(r);
        }
        s
    }
}

/// Adds, confirms, changes or forgets one preference, and writes the
/// record and its rendering.
pub fn remember(ws: &Workspace, req: &Remember) -> Result<Remembered, EyeError> {
    let text = one_line(&req.text);
    if text.is_empty() {
        return Err(EyeError::EmptyText {
            text: req.text.clone(),
        });
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(EyeError::TooLong { chars });
    }
    if let Some(p) = &req.project {
        check_project_name(p)?;
    }
    let loaded = load(ws)?;
    let mut eye = loaded.eye;
    let now = clock::now_rfc3339();
    let project = req.project.as_deref();
    let at = eye
        .preferences
        .iter()
        .position(|p| p.same_subject(req.aspect, &text, project));
    let (action, preference) = match (at, req.forget) {
        (Some(i), true) => ("forgotten", eye.preferences.remove(i)),
        (None, true) => {
            let words = normalised(&text);
            let close = eye
                .preferences
                .iter()
                .filter(|p| {
                    words
                        .split(' ')
                        .any(|w| w.len() > 2 && normalised(&p.text).contains(w))
                })
                .map(Preference::short)
                .take(5)
                .collect();
            return Err(EyeError::NotRemembered {
                aspect: req.aspect.word(),
                text,
                scope: project
                    .map(|p| format!(" for project `{p}`"))
                    .unwrap_or_default(),
                close,
            });
        }
        (Some(i), false) => {
            let p = &mut eye.preferences[i];
            let action = if p.stance == req.stance {
                "confirmed"
            } else {
                "changed"
            };
            p.stance = req.stance;
            p.confirmed = p.confirmed.saturating_add(1);
            p.last_confirmed = now;
            (action, p.clone())
        }
        (None, false) => {
            let p = Preference {
                aspect: req.aspect,
                stance: req.stance,
                text,
                confirmed: 1,
                project: req.project.clone(),
                first_noted: now.clone(),
                last_confirmed: now,
            };
            eye.preferences.push(p.clone());
            ("added", p)
        }
    };
    let repaired = save(
        ws,
        &eye,
        loaded.recovered.as_deref(),
        loaded.rendering_differs,
    )?;
    Ok(Remembered {
        action,
        preference,
        total: eye.preferences.len(),
        file: ws.display_path(&rendering_path(ws)),
        repaired,
    })
}

/// Writes the record, then its rendering; whatever would be written over
/// that is not what we wrote last time is first kept aside.
fn save(
    ws: &Workspace,
    eye: &Eye,
    recovered: Option<&str>,
    rendering_differs: bool,
) -> Result<Option<String>, EyeError> {
    let stamp = clock::stamp(clock::unix_now());
    let mut notes = Vec::new();
    let record = record_path(ws);
    if recovered.is_some() && record.exists() {
        let aside = keep_aside(&record, &stamp)?;
        notes.push(format!(
            "{}; the damaged record was kept as `{}`.",
            recovered.unwrap_or_default(),
            ws.display_path(&aside)
        ));
    }
    let rendering = rendering_path(ws);
    if rendering_differs && rendering.exists() {
        let aside = keep_aside(&rendering, &stamp)?;
        notes.push(format!(
            "`{}` did not match the record (edited by hand?); it was kept as `{}` and written again.",
            ws.display_path(&rendering),
            ws.display_path(&aside)
        ));
    }
    let mut json = serde_json::to_vec_pretty(eye).map_err(|e| StudioError::Write {
        path: record.clone(),
        source: std::io::Error::other(e),
    })?;
    json.push(b'\n');
    write_atomic(&record, &json)?;
    write_atomic(&rendering, render(eye).as_bytes())?;
    Ok((!notes.is_empty()).then(|| notes.join(" ")))
}

/// Renames `path` to `<name>.damaged-<stamp>` beside it.
fn keep_aside(path: &Path, stamp: &str) -> Result<PathBuf, EyeError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = path.with_file_name(format!("{name}.damaged-{stamp}"));
    std::fs::rename(path, &aside).map_err(|source| StudioError::Write {
        path: aside.clone(),
        source,
    })?;
    Ok(aside)
}

const TITLE: &str = "# The artist's eye";
const DISLIKES: &str = "Dislikes";

/// `eye.md`: likes by aspect, then the dislikes (NEVER before AVOID), each
/// line `- text — stance, aspect, confirmed N×[, project p]`.
pub fn render(eye: &Eye) -> String {
    let mut out = format!(
        "{TITLE}\n\nWhat the artist likes and dislikes, kept by Ategnatos through `remember_preference` \
         (edit it through that tool: a hand edit is kept aside and replaced). NEVER is a hard line; \
         AVOID steers away unless asked. The count is how often the artist confirmed it.\n"
    );
    let mut sorted = eye.preferences.clone();
    sorted.sort_by(|a, b| {
        (a.stance, std::cmp::Reverse(a.confirmed), &a.text).cmp(&(
            b.stance,
            std::cmp::Reverse(b.confirmed),
            &b.text,
        ))
    });
    for aspect in Aspect::ALL {
        out.push_str(&format!("\n## {}\n\n", aspect.heading()));
        let mut any = false;
        for p in sorted
            .iter()
            .filter(|p| p.aspect == aspect && p.stance == Stance::Like)
        {
            out.push_str(&line(p));
            any = true;
        }
        if !any {
            out.push_str("(nothing yet)\n");
        }
    }
    out.push_str(&format!("\n## {DISLIKES}\n\n"));
    let mut any = false;
    for p in sorted.iter().filter(|p| p.stance != Stance::Like) {
        out.push_str(&line(p));
        any = true;
    }
    if !any {
        out.push_str("(nothing yet)\n");
    }
    out
}

fn line(p: &Preference) -> String {
    let scope = match &p.project {
        Some(name) => format!(", project {name}"),
        None => String::new(),
    };
    format!(
        "- {} — {}, {}, confirmed {}×{scope}\n",
        p.text,
        p.stance.word(),
        p.aspect.word(),
        p.confirmed
    )
}

/// Reads `eye.md` back; the error names the first line that does not read.
pub fn parse_rendering(bytes: &[u8]) -> Result<Eye, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    if !text.starts_with(TITLE) {
        return Err(format!("it does not start with `{TITLE}`"));
    }
    let mut eye = Eye::default();
    for (n, raw) in text.lines().enumerate() {
        let Some(item) = raw.strip_prefix("- ") else {
            continue;
        };
        let bad = || {
            format!(
                "line {} `{raw}` is not `- text — stance, aspect, confirmed N×`",
                n + 1
            )
        };
        let (words, meta) = item.rsplit_once(" — ").ok_or_else(bad)?;
        let fields: Vec<&str> = meta.split(", ").collect();
        if fields.len() < 3 || fields.len() > 4 {
            return Err(bad());
        }
        let stance = Stance::from_word(fields[0]).ok_or_else(bad)?;
        let aspect = Aspect::from_word(fields[1]).ok_or_else(bad)?;
        let confirmed = fields[2]
            .strip_prefix("confirmed ")
            .and_then(|c| c.strip_suffix('×'))
            .and_then(|c| c.parse::<u32>().ok())
            .ok_or_else(bad)?;
        let project = match fields.get(3) {
            Some(f) => {
                let name = f.strip_prefix("project ").ok_or_else(bad)?;
                check_project_name(name).map_err(|_| bad())?;
                Some(name.to_string())
            }
            None => None,
        };
        let words = one_line(words);
        if words.is_empty() {
            return Err(bad());
        }
        eye.preferences.push(Preference {
            aspect,
            stance,
            text: words,
            confirmed,
            project,
            first_noted: String::new(),
            last_confirmed: String::new(),
        });
    }
    Ok(eye)
}

/// What `recall_preferences` returns.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Recalled {
    /// NEVER first, then AVOID, then likes; most confirmed first within each.
    pub preferences: Vec<Preference>,
    /// Matching preferences not shown (past the limit).
    pub more: usize,
    pub file: String,
    /// Set when the record was damaged and these were read from `eye.md`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

impl Recalled {
    pub fn plain_summary(&self) -> String {
        if self.preferences.is_empty() {
            return "Nothing remembered yet about the artist's taste: when they say what they like or never want, keep it with remember_preference.".into();
        }
        let mut s = format!(
            "The artist's eye ({} shown{}): {}.",
            self.preferences.len(),
            if self.more > 0 {
                format!(", {} more", self.more)
            } else {
                String::new()
            },
            self.preferences
                .iter()
                .map(Preference::short)
                .collect::<Vec<_>>()
                .join("; ")
        );
        if let Some(r) = &self.recovered {
            s.push_str(&format!(
                " Note: {r}; the next remember_preference repairs the record."
            ));
        }
        s
    }
}

/// The preferences that apply to `project` (everywhere ones included),
/// optionally of one aspect or containing `words`, at most `limit`.
pub fn recall(
    ws: &Workspace,
    project: Option<&str>,
    aspect: Option<Aspect>,
    words: Option<&str>,
    limit: usize,
) -> Result<Recalled, EyeError> {
    if let Some(p) = project {
        check_project_name(p)?;
    }
    let loaded = load(ws)?;
    let wanted: Vec<String> = words
        .map(|w| normalised(w).split(' ').map(String::from).collect())
        .unwrap_or_default();
    let mut matching: Vec<Preference> = loaded
        .eye
        .preferences
        .into_iter()
        .filter(|p| p.applies_to(project))
        .filter(|p| aspect.is_none_or(|a| p.aspect == a))
        .filter(|p| {
            let t = normalised(&p.text);
            wanted
                .iter()
                .all(|w| w.is_empty() || t.contains(w.as_str()))
        })
        .collect();
    matching.sort_by(|a, b| {
        (a.stance, std::cmp::Reverse(a.confirmed), &a.text).cmp(&(
            b.stance,
            std::cmp::Reverse(b.confirmed),
            &b.text,
        ))
    });
    let more = matching.len().saturating_sub(limit);
    matching.truncate(limit);
    Ok(Recalled {
        preferences: matching,
        more,
        file: ws.display_path(&rendering_path(ws)),
        recovered: loaded.recovered,
    })
}

/// The few preferences to show beside work on `project` (a caption
/// preview, an evaluation): one short line each, or a note when the eye
/// cannot be read. Never fails: the work goes on without them.
pub fn beside_work(ws: &Workspace, project: &str) -> Vec<String> {
    match recall(ws, Some(project), None, None, SHOWN_WITH_WORK) {
        Ok(r) => {
            let mut lines: Vec<String> = r.preferences.iter().map(Preference::short).collect();
            if r.more > 0 {
                lines.push(format!("… {} more (recall_preferences)", r.more));
            }
            lines
        }
        Err(e) => vec![format!("the artist's eye could not be read: {e}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pref(
        text: &str,
        aspect: Aspect,
        stance: Stance,
        n: u32,
        project: Option<&str>,
    ) -> Preference {
        Preference {
            aspect,
            stance,
            text: text.into(),
            confirmed: n,
            project: project.map(String::from),
            first_noted: String::new(),
            last_confirmed: String::new(),
        }
    }

    #[test]
    fn the_rendering_reads_back_as_the_same_preferences() {
        let eye = Eye {
            preferences: vec![
                pref(
                    "warm ochre — and teal",
                    Aspect::Colour,
                    Stance::Like,
                    3,
                    None,
                ),
                pref(
                    "neon pink",
                    Aspect::Colour,
                    Stance::Never,
                    1,
                    Some("ink-fox"),
                ),
                pref(
                    "busy backgrounds",
                    Aspect::Composition,
                    Stance::Avoid,
                    2,
                    None,
                ),
            ],
        };
        let back = parse_rendering(render(&eye).as_bytes()).unwrap();
        assert!(same_preferences(&eye, &back), "{back:?}");
    }

    #[test]
    fn a_mangled_line_is_named() {
        let text = format!("{TITLE}\n\n## Colour\n\n- warm light — like, colour, confirmed lots\n");
        let err = parse_rendering(text.as_bytes()).unwrap_err();
        assert!(err.contains("line 5"), "{err}");
    }
}
