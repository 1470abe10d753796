//! The manifest's `datasource` section → a checked [`Spec`].
//!
//! Every target is resolved against what the manifest declares: series
//! name a metric of the right type, tables name a
//! `collection.below_threshold` gauge (its rows are exactly the items the
//! gauge counts), annotations name event kinds the server can record.

use super::contrib::Role;
use super::kinds::PreparedSource;
use crate::manifest::{
    DatasourceTargetKind, Diagnostics, EventKind, Manifest, MetricType, SeriesStat, Source,
};
use serde_json::Value as Json;
use std::sync::Arc;
use std::time::Duration;

/// The validated datasource.
#[derive(Debug, Clone)]
pub struct Spec {
    pub every: Duration,
    /// Points kept per series.
    pub retention: usize,
    pub annotation_capacity: usize,
    /// 5xx responses within one sample interval that make a burst.
    pub error_burst: u64,
    /// The `http.requests` counter, when it has a `status` label (bursts are read from it).
    pub requests_metric: Option<String>,
    /// The gauge whose changes are low-stock events.
    pub low_stock: Option<String>,
    pub targets: Vec<TargetSpec>,
    /// What one request may cost.
    pub limits: crate::manifest::QueryLimits,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            every: Duration::from_secs(5),
            retention: 1,
            annotation_capacity: 1,
            error_burst: 1,
            requests_metric: None,
            low_stock: None,
            targets: Vec::new(),
            limits: Default::default(),
        }
    }
}

impl Spec {
    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetSpec> {
        self.targets.iter().find(|t| t.name == name)
    }
    /// Series targets, in slot order.
    pub fn series(&self) -> impl Iterator<Item = (&TargetSpec, &SeriesDef)> {
        self.targets.iter().filter_map(|t| match &t.body {
            TargetBody::Series(s) => Some((t, s)),
            _ => None,
        })
    }
    /// Number of series slots in each ring sample.
    pub fn series_count(&self) -> usize {
        self.series().count()
    }
    /// The table columns, each name once (the filter and tag keys).
    pub fn columns(&self) -> Vec<&Column> {
        let mut out: Vec<&Column> = Vec::new();
        for t in &self.targets {
            if let TargetBody::Table(tb) = &t.body {
                for c in &tb.columns {
                    if !out.iter().any(|o| o.name == c.name) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }
    /// Some target serves annotations (so `tags` is a key too).
    pub fn has_annotations(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.body, TargetBody::Annotations(_)))
    }
    /// Every filter and tag key: the columns, plus `tags` with annotations.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.columns().iter().map(|c| c.name.as_str()).collect();
        if self.has_annotations() {
            keys.push("tags");
        }
        keys
    }
    /// The names of the targets whose body is of `kind` (`series`, `table`,
    /// `annotations`; `None`: all).
    pub fn names(&self, kind: Option<&str>) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|t| kind.is_none_or(|k| t.body.kind() == k))
            .map(|t| t.name.as_str())
            .collect()
    }
}

/// One queryable name.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub name: String,
    pub description: String,
    pub body: TargetBody,
}

#[derive(Debug, Clone)]
pub enum TargetBody {
    Series(SeriesDef),
    Table(Table),
    Annotations(Vec<EventKind>),
}

impl TargetBody {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetBody::Series(_) => "series",
            TargetBody::Table(_) => "table",
            TargetBody::Annotations(_) => "annotations",
        }
    }
}

/// A sampled series.
#[derive(Debug, Clone)]
pub struct SeriesDef {
    /// Index of this series in each ring sample.
    pub slot: usize,
    pub metric: String,
    pub stat: Stat,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    Rate,
    ErrorRate,
    Quantile(f64),
    Value,
}

/// A table's column: its name and Grafana field type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `number`, `string`, `boolean` or `other`.
    pub kind: &'static str,
}

/// Rows computed once from the collection's data.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Json>>,
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MAX_RETENTION: usize = 100_000;
const MAX_ANNOTATIONS: usize = 10_000;

/// Target names travel in JSON and URLs: keep them plain.
fn is_target_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn field_type(v: &Json) -> &'static str {
    match v {
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Bool(_) => "boolean",
        _ => "other",
    }
}

