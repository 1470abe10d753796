//! Reading a manifest: YAML syntax, then typed deserialization that keeps
//! going after the first error so that one run reports them all.

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

const SECTIONS: &[&str] = &[
    "service",
    "auth",
    "endpoints",
    "tracing",
    "dependencies",
    "metrics",
    "logging",
    "dashboard",
    "objectives",
    "alerts",
    "rules",
    "stack",
    "datasource",
    "kubernetes",
];

/// The manifest as far as it can be read: a bad field is reported and left
/// at its default, a bad list item reported and dropped (its name kept in
/// `dropped`). `None` only without a readable `service`.
fn deserialize_manifest(
    src: &Source,
    root: Value,
    errs: &mut Diagnostics,
    dropped: &mut Vec<String>,
) -> Option<Manifest> {
    let Value::Mapping(mut map) = root else {
        errs.push(src.error(
            "",
            "the manifest must be a YAML mapping with a `service` section",
        ));
        return None;
    };
    for k in map.keys() {
        let key = k.as_str().unwrap_or("?");
        if !SECTIONS.contains(&key) {
            errs.push(src.key_error(
                key,
                format!("unknown section `{key}` (known: {})", SECTIONS.join(", ")),
            ));
        }
    }
    let mut take = |k: &str| map.remove(k).unwrap_or(Value::Null);
    let service = match take("service") {
        Value::Null => {
            errs.push(src.error("", "missing required section `service`"));
            None
        }
        v => de_best::<Service>(src, &v, "service", errs),
    };
    let auth = de_or_default::<Auth>(src, take("auth"), "auth", errs);
    let endpoints = de_list::<Endpoint>(src, take("endpoints"), "endpoints", errs, dropped);
    let tracing = de_or_default::<super::traces::Tracing>(src, take("tracing"), "tracing", errs);
    let dependencies = de_list::<super::dependencies::Dependency>(
        src,
        take("dependencies"),
        "dependencies",
        errs,
        dropped,
    );
    let metrics = de_list::<Metric>(src, take("metrics"), "metrics", errs, dropped);
    let logging = de_or_default::<Logging>(src, take("logging"), "logging", errs);
    let objectives = de_list::<Objective>(src, take("objectives"), "objectives", errs, dropped);
    let alerts = de_list::<Alert>(src, take("alerts"), "alerts", errs, dropped);
    let rules = de_or_default::<RuleSettings>(src, take("rules"), "rules", errs);
    let stack = de_or_default::<Stack>(src, take("stack"), "stack", errs);
    let datasource =
        de_or_default::<DatasourceSection>(src, take("datasource"), "datasource", errs);
    let kubernetes = de_or_default::<Kubernetes>(src, take("kubernetes"), "kubernetes", errs);
    let dashboard = match take("dashboard") {
        Value::Mapping(mut d) => {
            let panels = d.remove("panels").unwrap_or(Value::Null);
            let mut dash = de_or_default::<Dashboard>(src, Value::Mapping(d), "dashboard", errs);
            let panels = de_list::<Panel>(src, panels, "dashboard.panels", errs, dropped);
            if let (Some(d), Some(p)) = (dash.as_mut(), panels) {
                d.panels = p;
            }
            dash
        }
        other => de_or_default::<Dashboard>(src, other, "dashboard", errs),
    };
    Some(Manifest {
        service: service?,
        auth: auth.unwrap_or_default(),
        endpoints: endpoints.unwrap_or_default(),
        tracing: tracing.unwrap_or_default(),
        dependencies: dependencies.unwrap_or_default(),
        metrics: metrics.unwrap_or_default(),
        logging: logging.unwrap_or_default(),
        dashboard: dashboard.unwrap_or_default(),
        objectives: objectives.unwrap_or_default(),
        alerts: alerts.unwrap_or_default(),
        rules: rules.unwrap_or_default(),
        stack: stack.unwrap_or_default(),
        datasource: datasource.unwrap_or_default(),
        kubernetes: kubernetes.unwrap_or_default(),
    })
}

