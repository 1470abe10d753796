//! The typed document `manifest.yaml` deserializes into.
//!
//! Every struct denies unknown fields, so a typo is an error rather than a
//! silently ignored key. Plugin-specific settings (`endpoints[].options`,
//! `metrics[].options`) stay as raw YAML here and are parsed by the plugin
//! kind that owns them, with the same strictness.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

pub use super::auth::{Auth, EnvFrom, EnvVar, KeyRef, Requirement, SchemeKind, SecretRef};
#[cfg(any(test, feature = "internals"))]
pub use super::auth::{JwtAlgorithm, Scheme};
pub use super::values::{DnsName, Host, HostPort, HttpMethod, HttpUrl, LogLevel, PromDuration};

/// The whole manifest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub service: Service,
    /// Who may call the service (see README, Authentication).
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Where the server's spans go (see README, Traces).
    #[serde(default)]
    pub tracing: super::traces::Tracing,
    /// The databases and services it calls (see README, Dependencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<super::dependencies::Dependency>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub dashboard: Dashboard,
    #[serde(default)]
    pub objectives: Vec<Objective>,
    #[serde(default)]
    pub alerts: Vec<Alert>,
    #[serde(default)]
    pub rules: RuleSettings,
    #[serde(default)]
    pub stack: Stack,
    #[serde(default)]
    pub datasource: DatasourceSection,
    #[serde(default)]
    pub kubernetes: Kubernetes,
}

impl Manifest {
    /// `host:port` Prometheus scrapes the service at, by default.
    pub fn scrape_target(&self) -> String {
        format!("{}:{}", self.stack.service_host, self.service.port)
    }

    /// The instances static and file discovery name: the declared ones,
    /// else the one at [`Manifest::scrape_target`]. Empty for DNS discovery,
    /// whose instances are known only at run time.
    pub fn scrape_targets(&self) -> Vec<String> {
        match &self.stack.discovery {
            d if d.kind == DiscoveryKind::Dns => Vec::new(),
            d if d.targets.is_empty() => vec![self.scrape_target()],
            d => d.targets.iter().map(HostPort::to_string).collect(),
        }
    }
}

/// `service`: who the server is and where it listens.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Listen address (default `127.0.0.1`: this machine only; a container
    /// or a Prometheus on another host needs `0.0.0.0`).
    #[serde(default = "default_host")]
    pub host: String,
    /// Kept wide so that an out-of-range port is a validation error with a
    /// clear message rather than a serde type error.
    #[serde(default = "default_port")]
    pub port: i64,
    /// Largest accepted request body, in bytes (413 above it).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: u64,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(default = "default_shutdown_secs")]
    pub shutdown_timeout_seconds: u64,
    /// Connection limits: read deadlines and a cap on open connections.
    #[serde(default)]
    pub limits: ConnectionLimits,
    /// Largest data file (`endpoints[].data`) read, in bytes; only regular
    /// files are read. Parsed data takes about 30 times its size in memory.
    #[serde(default = "default_data_limit")]
    pub data_limit_bytes: u64,
    /// Most series `/metrics` may expose, by the budget `validate` computes
    /// from the closed label sets; over it is an error naming the metrics
    /// that cost the most. Unset: no limit (the budget is still printed and
    /// sets the scrape config's `sample_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_limit: Option<u64>,
}

/// `service.limits`: what one connection may hold, and how many may be open.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// From a request's first byte to the end of its headers; a client
    /// slower than this (slowloris) is disconnected.
    pub header_timeout_seconds: u64,
    /// From the end of the headers until the response starts, restarted by
    /// every chunk of body received: a body that stalls is cut off. It also
    /// bounds how long a handler may take to start its response.
    pub body_timeout_seconds: u64,
    /// A connection with no request in flight (kept alive, or new and
    /// silent) is closed after this.
    pub idle_timeout_seconds: u64,
    /// Connections open at once; at the cap new ones wait in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            max_connections: 1024,
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> i64 {
    8001
}
fn default_body_limit() -> u64 {
    1024 * 1024
}
fn default_shutdown_secs() -> u64 {
    10
}
fn default_data_limit() -> u64 {
    8 << 20
}

