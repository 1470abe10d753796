//! `datasource:` in the manifest: what the Grafana JSON datasource
//! (`grafana_json` endpoints) samples, keeps and serves.

use super::document::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