fn de_or_default<T: DeserializeOwned + Default>(
    src: &Source,
    v: Value,
    path: &str,
    errs: &mut Diagnostics,
) -> Option<T> {
    if v.is_null() {
        return Some(T::default());
    }
    de_best(src, &v, path, errs)
}

/// Deserializes each element on its own, so one bad item does not hide the
/// next; an item that cannot be read at all is dropped (its name noted).
fn de_list<T: DeserializeOwned>(
    src: &Source,
    v: Value,
    path: &str,
    errs: &mut Diagnostics,
    dropped: &mut Vec<String>,
) -> Option<Vec<T>> {
    let items = match v {
        Value::Null => return Some(Vec::new()),
        Value::Sequence(items) => items,
        _ => {
            errs.push(src.error(path, "expected a list"));
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match de_best::<T>(src, item, &format!("{path}[{i}]"), errs) {
            Some(t) => out.push(t),
            None => dropped.extend(
                ["name", "path", "title"]
                    .iter()
                    .find_map(|k| item.get(*k).and_then(Value::as_str))
                    .map(str::to_string),
            ),
        }
    }
    Some(out)
}

/// Most errors reported for one value before giving up on it.
const MAX_ERRORS_PER_VALUE: usize = 64;

/// One step of a serde path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `targets[0].expr` → [Key targets, Index 0, Key expr]; `.` → [].
fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    if path == "." {
        return out;
    }
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            if let Ok(i) = r[..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &r[end + 1..];
        }
    }
    out
}

