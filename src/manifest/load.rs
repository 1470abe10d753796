//! Reading a manifest: YAML syntax, then typed deserialization that keeps
//! going after the first error so that one run reports them all.
//!
//! Here: where the text comes from (a file read with a size limit, the
//! embedded manifest), its YAML syntax, and locating a syntax error. The
//! typed deserialization is in `load/deserialize.rs`.

mod deserialize;

pub(crate) use deserialize::de_value;
use deserialize::{deserialize_manifest, strip_location};

use super::diag::{Diagnostic, Diagnostics};
use super::document::*;
use super::spans::SpanIndex;
use serde::de::DeserializeOwned;
#[cfg(any(test, feature = "internals"))]
use serde_yaml::Mapping;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// The manifest compiled into the binary (the repo's `manifest.yaml`).
pub const EMBEDDED_MANIFEST: &str = include_str!("../../manifest.yaml");
/// Display name used in diagnostics for the embedded manifest.
pub const EMBEDDED_NAME: &str = "<embedded>/manifest.yaml";
/// Data files the embedded manifest refers to, compiled in beside it.
const EMBEDDED_DATA: &[(&str, &str)] = &[
    (
        "data/products.yaml",
        include_str!("../../data/products.yaml"),
    ),
    ("data/users.yaml", include_str!("../../data/users.yaml")),
];

/// Where a manifest came from, and how to point into it.
#[derive(Debug, Clone)]
pub struct Source {
    /// Name shown in diagnostics.
    pub name: String,
    pub text: String,
    /// Directory that relative `data:` paths resolve against; `None` when embedded.
    pub base_dir: Option<PathBuf>,
    spans: SpanIndex,
}

impl Source {
    /// A diagnostic at the value of `path`.
    pub fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.at(self.spans.value(path), path, message.into())
    }

    /// A diagnostic at the key of `path` (for unknown or misplaced keys).
    pub fn key_error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let pos = self
            .spans
            .key(path)
            .unwrap_or_else(|| self.spans.value(path));
        self.at(pos, path, message.into())
    }

    fn at(&self, (line, column): (usize, usize), path: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.name.clone(),
            line,
            column,
            path: path.to_string(),
            message,
        }
    }

    /// Reads a data file named in the manifest (relative to the manifest):
    /// a regular file of at most `limit` bytes (see [`read_bounded`]).
    pub fn read_data(&self, rel: &str, limit: u64) -> Result<(String, PathBuf), String> {
        match &self.base_dir {
            Some(dir) => {
                let p = dir.join(rel);
                let text = read_bounded(&p, limit, "data file", "service.data_limit_bytes")?;
                Ok((text, p))
            }
            None => EMBEDDED_DATA
                .iter()
                .find(|(k, _)| *k == rel)
                .map(|(_, t)| (t.to_string(), PathBuf::from(rel)))
                .ok_or_else(|| format!("data file {rel:?} is not embedded; pass --manifest")),
        }
    }

    /// Parses `opts` (a plugin's `options:`) as `T`, reporting errors under `path`.
    pub fn options<T: DeserializeOwned + Default>(
        &self,
        opts: &Value,
        path: &str,
        errs: &mut Diagnostics,
    ) -> Option<T> {
        if opts.is_null() {
            return Some(T::default());
        }
        de_value(self, opts, path, errs)
    }
}

/// A manifest with the source it was read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    pub source: Source,
}

/// A manifest that did not deserialize cleanly: its errors and, when every
/// section could be read (bad fields set aside, bad list items dropped),
/// the rest of it, so that validation can report its errors too.
#[derive(Debug)]
pub struct Failed {
    pub diagnostics: Diagnostics,
    pub partial: Option<Box<Loaded>>,
    /// `name`, `path` or `title` of each list item that could not be read.
    pub dropped: Vec<String>,
}

impl From<Failed> for Diagnostics {
    fn from(f: Failed) -> Self {
        f.diagnostics
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.diagnostics.fmt(f)
    }
}

/// The default bound on a manifest file's size: 1 MiB, the most a
/// Kubernetes ConfigMap holds (the demo's is 15 KB). The environment
/// variable `TELLTALE_MANIFEST_LIMIT_BYTES` sets another, up to 64 MiB.
pub const MANIFEST_LIMIT_BYTES: u64 = 1 << 20;
/// The largest `TELLTALE_MANIFEST_LIMIT_BYTES` accepted.
pub const MAX_MANIFEST_LIMIT_BYTES: u64 = 64 << 20;
/// The variable that overrides [`MANIFEST_LIMIT_BYTES`].
pub const MANIFEST_LIMIT_VAR: &str = "TELLTALE_MANIFEST_LIMIT_BYTES";

