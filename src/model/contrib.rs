//! What a kind contributes to the stages besides serving requests: the
//! roles its family plays, the alerts it derives (with their promtool
//! tests), and the traffic chaos may send it. Handler kinds and metric
//! source kinds return these types through their prepared plugins (see
//! [`super::kinds`]), and any other kind family can return the same ones:
//! nothing here refers to an endpoint or a metric. The stages (render,
//! lint, chaos) iterate over contributions and never match a kind by name.

use crate::manifest::{HttpMethod, Manifest, PromDuration, TestSeries};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A part a metric family or an endpoint plays that other stages look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Counts the HTTP requests the server answers (labelled by `method`,
    /// `path` and `status`, as declared): the error-ratio alert, the
    /// datasource's error bursts and the trace-to-metrics link read it.
    RequestCounter,
    /// The HTTP request-duration histogram: its buckets carry the traces
    /// of sampled requests as exemplars.
    RequestDuration,
    /// An endpoint serving the Prometheus exposition: at `/metrics`, what
    /// Prometheus scrapes (with the credential it presents).
    MetricsEndpoint,
    /// A route of the Grafana JSON datasource: Grafana calls it, sending
    /// one credential to every such route.
    DatasourceRoute,
}

impl Role {
    /// Whether the family is fed by the HTTP request middleware (its panels
    /// link to the request log lines).
    pub fn is_http(self) -> bool {
        matches!(self, Role::RequestCounter | Role::RequestDuration)
    }
}

/// How `metrics[].alert` may tune the alert a source derives. Every
/// derived alert takes `enabled`, `for` and a non-empty `severity`.
#[derive(Debug, Clone, Copy)]
pub struct AlertTuning {
    /// Why `alert.name` may not be set (the alert is named after something
    /// else); `None`: any valid alert name.
    pub fixed_name: Option<&'static str>,
    /// The error for an `alert.threshold` the alert does not take.
    pub threshold: fn(f64) -> Option<String>,
}

/// What a derived alert is built against.
pub struct AlertCtx<'a> {
    /// The manifest declaring the metric.
    pub manifest: &'a Manifest,
    /// The service's scrape job.
    pub job: &'a str,
    /// `job="<job>"`: the selector every expression keeps to.
    pub selector: &'a str,
    /// `instance="…"`: the instance label of the promtool test series.
    pub instance: &'a str,
    /// The value of that instance label.
    pub test_instance: &'a str,
}

/// One derived alert and the series of its two promtool tests: one under
/// which it fires, one under which it stays quiet.
#[derive(Debug, Clone)]
pub struct DerivedAlertRule {
    /// The alert's name (`alertname`).
    pub name: String,
    /// Its PromQL condition.
    pub expr: String,
    /// How long the condition must hold.
    pub for_: PromDuration,
    /// Its `severity` label.
    pub severity: String,
    /// Annotation templates; text from the manifest is already escaped.
    pub summary: String,
    /// Annotation template of its description.
    pub description: String,
    /// The series of the test under which it fires.
    pub firing: Vec<TestSeries>,
    /// The series of the test under which it stays quiet.
    pub quiet: Vec<TestSeries>,
    /// Labels of the firing alert besides `alertname` and `severity`.
    pub fired_labels: BTreeMap<String, String>,
    /// When promtool evaluates both tests: `for_` plus this many seconds.
    pub eval_margin_secs: u64,
    /// The metric families it is about: its panel link is the first
    /// panel that shows one.
    pub metrics: Vec<String>,
    /// A label its panel should show (`status` for an error alert).
    pub prefer: Option<&'static str>,
}

/// Uniform random choices for chaos: `below(n)` is in `[0, n)`, `n > 0`.
pub trait Draw {
    /// A number in `[0, n)`.
    fn below(&mut self, n: usize) -> usize;
}

/// Makes one request body, drawing what varies between requests; `None`
/// when there is nothing valid to ask.
pub type BodyFn = Arc<dyn Fn(&mut dyn Draw) -> Option<String> + Send + Sync>;

/// What a bad request tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    /// An endpoint that always fails (a 5xx of its own).
    ServerError,
    /// A path no endpoint serves (a 404).
    UnknownPath,
    /// A method the endpoint does not serve (a 405).
    WrongMethod,
    /// A query parameter of the wrong type (a 400).
    BadQueryParam,
    /// A body that is not JSON (a 400).
    MalformedJson,
    /// A protected endpoint without a credential (a 401).
    NoCredential,
}

impl BadKind {
    /// Its name, as chaos reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::ServerError => "server_error",
            BadKind::UnknownPath => "unknown_path",
            BadKind::WrongMethod => "wrong_method",
            BadKind::BadQueryParam => "bad_query_param",
            BadKind::MalformedJson => "malformed_json",
            BadKind::NoCredential => "no_credential",
        }
    }
}

/// Bad requests of one kind an endpoint answers with a known status.
#[derive(Debug, Clone)]
pub struct BadRequests {
    /// What they try.
    pub kind: BadKind,
    /// The status each of them must get.
    pub status: u16,
    /// What is sent, one drawn per request (none drawn when there is only
    /// one): the endpoint's path with a query string, and a body.
    pub variants: Vec<BadVariant>,
}

/// One bad request: what it adds to the endpoint's method and path.
#[derive(Debug, Clone, Default)]
pub struct BadVariant {
    /// Appended to the path after `?`.
    pub query: Option<&'static str>,
    /// The body sent.
    pub body: Option<&'static str>,
}

/// The traffic chaos may send to one endpoint (its method and path).
#[derive(Clone, Default)]
pub struct ChaosTraffic {
    /// Good requests may go to it: each must get a 2xx.
    pub good: bool,
    /// The body of each request to it, good or without credentials;
    /// `None`: it takes none. A good request needs one to be drawn.
    pub body: Option<BodyFn>,
    /// Bad requests it answers with a known status.
    pub bad: Vec<BadRequests>,
}

impl ChaosTraffic {
    /// Good requests without a body when `method` is GET, else none: what
    /// chaos sends to an endpoint whose kind says nothing else.
    pub fn safe_gets(method: HttpMethod) -> ChaosTraffic {
        ChaosTraffic {
            good: method == HttpMethod::Get,
            ..ChaosTraffic::default()
        }
    }

    /// This traffic with `bad` added.
    pub fn with_bad(mut self, bad: BadRequests) -> ChaosTraffic {
        self.bad.push(bad);
        self
    }
}

impl std::fmt::Debug for ChaosTraffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosTraffic")
            .field("good", &self.good)
            .field("body", &self.body.is_some())
            .field("bad", &self.bad)
            .finish()
    }
}
