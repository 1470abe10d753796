//! `tracing:`: where the server's spans go. Every request is a server span
//! (W3C Trace Context, OpenTelemetry's HTTP conventions), exported over
//! OTLP/HTTP with protobuf. The standard `OTEL_*` environment variables are
//! read when the server starts and take precedence over this section; with
//! no endpoint in either, tracing is off.
//!
//! Header values are never written here: each names an environment
//! variable or a file ([`SecretRef`]), read when the server starts.

use super::auth::SecretRef;
use super::values::{HttpUrl, PromDuration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most spans `tracing.queue` may hold.
pub const MAX_QUEUE: i64 = 1 << 20;

/// `tracing`: the OTLP exporter and the sampler.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Tracing {
    /// Base URL of an OTLP/HTTP receiver (`http://127.0.0.1:4318`): spans
    /// go to `<endpoint>/v1/traces`, as with `OTEL_EXPORTER_OTLP_ENDPOINT`.
    /// Unset (and no `OTEL_EXPORTER_OTLP_*ENDPOINT`): tracing is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<HttpUrl>,
    /// The traces URL itself, used as written (as with
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); wins over `endpoint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces_endpoint: Option<HttpUrl>,
    /// Which requests are recorded (`OTEL_TRACES_SAMPLER` names).
    pub sampler: Sampler,
    /// The share of traces a `traceidratio` sampler keeps, 0 to 1
    /// (`OTEL_TRACES_SAMPLER_ARG`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Headers sent with every export (an API key of a hosted backend), by
    /// reference: `{env: VAR}` or `{file: path}`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, SecretRef>,
    /// Extra resource attributes (`deployment.environment: prod`), besides
    /// `service.name`, `service.version` and `service.instance.id`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: BTreeMap<String, String>,
    /// The most spans waiting for export; past it, spans are dropped and
    /// counted (`telltale_trace_spans_dropped_total`), never waited for.
    pub queue: i64,
    /// The most spans in one export request.
    pub batch: i64,
    /// How long a batch may wait for more spans before it is sent.
    pub delay: PromDuration,
    /// How long one export request may take.
    pub timeout: PromDuration,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            endpoint: None,
            traces_endpoint: None,
            sampler: Sampler::default(),
            ratio: None,
            headers: BTreeMap::new(),
            resource: BTreeMap::new(),
            queue: 4096,
            batch: 512,
            delay: PromDuration::from_secs(1),
            timeout: PromDuration::from_secs(10),
        }
    }
}

/// A sampler, by its `OTEL_TRACES_SAMPLER` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
pub enum Sampler {
    /// Every trace.
    #[serde(rename = "always_on")]
    AlwaysOn,
    /// No trace.
    #[serde(rename = "always_off")]
    AlwaysOff,
    /// A share (`ratio`) of traces, chosen by trace id.
    #[serde(rename = "traceidratio")]
    TraceIdRatio,
    /// As the caller sampled; a new trace: always.
    #[default]
    #[serde(rename = "parentbased_always_on")]
    ParentBasedAlwaysOn,
    /// As the caller sampled; a new trace: never.
    #[serde(rename = "parentbased_always_off")]
    ParentBasedAlwaysOff,
    /// As the caller sampled; a new trace: a share (`ratio`), by trace id.
    #[serde(rename = "parentbased_traceidratio")]
    ParentBasedTraceIdRatio,
}

impl Sampler {
    /// Every sampler, for messages.
    pub const ALL: [Sampler; 6] = [
        Sampler::AlwaysOn,
        Sampler::AlwaysOff,
        Sampler::TraceIdRatio,
        Sampler::ParentBasedAlwaysOn,
        Sampler::ParentBasedAlwaysOff,
        Sampler::ParentBasedTraceIdRatio,
    ];

    /// The `OTEL_TRACES_SAMPLER` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sampler::AlwaysOn => "always_on",
            Sampler::AlwaysOff => "always_off",
            Sampler::TraceIdRatio => "traceidratio",
            Sampler::ParentBasedAlwaysOn => "parentbased_always_on",
            Sampler::ParentBasedAlwaysOff => "parentbased_always_off",
            Sampler::ParentBasedTraceIdRatio => "parentbased_traceidratio",
        }
    }

    /// The sampler named `name`.
    pub fn from_name(name: &str) -> Option<Sampler> {
        Sampler::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether it takes a ratio.
    pub fn uses_ratio(self) -> bool {
        matches!(
            self,
            Sampler::TraceIdRatio | Sampler::ParentBasedTraceIdRatio
        )
    }
}
