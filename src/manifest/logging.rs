//! `logging:` in the manifest: where the JSON log lines go, which fields
//! they carry and which of them Loki indexes as labels.

use super::document::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Log file rotation period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    Minutely,
    Hourly,
    #[default]
    Daily,
    Never,
}

/// `logging`: where JSON logs go and which fields Loki indexes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// `false` turns every log line off (console and file); metrics are
    /// unaffected. Meant for measuring what logging costs (`bench/run`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Directory of the JSON log files, relative to the working directory.
    #[serde(default = "default_log_dir")]
    pub dir: String,
    /// File name prefix; rotated files are `<file>.<period>.log`.
    #[serde(default = "default_log_file")]
    pub file: String,
    /// Minimum level: trace, debug, info, warn, error.
    #[serde(default = "default_log_level")]
    pub level: LogLevel,
    #[serde(default)]
    pub rotation: Rotation,
    /// How many rotated files are kept.
    #[serde(default = "default_max_files")]
    pub max_files: usize,
    /// Drop what the log writer has written (file, and stderr if redirected
    /// to a file) from the page cache, 16 MiB behind the end. Off by
    /// default: it bounds the cache a busy log takes, but costs requests/s
    /// while new pages are cheap (bench/NOTES.md, "The page-cache
    /// drop-behind").
    #[serde(default)]
    pub drop_page_cache: bool,
    /// JSON fields every request line carries (the shippers extract these).
    #[serde(default = "default_log_fields")]
    pub fields: Vec<String>,
    /// The subset of `fields` that become Loki labels (keep it low-cardinality).
    #[serde(default = "default_log_labels")]
    pub labels: Vec<String>,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            enabled: true,
            dir: default_log_dir(),
            file: default_log_file(),
            level: default_log_level(),
            rotation: Rotation::default(),
            max_files: default_max_files(),
            drop_page_cache: false,
            fields: default_log_fields(),
            labels: default_log_labels(),
        }
    }
}

impl Logging {
    /// The glob (relative to `dir`) that matches every rotated log file.
    pub fn file_glob(&self) -> String {
        format!("{}.*log", self.file)
    }
}

pub(super) fn default_true() -> bool {
    true
}
fn default_log_dir() -> String {
    "logs".into()
}
fn default_log_file() -> String {
    "telltale".into()
}
fn default_log_level() -> LogLevel {
    LogLevel::Info
}
fn default_max_files() -> usize {
    7
}
/// Every field the server writes on a request line (`route` is the template).
pub const REQUEST_LOG_FIELDS: &[&str] = &[
    "timestamp",
    "level",
    "logger",
    "message",
    "service",
    "instance",
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "duration_ms",
    "caller",
    "trace_id",
    "span_id",
];
/// Loki labels every shipper adds besides `logging.labels`, with the field
/// each comes from: Loki 3's `service_name`, and the instance (bounded by
/// the replica count).
pub const LOKI_IDENTITY_LABELS: &[(&str, &str)] =
    &[("service_name", "service"), ("instance", "instance")];
/// Fields every shipper sends as Loki structured metadata: searchable per
/// line, never a stream label.
pub const LOKI_METADATA_FIELDS: &[&str] = &["request_id", "trace_id", "span_id"];

/// The fields a shipper extracts: `logging.fields`, plus those its identity
/// labels and structured metadata need.
pub fn shipped_fields(l: &Logging) -> Vec<String> {
    let mut out = l.fields.clone();
    for f in LOKI_IDENTITY_LABELS
        .iter()
        .map(|(_, f)| *f)
        .chain(LOKI_METADATA_FIELDS.iter().copied())
    {
        if !out.iter().any(|x| x == f) {
            out.push(f.to_string());
        }
    }
    out
}

fn default_log_fields() -> Vec<String> {
    // `caller` is opt-in: written only when listed.
    REQUEST_LOG_FIELDS
        .iter()
        .filter(|f| **f != "route" && **f != "caller")
        .map(|s| s.to_string())
        .collect()
}
fn default_log_labels() -> Vec<String> {
    vec!["level".into(), "logger".into()]
}