/// Checks `m.datasource`; `None` when something is wrong (errors are in `errs`).
///
/// `sources` holds each metric's prepared source (`None`: its kind is
/// unknown or refused it, and reported why).
pub fn prepare(
    src: &Source,
    m: &Manifest,
    sources: &[Option<Arc<dyn PreparedSource>>],
    errs: &mut Diagnostics,
) -> Option<Spec> {
    let d = &m.datasource;
    let before = errs.len();
    let every = settings(src, m, errs);
    let a = &d.annotations;
    let requests_metric = m
        .metrics
        .iter()
        .zip(sources)
        .find(|(x, s)| {
            s.as_ref()
                .is_some_and(|s| s.roles().contains(&Role::RequestCounter))
                && x.labels.iter().any(|l| l == "status")
        })
        .map(|(x, _)| x.name.clone());
    // A metric whose source failed might have been the counter: no
    // follow-on error for its absence.
    let sources_failed = sources.iter().any(Option::is_none);

    let targets = targets(src, m, sources, &requests_metric, sources_failed, errs);
    (errs.len() == before).then(|| Spec {
        every,
        retention: d.retention,
        annotation_capacity: a.capacity,
        error_burst: a.error_burst,
        requests_metric,
        low_stock: a.low_stock.clone(),
        targets,
        limits: d.limits.clone(),
    })
}

/// Checks the datasource's settings (interval, retention, limits,
/// annotations); returns the sample interval to use.
fn settings(src: &Source, m: &Manifest, errs: &mut Diagnostics) -> Duration {
    let d = &m.datasource;
    let every = match d.sample_interval.get() {
        t if (MIN_INTERVAL..=MAX_INTERVAL).contains(&t) => t,
        _ => {
            errs.push(src.error(
                "datasource.sample_interval",
                format!("{:?} must be from 100ms to 1h", d.sample_interval.as_str()),
            ));
            MIN_INTERVAL
        }
    };
    if !(1..=MAX_RETENTION).contains(&d.retention) {
        errs.push(src.error(
            "datasource.retention",
            format!("{} must be from 1 to {MAX_RETENTION} points", d.retention),
        ));
    }
    let a = &d.annotations;
    if !(1..=MAX_ANNOTATIONS).contains(&a.capacity) {
        errs.push(src.error(
            "datasource.annotations.capacity",
            format!("{} must be from 1 to {MAX_ANNOTATIONS} events", a.capacity),
        ));
    }
    let l = &d.limits;
    for (field, v, max) in [
        ("max_targets", l.max_targets, 10_000),
        ("max_columns", l.max_columns, 10_000),
        ("max_filters", l.max_filters, 10_000),
        ("default_max_points", l.default_max_points, MAX_RETENTION),
        ("max_response_bytes", l.max_response_bytes, 1 << 30),
    ] {
        if !(1..=max).contains(&v) {
            errs.push(src.error(
                &format!("datasource.limits.{field}"),
                format!("{v} must be from 1 to {max}"),
            ));
        }
    }
    if a.error_burst == 0 {
        errs.push(src.error("datasource.annotations.error_burst", "must be at least 1"));
    }
    if let Some(name) = &a.low_stock {
        match m.metrics.iter().find(|x| &x.name == name) {
            None => errs.push(src.error(
                "datasource.annotations.low_stock",
                format!("{name:?} is not a declared metric"),
            )),
            Some(x) if x.kind != MetricType::Gauge => errs.push(src.error(
                "datasource.annotations.low_stock",
                format!("{name:?} is a {}, not a gauge", x.kind.as_str()),
            )),
            _ => {}
        }
    }
    every
}

