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
pub use super::dashboard::*;
pub use super::datasource::*;
pub use super::logging::*;
pub use super::stack::*;
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

/// A label name, or (for `source: app`) `{name, values, fallback}`: its
/// closed set of values and what any other value counts as (default
/// `other`).
// Written, and described in the schema, as a `LabelForm`; read by a visitor
// of its own, so that an error inside the mapping names its field (an
// untagged enum reports only that no form matched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(into = "LabelForm")]
#[schemars(with = "LabelForm")]
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

/// How a label is written: its name alone, or a mapping with its values.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
enum LabelForm {
    Name(String),
    Spec(LabelSpec),
}

/// `labels[]` entry written as a mapping.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct LabelSpec {
    name: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback: Option<String>,
}

impl From<Label> for LabelForm {
    fn from(l: Label) -> LabelForm {
        if l.values.is_empty() && l.fallback.is_none() {
            return LabelForm::Name(l.name);
        }
        LabelForm::Spec(LabelSpec {
            name: l.name,
            values: l.values,
            fallback: l.fallback,
        })
    }
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