/// The manifest size bound in force, read once: [`MANIFEST_LIMIT_VAR`] or
/// [`MANIFEST_LIMIT_BYTES`]; an unusable value of the variable is an error.
pub fn manifest_limit() -> Result<u64, String> {
    static LIMIT: std::sync::OnceLock<Result<u64, String>> = std::sync::OnceLock::new();
    LIMIT
        .get_or_init(|| match std::env::var(MANIFEST_LIMIT_VAR) {
            Err(_) => Ok(MANIFEST_LIMIT_BYTES),
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=MAX_MANIFEST_LIMIT_BYTES).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{MANIFEST_LIMIT_VAR}={v:?} must be a byte count from 1 to {MAX_MANIFEST_LIMIT_BYTES}"
                )),
            },
        })
        .clone()
}

/// Reads `path` as UTF-8 text if it is a regular file of at most `limit`
/// bytes (`limit_name` names the setting in errors, `what` the file).
///
/// The file is opened without blocking and checked on the open descriptor,
/// so a FIFO, a device or a directory put in its place (even between a
/// check and the open) is refused at once and never read; the read itself
/// stops one byte past `limit`, so a file that grows while read cannot take
/// more memory than that.
pub fn read_bounded(
    path: &Path,
    limit: u64,
    what: &str,
    limit_name: &str,
) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No O_NONBLOCK here: look before opening (a FIFO would block the open).
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(not_regular(what, &shown.to_string()));
        }
    }
    let file = open
        .open(path)
        .map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular(what, &shown.to_string()));
    }
    if meta.len() > limit {
        return Err(format!(
            "{what} {shown} has {} bytes, over {limit_name} ({limit})",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{what} {shown} grew past {limit_name} ({limit}) while read"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{what} {shown} is not UTF-8 text (byte {} is not valid)",
            e.utf8_error().valid_up_to()
        )
    })
}

fn not_regular(what: &str, shown: &str) -> String {
    format!("{what} {shown} is not a regular file (a FIFO, device or directory is never read)")
}

/// Loads and deserializes `path` (no semantic validation yet).
pub fn load_file(path: &Path) -> Result<Loaded, Failed> {
    let name = path.display().to_string();
    let text = manifest_limit()
        .and_then(|limit| read_bounded(path, limit, "manifest", MANIFEST_LIMIT_VAR))
        .map_err(|message| Failed {
            diagnostics: Diagnostics(vec![Diagnostic {
                file: name.clone(),
                line: 1,
                column: 1,
                path: String::new(),
                message,
            }]),
            partial: None,
            dropped: Vec::new(),
        })?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    load_str(&name, &text, Some(base))
}

/// Loads the manifest compiled into the binary.
pub fn load_embedded() -> Result<Loaded, Failed> {
    load_str(EMBEDDED_NAME, EMBEDDED_MANIFEST, None)
}

/// Loads manifest text; `base_dir` resolves relative data files.
pub fn load_str(name: &str, text: &str, base_dir: Option<PathBuf>) -> Result<Loaded, Failed> {
    let whole = |line, column, message: String| Failed {
        diagnostics: Diagnostics(vec![Diagnostic {
            file: name.to_string(),
            line,
            column,
            path: String::new(),
            message,
        }]),
        partial: None,
        dropped: Vec::new(),
    };
    let spans = SpanIndex::build(text).map_err(|((l, c), msg)| {
        before_syntax_error(name, text, whole(l, c, format!("YAML syntax error: {msg}")))
    })?;
    let source = Source {
        name: name.to_string(),
        text: text.to_string(),
        base_dir,
        spans,
    };
    let root: Value = serde_yaml::from_str(text).map_err(|e| {
        let (l, c) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .or_else(|| first_alias(text))
            .unwrap_or((1, 1));
        let msg = strip_location(&e.to_string());
        let hint = if msg.contains("limit exceeded") {
            " (the aliases from here on expand to too many nodes)"
        } else {
            ""
        };
        before_syntax_error(name, text, whole(l, c, format!("YAML error: {msg}{hint}")))
    })?;
    let mut errs = Diagnostics::default();
    let mut dropped = Vec::new();
    let manifest = deserialize_manifest(&source, root, &mut errs, &mut dropped);
    match manifest {
        Some(m) if errs.is_empty() => Ok(Loaded {
            manifest: m,
            source,
        }),
        m => Err(Failed {
            diagnostics: errs.finish(),
            partial: m.map(|manifest| Box::new(Loaded { manifest, source })),
            dropped,
        }),
    }
}