/// Checks every target of `datasource.targets`; returns those that are sound.
fn targets(
    src: &Source,
    m: &Manifest,
    sources: &[Option<Arc<dyn PreparedSource>>],
    requests_metric: &Option<String>,
    sources_failed: bool,
    errs: &mut Diagnostics,
) -> Vec<TargetSpec> {
    let d = &m.datasource;
    let mut targets: Vec<TargetSpec> = Vec::new();
    let mut slot = 0;
    for (i, t) in d.targets.iter().enumerate() {
        let at = |f: &str| format!("datasource.targets[{i}].{f}");
        if !is_target_name(&t.name) {
            errs.push(src.error(
                &at("name"),
                format!(
                    "{:?} is not a valid target name (1-64 letters, digits, '_', '-', '.')",
                    t.name
                ),
            ));
        }
        if let Some(first) = d.targets[..i].iter().position(|o| o.name == t.name) {
            errs.push(src.error(
                &at("name"),
                format!(
                    "duplicate target {:?} (already declared at datasource.targets[{first}])",
                    t.name
                ),
            ));
        }
        let kind = t.kind;
        let not_here = |field: &str, present: bool, errs: &mut Diagnostics| {
            if present {
                errs.push(src.key_error(
                    &at(field),
                    format!(
                        "`{field}` does not apply to a {} target",
                        match kind {
                            DatasourceTargetKind::Series => "series",
                            DatasourceTargetKind::Table => "table",
                            DatasourceTargetKind::Annotations => "annotations",
                        }
                    ),
                ));
            }
        };
        let body = match t.kind {
            DatasourceTargetKind::Series => {
                not_here("columns", !t.columns.is_empty(), errs);
                not_here("events", !t.events.is_empty(), errs);
                series(src, m, t, &at, slot, errs).map(|s| {
                    slot += 1;
                    TargetBody::Series(s)
                })
            }
            DatasourceTargetKind::Table => {
                not_here("stat", t.stat.is_some(), errs);
                not_here("quantile", t.quantile.is_some(), errs);
                not_here("events", !t.events.is_empty(), errs);
                table(src, m, sources, t, &at, errs).map(TargetBody::Table)
            }
            DatasourceTargetKind::Annotations => {
                not_here("metric", t.metric.is_some(), errs);
                not_here("stat", t.stat.is_some(), errs);
                not_here("quantile", t.quantile.is_some(), errs);
                not_here("columns", !t.columns.is_empty(), errs);
                let events =
                    annotation_events(src, m, t, &at, requests_metric, sources_failed, errs);
                Some(TargetBody::Annotations(events))
            }
        };
        if let Some(body) = body {
            targets.push(TargetSpec {
                name: t.name.clone(),
                description: t.description.clone(),
                body,
            });
        }
    }
    targets
}

/// The events an annotations target shows (all when it names none); an
/// event named that the manifest cannot record is an error.
fn annotation_events(
    src: &Source,
    m: &Manifest,
    t: &crate::manifest::DatasourceTarget,
    at: &dyn Fn(&str) -> String,
    requests_metric: &Option<String>,
    sources_failed: bool,
    errs: &mut Diagnostics,
) -> Vec<EventKind> {
    let events = if t.events.is_empty() {
        EventKind::ALL.to_vec()
    } else {
        t.events.clone()
    };
    for (j, e) in t.events.iter().enumerate() {
        let why = match e {
            EventKind::ErrorBurst if requests_metric.is_none() && !sources_failed => {
                "error_burst events need an `http.requests` counter with a `status` label"
            }
            EventKind::LowStock if m.datasource.annotations.low_stock.is_none() => {
                "low_stock events need `datasource.annotations.low_stock` (the gauge to watch)"
            }
            _ => continue,
        };
        errs.push(src.error(&at(&format!("events[{j}]")), why));
    }
    events
}