/// `endpoints[]`: one HTTP route served by a handler kind.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Route template, e.g. `/products` or `/products/{id}`.
    pub path: String,
    #[serde(default = "default_method")]
    pub method: HttpMethod,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Name of a registered handler kind (see `telltale::plugins::handlers`).
    pub handler: String,
    /// Kind-specific options, validated by the kind.
    #[serde(default, skip_serializing_if = "is_null")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub options: Value,
    /// Data file (YAML or JSON), relative to the manifest's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// What a caller needs; unset: `auth.default`. `{ schemes: [] }` is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Requirement>,
}

fn default_method() -> HttpMethod {
    HttpMethod::Get
}

pub(crate) fn is_null(v: &Value) -> bool {
    v.is_null()
}

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// `metrics[]`: one Prometheus family fed by a metric source kind.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MetricType,
    pub help: String,
    /// Label names (`[method, path]`); for `source: app`, each with its
    /// closed set of values: `[{name: payment, values: [card, cash]}]`.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Histogram bucket upper bounds, strictly increasing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<f64>>,
    /// Name of a registered metric source kind (see `telltale::plugins::metrics`).
    pub source: String,
    #[serde(default, skip_serializing_if = "is_null")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub options: Value,
    /// The alert derived from this metric (HighErrorRatio from the
    /// `http.requests` counter, a low-stock alert from each
    /// `collection.below_threshold` gauge, `<Objective>P95High` from the
    /// `http.duration` histogram), tuned or turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<DerivedAlert>,
}

/// `metrics[].alert`: one derived alert's settings; each unset field keeps
/// the default from `rules`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DerivedAlert {
    /// `false` drops the alert (and its tests).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Its name (default: from the metric alone, so adding another metric
    /// never renames it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The threshold: the 5xx share for HighErrorRatio, the item count for
    /// a low-stock alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// How long the condition must hold.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<PromDuration>,
    /// The `severity` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

impl Default for DerivedAlert {
    fn default() -> Self {
        DerivedAlert {
            enabled: true,
            name: None,
            threshold: None,
            for_: None,
            severity: None,
        }
    }
}

/// One label of a metric: a name, or a name with its closed set of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub name: String,
    /// The values user code may give (`source: app`); empty for the other sources.
    pub values: Vec<String>,
    /// What a value outside `values` is counted as (default `other`).
    pub fallback: Option<String>,
}

impl Label {
    /// A label with no declared values.
    pub fn named(name: &str) -> Label {
        Label {
            name: name.into(),
            values: Vec::new(),
            fallback: None,
        }
    }
    /// The fallback value: the declared one, else `other`.
    pub fn fallback(&self) -> &str {
        self.fallback.as_deref().unwrap_or("other")
    }
    /// Every series value: the declared values, then the fallback unless it is one of them.
    pub fn series_values(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.values.iter().map(String::as_str).collect();
        if !v.contains(&self.fallback()) {
            v.push(self.fallback());
        }
        v
    }
}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// `labels[]` entry written as a mapping.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelSpec {
    name: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    fallback: Option<String>,
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Label;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a label name, or {name, values, fallback}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Label, E> {
                Ok(Label::named(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Label, A::Error> {
                let s = LabelSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Label {
                    name: s.name,
                    values: s.values,
                    fallback: s.fallback,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// In the schema, a label is its name, or a mapping with its values.
impl JsonSchema for Label {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Label".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A label name, or (for `source: app`) `{name, values, fallback}`: its closed set of values and what any other value counts as (default `other`).",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "values": {"type": "array", "items": {"type": "string"}},
                        "fallback": {"type": "string"}
                    }
                }
            ]
        })
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.values.is_empty() && self.fallback.is_none() {
            return s.serialize_str(&self.name);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("values", &self.values)?;
        if let Some(f) = &self.fallback {
            m.serialize_entry("fallback", f)?;
        }
        m.end()
    }
}

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
    /// default: it bounds the cache a busy log takes, but measured here at
    /// about 3 % of requests/s (README, item 21).
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