/// A YAML error stops only what follows it: the top-level sections before
/// the one it is in are still read, and their type errors (and unknown
/// keys) are reported with it. Their semantic checks are not run, since
/// they may refer to what the error hid.
fn before_syntax_error(name: &str, text: &str, mut failed: Failed) -> Failed {
    let Some(err) = failed.diagnostics.0.first_mut() else {
        return failed;
    };
    let lines: Vec<&str> = text.lines().collect();
    let top = |l: &str| {
        l.chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && c != '#' && c != '-')
    };
    // The top-level key line that starts the section holding the error.
    let Some(cut) = (0..err.line.min(lines.len()))
        .rev()
        .find(|&i| top(lines[i]))
    else {
        return failed;
    };
    if cut == 0 {
        return failed;
    }
    let section = lines[cut]
        .split(':')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    err.message = format!(
        "{} (section `{section}` and those after it were not checked)",
        err.message
    );
    let prefix = lines[..cut].join("\n") + "\n";
    let Ok(spans) = SpanIndex::build(&prefix) else {
        return failed;
    };
    let Ok(root) = serde_yaml::from_str::<Value>(&prefix) else {
        return failed;
    };
    let present: Vec<String> = match &root {
        Value::Mapping(m) => m
            .keys()
            .filter_map(|k| k.as_str())
            .map(String::from)
            .collect(),
        _ => return failed,
    };
    let source = Source {
        name: name.to_string(),
        text: prefix.clone(),
        base_dir: None,
        spans,
    };
    let mut errs = Diagnostics::default();
    let _ = deserialize_manifest(&source, root, &mut errs, &mut Vec::new());
    let first = |p: &str| p.split(['.', '[']).next().unwrap_or("").to_string();
    failed.diagnostics.0.extend(
        errs.0
            .into_iter()
            .filter(|d| !d.path.is_empty() && present.contains(&first(&d.path))),
    );
    failed.diagnostics = std::mem::take(&mut failed.diagnostics).finish();
    failed
}

/// Where the first alias (`*name`) is used: serde_yaml gives no location
/// when aliases expand past its limits (the "billion laughs"), and that is
/// where the expansion starts.
fn first_alias(text: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let mut quote: Option<char> = None;
        for (j, c) in code.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '*') => {
                    let next = code[j + 1..].chars().next();
                    let before = code[..j].chars().last();
                    if next.is_some_and(|n| n.is_alphanumeric() || n == '_')
                        && before.is_none_or(|b| b.is_whitespace() || "[{,:-".contains(b))
                    {
                        return Some((i + 1, code[..j].chars().count() + 1));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// Used by validation to quote the mapping keys a plugin accepts.
#[cfg(any(test, feature = "internals"))]
pub fn mapping_keys(m: &Mapping) -> Vec<String> {
    m.keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod every_error {
    use super::deserialize::{steps, Step};
    use super::*;

    #[test]
    fn paths_split_into_keys_and_indexes() {
        assert_eq!(
            steps("targets[0].expr"),
            [
                Step::Key("targets".into()),
                Step::Index(0),
                Step::Key("expr".into())
            ]
        );
        assert!(steps(".").is_empty());
    }

    #[test]
    fn a_syntax_error_stops_only_what_follows_it() {
        let text = "service:\n  name: x\n  version: \"1\"\n  port: \"x\"\nendpoints:\n  - path: /\n    tags: [a, b\n    summary: oops\nmetrics:\n  - name: BAD NAME\n";
        let e = load_str("m.yaml", text, None).err().unwrap();
        let shown: Vec<String> = e.diagnostics.0.iter().map(|d| d.to_string()).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("m.yaml:4:9: service.port: invalid type"),
            "{shown:?}"
        );
        assert!(shown[1].contains("YAML syntax error"), "{shown:?}");
        assert!(
            shown[1].contains("section `endpoints` and those after it were not checked"),
            "{shown:?}"
        );
        // Nothing from the unchecked sections, and no "missing section" noise.
        assert!(shown
            .iter()
            .all(|s| !s.contains("metrics") && !s.contains("missing")));
    }

    #[test]
    fn a_billion_laughs_is_located_at_its_first_alias() {
        let mut text = String::from("service: &a [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
            let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
            let list = vec![format!("*{prev}"); 9].join(", ");
            text.push_str(&format!("{name}: &{name} [{list}]\n"));
        }
        let e = load_str("m.yaml", &text, None).err().unwrap();
        let d = e
            .diagnostics
            .0
            .iter()
            .find(|d| d.message.contains("YAML error"))
            .unwrap_or_else(|| panic!("{e}"));
        assert_eq!((d.line, d.column), (2, 8), "{e}");
        assert!(d.message.contains("expand to too many nodes"), "{e}");
    }

    #[test]
    fn every_bad_field_of_one_value_is_reported() {
        let text = "service:\n  name: x\n  version: 1.0\n  port: nope\n  host: [1]\n  shutdown_timeout_seconds: soon\n";
        let src = load_str("m.yaml", text, None).err().unwrap();
        let shown = src.to_string();
        for field in [
            "service.port",
            "service.host",
            "service.shutdown_timeout_seconds",
        ] {
            assert!(shown.contains(field), "{field} missing from:\n{shown}");
        }
    }
}