fn series(
    src: &Source,
    m: &Manifest,
    t: &crate::manifest::DatasourceTarget,
    at: &dyn Fn(&str) -> String,
    slot: usize,
    errs: &mut Diagnostics,
) -> Option<SeriesDef> {
    let Some(name) = &t.metric else {
        errs.push(src.error(&at("metric"), "a series target needs `metric`"));
        return None;
    };
    let Some(metric) = m.metrics.iter().find(|x| &x.name == name) else {
        errs.push(src.error(&at("metric"), format!("{name:?} is not a declared metric")));
        return None;
    };
    let Some(stat) = t.stat else {
        errs.push(src.error(
            &at("stat"),
            "a series target needs `stat` (rate, error_rate, quantile or value)",
        ));
        return None;
    };
    let need = |want: MetricType, errs: &mut Diagnostics| {
        let ok = metric.kind == want;
        if !ok {
            errs.push(src.error(
                &at("stat"),
                format!(
                    "stat {:?} needs a {}; {name:?} is a {}",
                    format!("{stat:?}").to_lowercase(),
                    want.as_str(),
                    metric.kind.as_str()
                ),
            ));
        }
        ok
    };
    if stat != SeriesStat::Quantile && t.quantile.is_some() {
        errs.push(src.key_error(&at("quantile"), "only `stat: quantile` takes a quantile"));
        return None;
    }
    let stat = match stat {
        SeriesStat::Rate => need(MetricType::Counter, errs).then_some(Stat::Rate)?,
        SeriesStat::ErrorRate => {
            need(MetricType::Counter, errs).then_some(())?;
            if !metric.labels.iter().any(|l| l == "status") {
                errs.push(src.error(
                    &at("metric"),
                    format!("error_rate needs a `status` label; {name:?} has none"),
                ));
                return None;
            }
            Stat::ErrorRate
        }
        SeriesStat::Quantile => {
            need(MetricType::Histogram, errs).then_some(())?;
            match t.quantile {
                Some(q) if q > 0.0 && q < 1.0 => Stat::Quantile(q),
                Some(q) => {
                    errs.push(src.error(
                        &at("quantile"),
                        format!("{q} must be between 0 and 1 (exclusive)"),
                    ));
                    return None;
                }
                None => {
                    errs.push(src.error(&at("quantile"), "stat quantile needs `quantile`"));
                    return None;
                }
            }
        }
        SeriesStat::Value => need(MetricType::Gauge, errs).then_some(Stat::Value)?,
    };
    Some(SeriesDef {
        slot,
        metric: name.clone(),
        stat,
    })
}

fn table(
    src: &Source,
    m: &Manifest,
    sources: &[Option<Arc<dyn PreparedSource>>],
    t: &crate::manifest::DatasourceTarget,
    at: &dyn Fn(&str) -> String,
    errs: &mut Diagnostics,
) -> Option<Table> {
    let Some(name) = &t.metric else {
        errs.push(src.error(
            &at("metric"),
            "a table target needs `metric` (a collection.below_threshold gauge)",
        ));
        return None;
    };
    let Some(index) = m.metrics.iter().position(|x| &x.name == name) else {
        errs.push(src.error(&at("metric"), format!("{name:?} is not a declared metric")));
        return None;
    };
    // A source that failed to prepare has its own errors.
    let source = sources.get(index)?.as_ref()?;
    let Some(items) = source.table_items() else {
        errs.push(src.error(
            &at("metric"),
            format!(
                "{name:?} has source {:?}; a table needs a collection.below_threshold gauge",
                m.metrics[index].source
            ),
        ));
        return None;
    };
    let all_items = items.first().map(|i| i.keys().cloned().collect::<Vec<_>>());
    let names: Vec<String> = if t.columns.is_empty() {
        all_items.unwrap_or_default()
    } else {
        t.columns.clone()
    };
    let mut columns = Vec::new();
    for (j, c) in names.iter().enumerate() {
        if !t.columns.is_empty() && names[..j].contains(c) {
            errs.push(src.error(
                &at(&format!("columns[{j}]")),
                format!("duplicate column {c:?}"),
            ));
            continue;
        }
        let sample = items.iter().filter_map(|i| i.get(c)).find(|v| !v.is_null());
        // Rows are the items below the threshold; an empty table is fine, an unknown column is not.
        if sample.is_none() && !items.is_empty() {
            errs.push(src.error(
                &at(&format!("columns[{j}]")),
                format!("no item counted by {name:?} has a field {c:?}"),
            ));
            continue;
        }
        columns.push(Column {
            name: c.clone(),
            kind: sample.map(field_type).unwrap_or("string"),
        });
    }
    let rows = items
        .iter()
        .map(|i| {
            columns
                .iter()
                .map(|c| i.get(&c.name).cloned().unwrap_or(Json::Null))
                .collect()
        })
        .collect();
    Some(Table { columns, rows })
}