fn default_true() -> bool {
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

/// `dashboard`: the Grafana dashboard rendered from the manifest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    #[serde(default = "default_dash_uid")]
    pub uid: String,
    #[serde(default = "default_dash_title")]
    pub title: String,
    /// Auto-refresh period, e.g. `5s`.
    #[serde(default = "default_refresh")]
    pub refresh: String,
    /// Default time range start, e.g. `now-15m`.
    #[serde(default = "default_time_from")]
    pub time_from: String,
    #[serde(default)]
    pub panels: Vec<Panel>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            uid: default_dash_uid(),
            title: default_dash_title(),
            refresh: default_refresh(),
            time_from: default_time_from(),
            panels: Vec::new(),
        }
    }
}

fn default_dash_uid() -> String {
    "telltale".into()
}
fn default_dash_title() -> String {
    "telltale".into()
}
fn default_refresh() -> String {
    "5s".into()
}
fn default_time_from() -> String {
    "now-15m".into()
}

/// `dashboard.panels[]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub title: String,
    /// Grafana panel type: timeseries, stat, gauge, table, logs, ...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    /// Which datasource: `prometheus`, `loki` or `json` (uids come from `stack.datasources`).
    /// A `json` panel's target `expr` is a target name of the JSON datasource.
    pub datasource: String,
    /// Queries: PromQL, LogQL, or a JSON-datasource target name.
    pub targets: Vec<PanelTarget>,
    #[serde(default = "default_unit")]
    pub unit: String,
    /// Threshold steps; the first is the base color.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Grid width out of 24.
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
}

fn default_unit() -> String {
    "short".into()
}
fn default_width() -> u32 {
    12
}
fn default_height() -> u32 {
    8
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PanelTarget {
    pub expr: String,
    #[serde(default)]
    pub legend: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// `null`/absent for the base step.
    #[serde(default)]
    pub value: Option<f64>,
    pub color: String,
}

/// Objective kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveKind {
    /// Share of requests that are not 5xx.
    Availability,
    /// Share of requests faster than `threshold_seconds`.
    Latency,
}

/// `objectives[]`: an SLO, source of burn-rate alerts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ObjectiveKind,
    /// Target ratio, e.g. 0.999.
    pub target: f64,
    /// The metric the SLI is computed from (a counter for availability, a
    /// histogram for latency).
    pub metric: String,
    /// Latency objectives only: must be one of the histogram's buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_seconds: Option<f64>,
    /// SLO window, e.g. `30d`.
    #[serde(default = "default_slo_window")]
    pub window: PromDuration,
}

fn default_slo_window() -> PromDuration {
    PromDuration::from_secs(30 * 86400)
}

/// `alerts[]`: a hand-written alert rule (burn-rate alerts are generated from `objectives`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub name: String,
    pub expr: String,
    #[serde(default = "default_for", rename = "for")]
    pub for_: PromDuration,
    #[serde(default = "default_severity")]
    pub severity: String,
    pub summary: String,
    #[serde(default)]
    pub description: String,
    /// This alert's runbook (default: `rules.runbook_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    /// The title of the panel its `panel_url` opens (default: the first
    /// panel that queries one of its metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel: Option<String>,
    /// Fixtures for the generated promtool unit test (required: every alert
    /// is tested firing and quiet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<AlertTest>,
}

/// `alerts[].test`: input series for the promtool unit test of a hand-written alert.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    /// Series under which the alert fires at `eval_time`.
    pub firing: Vec<TestSeries>,
    /// Series under which it stays quiet at `eval_time`.
    pub quiet: Vec<TestSeries>,
    /// Labels of the firing alert besides `alertname` and `severity`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `$value` of the firing alert, substituted into its annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// When to evaluate, from the first sample (default: `for` + 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_time: Option<PromDuration>,
}