/// Removes the mapping entry at `steps` from `v` (the field that failed),
/// or the list item there if it is a scalar (a bad host in a list of
/// hosts) or `whole` is set (an item that cannot be read at all), so that
/// deserializing again finds the next error. `false` when the path ends at
/// neither.
fn remove_at(v: &mut Value, steps: &[Step], whole: bool) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut cur = v;
    for s in parents {
        cur = match (s, cur) {
            (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(next) => next,
                None => return false,
            },
            (Step::Index(i), Value::Sequence(items)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Mapping(m)) => m.shift_remove(k.as_str()).is_some(),
        (Step::Index(i), Value::Sequence(items))
            if items
                .get(*i)
                .is_some_and(|x| whole || (!x.is_mapping() && !x.is_sequence())) =>
        {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// `steps` in the value as first given: the list items set aside before
/// (`gone`: each list's steps, in the original's indexes, and the item's
/// original index) shift the indexes after them.
fn original(steps: &[Step], gone: &[(Vec<Step>, usize)]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for s in steps {
        let step = match s {
            Step::Index(i) => {
                let mut before: Vec<usize> = gone
                    .iter()
                    .filter(|(list, _)| *list == out)
                    .map(|(_, j)| *j)
                    .collect();
                before.sort_unstable();
                let mut i = *i;
                for j in before {
                    if j <= i {
                        i += 1;
                    }
                }
                Step::Index(i)
            }
            Step::Key(k) => Step::Key(k.clone()),
        };
        out.push(step);
    }
    out
}

/// Steps as a serde path: `targets[0].expr`, `.` for none.
fn path_of(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

/// Deserializes `v` as `T`; an error is located through its serde path.
/// After an error the offending field is set aside and `v` is read again,
/// so that every mistake in one value is reported, not only the first.
pub(crate) fn de_value<T: DeserializeOwned>(
    src: &Source,
    v: &Value,
    path: &str,
    errs: &mut Diagnostics,
) -> Option<T> {
    match de_inner(src, v, path, errs) {
        (Some(t), true) => Some(t),
        _ => None,
    }
}

/// Like [`de_value`], but the value read with its bad fields set aside
/// (at their defaults) is returned too: the rest is still checked.
fn de_best<T: DeserializeOwned>(
    src: &Source,
    v: &Value,
    path: &str,
    errs: &mut Diagnostics,
) -> Option<T> {
    de_inner(src, v, path, errs).0
}

/// The value, and whether it was read without any error.
fn de_inner<T: DeserializeOwned>(
    src: &Source,
    v: &Value,
    path: &str,
    errs: &mut Diagnostics,
) -> (Option<T>, bool) {
    let mut v = v.clone();
    // Inner paths of the fields set aside: a later "missing field" for one
    // of them is a consequence, not a new mistake.
    let mut removed: Vec<String> = Vec::new();
    // List items set aside: the list's steps and the item's index, both
    // in the value as first given.
    let mut gone: Vec<(Vec<Step>, usize)> = Vec::new();
    for _ in 0..MAX_ERRORS_PER_VALUE {
        let e = match serde_path_to_error::deserialize::<_, T>(v.clone()) {
            Ok(t) => return (Some(t), removed.is_empty() && gone.is_empty()),
            Err(e) => e,
        };
        let here = e.path().to_string();
        let orig = original(&steps(&here), &gone);
        let inner = if gone.is_empty() {
            here.clone()
        } else {
            path_of(&orig)
        };
        let msg = strip_location(&e.inner().to_string());
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            let key = if inner == "." {
                field.to_string()
            } else {
                format!("{inner}.{field}")
            };
            if removed.contains(&key) {
                // An item of a list that cannot be read without the field
                // set aside: set the whole item aside (its error is out).
                let item = steps(&here);
                if let (Some(Step::Index(_)), Some((Step::Index(i), list))) =
                    (item.last(), orig.split_last())
                {
                    if remove_at(&mut v, &item, true) {
                        gone.push((list.to_vec(), *i));
                        continue;
                    }
                }
                return (None, false);
            }
        }
        let (at, key) = report_error(src, path, &inner, &here, msg, errs);
        if !remove_at(&mut v, &at, false) {
            return (None, false);
        }
        if let (Some(Step::Index(_)), Some((Step::Index(i), list))) = (at.last(), orig.split_last())
        {
            gone.push((list.to_vec(), *i));
        }
        removed.push(key);
    }
    (None, false)
}

/// Reports one error of `de_inner` at its full path (`inner`: the path in
/// the value as first given; `here`: serde's path in the value as it is
/// now). Returns the steps to the value to set aside, and the inner path it
/// is set aside under.
fn report_error(
    src: &Source,
    path: &str,
    inner: &str,
    here: &str,
    msg: String,
    errs: &mut Diagnostics,
) -> (Vec<Step>, String) {
    let full = match inner {
        "." => path.to_string(),
        p if p.starts_with('[') => format!("{path}{p}"),
        p if path.is_empty() => p.to_string(),
        p => format!("{path}.{p}"),
    };
    // "unknown field `x`" points at the offending key itself.
    let unknown = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string);
    let mut at = steps(here);
    if let Some(field) = &unknown {
        // serde_path_to_error already ends the path with the field.
        let key_path = if full == *field || full.ends_with(&format!(".{field}")) {
            full.clone()
        } else {
            if at.last() != Some(&Step::Key(field.clone())) {
                at.push(Step::Key(field.clone()));
            }
            if full.is_empty() {
                field.to_string()
            } else {
                format!("{full}.{field}")
            }
        };
        errs.push(src.key_error(&key_path, msg));
    } else {
        errs.push(src.error(&full, msg));
    }
    let key = if inner == "." {
        String::new()
    } else {
        inner.to_string()
    };
    let key = match &unknown {
        Some(f) if !key.ends_with(f.as_str()) => {
            if key.is_empty() {
                f.clone()
            } else {
                format!("{key}.{f}")
            }
        }
        _ => key,
    };
    (at, key)
}

/// serde_yaml appends " at line L column C"; the diagnostic carries that already.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
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
