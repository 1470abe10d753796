//! `dashboard:` in the manifest: the Grafana dashboard, its panels and
//! their thresholds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