/// One promtool input series: `series` selector and expanding `values` notation
/// (one sample per minute, e.g. `95x30` or `0+10x60`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSeries {
    pub series: String,
    pub values: String,
}

/// `rules`: thresholds of the alerts derived from the metrics and objectives.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSettings {
    /// Range of the `rate()` in derived alerts.
    pub rate_window: PromDuration,
    /// HighErrorRatio: share of 5xx responses above which it fires.
    pub error_ratio: f64,
    pub error_ratio_for: PromDuration,
    /// LatencyHigh: fires when p95 exceeds each latency objective's threshold.
    pub latency_for: PromDuration,
    /// LowStock: fires when a `collection.below_threshold` gauge exceeds this.
    pub low_stock_above: f64,
    pub low_stock_for: PromDuration,
    /// TargetDown: how long `up == 0` must hold.
    pub target_down_for: PromDuration,
    /// Every alert's `runbook_url` (unless the alert sets its own):
    /// `{alert}` and `{service}` are replaced.
    pub runbook_url: String,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            rate_window: PromDuration::from_secs(300),
            error_ratio: 0.05,
            error_ratio_for: PromDuration::from_secs(300),
            latency_for: PromDuration::from_secs(600),
            low_stock_above: 5.0,
            low_stock_for: PromDuration::from_secs(600),
            target_down_for: PromDuration::from_secs(60),
            runbook_url: "https://runbooks.example.com/{service}/{alert}".into(),
        }
    }
}

fn default_for() -> PromDuration {
    PromDuration::from_secs(300)
}
fn default_severity() -> String {
    "warning".into()
}

/// Which log shipper docker-compose runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Shipper {
    Promtail,
    #[default]
    Alloy,
}

/// Where docker-compose publishes the stack's ports on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Publish {
    /// On 127.0.0.1 only: Prometheus (with its lifecycle API), Loki and the
    /// shipper have no authentication.
    #[default]
    Loopback,
    /// On every interface of the host.
    All,
}

impl Publish {
    /// The host address compose binds published ports to.
    pub fn address(self) -> &'static str {
        match self {
            Publish::Loopback => "127.0.0.1",
            Publish::All => "0.0.0.0",
        }
    }
}

/// `stack`: ports, images and settings of the monitoring containers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Stack {
    /// How containers reach the host running telltale.
    pub service_host: Host,
    pub network: String,
    pub scrape_interval: PromDuration,
    pub evaluation_interval: PromDuration,
    pub shipper: Shipper,
    /// Where compose publishes Prometheus, Loki and the shipper: `loopback`
    /// (127.0.0.1, the default: they have no authentication) or `all`.
    pub publish: Publish,
    /// Where compose publishes Grafana, which keeps its login: `loopback`
    /// (the default) or `all`.
    pub publish_grafana: Publish,
    pub prometheus: Component,
    pub loki: Component,
    pub promtail: Component,
    pub alloy: Component,
    pub grafana: Component,
    /// Grafana Tempo, the trace store; `port` is its HTTP API (Grafana's
    /// datasource).
    pub tempo: Component,
    /// Tempo's OTLP receivers. The HTTP one is published like the other
    /// ports (`publish`), so that a service on the host exports to
    /// `http://127.0.0.1:<otlp.http>` (`tracing.endpoint`).
    pub otlp: OtlpPorts,
    /// How long Tempo keeps traces (its compactor's `block_retention`),
    /// e.g. `14d`; whole seconds, at least `1h`.
    pub traces_retention: PromDuration,
    /// Grafana's address in alert links (`runbook_url` aside): default
    /// `http://localhost:<grafana.port>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grafana_url: Option<HttpUrl>,
    /// Alertmanager address (`host:port`), if one is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<HostPort>,
    /// Extra scrape jobs besides the service itself.
    pub extra_targets: Vec<ScrapeTarget>,
    /// How Prometheus finds the service's instances (replicas).
    pub discovery: Discovery,
    /// Remote-write endpoints (Mimir, Thanos Receive, any Prometheus
    /// remote-write receiver) the rendered Prometheus sends every sample to.
    pub remote_write: Vec<RemoteWrite>,
    pub datasources: DatasourceUids,
}

/// `stack.discovery`: how Prometheus finds the instances of the service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Discovery {
    /// `static`: the targets written into prometheus.yml. `file`: a rendered
    /// file_sd file, `prometheus/targets/<job>/telltale.yml`, which Prometheus
    /// re-reads (operators may rewrite it, or add files beside it, to add a
    /// replica without a render). `dns`: DNS service discovery of `names`.
    #[serde(rename = "type")]
    pub kind: DiscoveryKind,
    /// The instances, `host:port` each (static and file). Default: one,
    /// `<stack.service_host>:<service.port>`. Each is its `instance` label.
    pub targets: Vec<HostPort>,
    /// DNS names to query (dns only), e.g. `_http._tcp.api.example.internal`.
    pub names: Vec<DnsName>,
    /// DNS record type (dns only): `SRV` (port from the record), `A` or `AAAA`.
    pub record: DnsRecord,
    /// Port of the instances an A or AAAA record names; default `service.port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// How often file and DNS discovery are re-read, e.g. `30s`.
    pub refresh_interval: PromDuration,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            kind: DiscoveryKind::Static,
            targets: Vec::new(),
            names: Vec::new(),
            record: DnsRecord::Srv,
            port: None,
            refresh_interval: PromDuration::from_secs(30),
        }
    }
}

/// `stack.discovery.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    #[default]
    Static,
    File,
    Dns,
}

/// `stack.discovery.record`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecord {
    #[default]
    Srv,
    A,
    Aaaa,
}

impl DnsRecord {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecord::Srv => "SRV",
            DnsRecord::A => "A",
            DnsRecord::Aaaa => "AAAA",
        }
    }
}

/// `stack.remote_write[]`: one remote-write endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteWrite {
    /// The receiver's push URL, e.g. `http://mimir:9009/api/v1/push`.
    pub url: HttpUrl,
    /// A name for it in Prometheus's own metrics; unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            service_host: Host::default_of("host.docker.internal"),
            network: "monitoring".into(),
            scrape_interval: PromDuration::from_secs(15),
            evaluation_interval: PromDuration::from_secs(15),
            shipper: Shipper::default(),
            publish: Publish::default(),
            publish_grafana: Publish::default(),
            prometheus: Component::new("prom/prometheus:v2.53.2", 9090),
            loki: Component::new("grafana/loki:3.3.2", 3100),
            promtail: Component::new("grafana/promtail:3.3.2", 9080),
            alloy: Component::new("grafana/alloy:v1.5.1", 12345),
            grafana: Component::new("grafana/grafana:11.4.0", 3000),
            tempo: Component::new("grafana/tempo:2.10.8", 3200),
            otlp: OtlpPorts::default(),
            traces_retention: PromDuration::from_secs(14 * 86400),
            grafana_url: None,
            alertmanager: None,
            extra_targets: Vec::new(),
            discovery: Discovery::default(),
            remote_write: Vec::new(),
            datasources: DatasourceUids::default(),
        }
    }
}

/// `stack.otlp`: the ports of Tempo's OTLP receivers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpPorts {
    /// OTLP over HTTP (the service exports here), published on the host.
    pub http: i64,
    /// OTLP over gRPC, on the compose network only.
    pub grpc: i64,
}

impl Default for OtlpPorts {
    fn default() -> Self {
        OtlpPorts {
            http: 4318,
            grpc: 4317,
        }
    }
}

/// `kubernetes`: what `render` writes to `kubernetes/` (Deployment,
/// Service, ConfigMaps, and the Prometheus Operator's ServiceMonitor and
/// PrometheusRule).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Kubernetes {
    /// Namespace of the service's objects (Deployment, Service, its
    /// ConfigMap, ServiceMonitor, PrometheusRule).
    pub namespace: String,
    /// Namespace of the monitoring stack: the dashboard, datasource and
    /// Alloy ConfigMaps go there, where Grafana's sidecar and Alloy look.
    pub monitoring_namespace: String,
    /// The service's container image; default `<service.name>:<service.version>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// Pods of the Deployment (1 to 1000).
    pub replicas: i64,
    /// The container's resource requests and limits, e.g. `cpu: 100m`, `memory: 64Mi`.
    pub resources: KubernetesResources,
    /// Labels on the ServiceMonitor and PrometheusRule, which the Prometheus
    /// Operator selects them by (kube-prometheus-stack: `release: <its release name>`).
    pub selector_labels: std::collections::BTreeMap<String, String>,
    /// Prometheus as Grafana reaches it in the cluster (the datasource ConfigMap).
    pub prometheus_url: HttpUrl,
    /// Loki as Grafana and Alloy reach it in the cluster.
    pub loki_url: HttpUrl,
    /// Tempo's HTTP API as Grafana reaches it in the cluster (the
    /// `grafana/tempo` chart's Service, port 3200).
    pub tempo_url: HttpUrl,
    /// Tempo's OTLP gRPC receiver (`host:port`), where Alloy sends the
    /// spans it receives.
    pub tempo_otlp: HostPort,
    /// Alloy's OTLP/HTTP receiver as the service's pods reach it (the
    /// Deployment's `OTEL_EXPORTER_OTLP_ENDPOINT`); Alloy listens on its
    /// port, which the Alloy chart's Service must expose (`alloy.extraPorts`).
    pub otlp_url: HttpUrl,
    /// The container's environment: plain values, and keys of Secrets and
    /// ConfigMaps (where `auth` keys and tokens come from).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Whole Secrets and ConfigMaps as environment variables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFrom>,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            namespace: "default".into(),
            monitoring_namespace: "monitoring".into(),
            image: None,
            image_pull_policy: "IfNotPresent".into(),
            replicas: 2,
            resources: KubernetesResources::default(),
            selector_labels: [("release".to_string(), "kube-prometheus-stack".to_string())]
                .into_iter()
                .collect(),
            prometheus_url: HttpUrl::default_of("http://prometheus-operated.monitoring.svc:9090"),
            loki_url: HttpUrl::default_of("http://loki-gateway.monitoring.svc"),
            tempo_url: HttpUrl::default_of("http://tempo.monitoring.svc:3200"),
            tempo_otlp: HostPort::default_of("tempo.monitoring.svc:4317"),
            otlp_url: HttpUrl::default_of("http://alloy.monitoring.svc:4318"),
            env: Vec::new(),
            env_from: Vec::new(),
        }
    }
}

/// `kubernetes.resources`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Resources")]
pub struct KubernetesResources {
    pub requests: Quantities,
    pub limits: Quantities,
}

impl Default for KubernetesResources {
    fn default() -> Self {
        KubernetesResources {
            requests: Quantities {
                cpu: Some("100m".into()),
                memory: Some("64Mi".into()),
            },
            limits: Quantities {
                cpu: None,
                memory: Some("256Mi".into()),
            },
        }
    }
}

/// CPU and memory, as Kubernetes quantities (`250m`, `1`, `128Mi`, `1Gi`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// One container of the stack.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub image: String,
    pub port: i64,
}

impl Component {
    fn new(image: &str, port: i64) -> Self {
        Component {
            image: image.into(),
            port,
        }
    }
}

/// An extra Prometheus scrape job.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapeTarget {
    pub job: String,
    pub targets: Vec<HostPort>,
}

/// Pinned Grafana datasource uids.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DatasourceUids {
    pub prometheus: String,
    pub loki: String,
    pub json: String,
    pub tempo: String,
}

impl Default for DatasourceUids {
    fn default() -> Self {
        DatasourceUids {
            prometheus: "telltale-prometheus".into(),
            loki: "telltale-loki".into(),
            json: "telltale-json".into(),
            tempo: "telltale-tempo".into(),
        }
    }
}

/// `datasource`: what the Grafana JSON datasource (`grafana_json` endpoints) serves.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasourceSection {
    /// How often series are sampled, e.g. `5s` (100ms to 1h).
    #[serde(default = "default_sample_interval")]
    pub sample_interval: PromDuration,
    /// Points kept per series; the oldest is dropped first (memory stays bounded).
    #[serde(default = "default_retention")]
    pub retention: usize,
    #[serde(default)]
    pub annotations: AnnotationSettings,
    /// What one request may cost; over a limit is a 400 or 413 naming it.
    #[serde(default)]
    pub limits: QueryLimits,
    #[serde(default)]
    pub targets: Vec<DatasourceTarget>,
}

impl Default for DatasourceSection {
    fn default() -> Self {
        DatasourceSection {
            sample_interval: default_sample_interval(),
            retention: default_retention(),
            annotations: AnnotationSettings::default(),
            limits: QueryLimits::default(),
            targets: Vec::new(),
        }
    }
}

/// `datasource.limits`: the most one `/query` (or `/annotations`) request
/// may ask for, so that no request costs more than a bounded amount.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryLimits {
    /// Targets in one query (`targets[]`); more is a 400.
    pub max_targets: usize,
    /// Columns named in one table target's `payload.columns`; more is a 400.
    pub max_columns: usize,
    /// Filters in one query (`adhocFilters` plus `filters`); more is a 400.
    pub max_filters: usize,
    /// Points per series when the query has no `maxDataPoints`.
    pub default_max_points: usize,
    /// Bytes of one response; a larger answer is a 413 (narrow the query).
    pub max_response_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_targets: 32,
            max_columns: 64,
            max_filters: 32,
            default_max_points: 1000,
            max_response_bytes: 4 << 20,
        }
    }
}

fn default_sample_interval() -> PromDuration {
    PromDuration::from_secs(5)
}
fn default_retention() -> usize {
    720
}

/// `datasource.annotations`: the bounded event store.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnnotationSettings {
    /// Events kept; the oldest is dropped first.
    pub capacity: usize,
    /// At least this many 5xx responses within one sample interval make a burst.
    pub error_burst: u64,
    /// A gauge (usually the low-stock count) whose every change is an event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_stock: Option<String>,
}

impl Default for AnnotationSettings {
    fn default() -> Self {
        AnnotationSettings {
            capacity: 256,
            error_burst: 5,
            low_stock: None,
        }
    }
}

/// What a datasource target returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatasourceTargetKind {
    /// A time series sampled into the ring buffer.
    Series,
    /// Rows of a collection.
    Table,
    /// Events from the annotation store.
    Annotations,
}

/// How a series target turns a metric into one number per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeriesStat {
    /// Per-second increase of a counter (all its series summed).
    Rate,
    /// Per-second increase of the counter's series whose `status` is 5xx.
    ErrorRate,
    /// A quantile (`quantile:`) of a histogram over the sample interval.
    Quantile,
    /// The current value of a gauge (all its series summed).
    Value,
}

/// Event kinds the server records as annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Startup,
    ErrorBurst,
    LowStock,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [
        EventKind::Startup,
        EventKind::ErrorBurst,
        EventKind::LowStock,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Startup => "startup",
            EventKind::ErrorBurst => "error_burst",
            EventKind::LowStock => "low_stock",
        }
    }
}

/// `datasource.targets[]`: one name Grafana can query.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasourceTarget {
    /// What panels put in `targets[].expr` (letters, digits, `_`, `-`, `.`).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DatasourceTargetKind,
    #[serde(default)]
    pub description: String,
    /// Series: the sampled metric. Table: a `collection.below_threshold` gauge whose items are the rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Series only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<SeriesStat>,
    /// Series with `stat: quantile` only, in (0, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// Table only: item fields shown, in order (default: every field of the first item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Annotations only: which events (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventKind>,
}
