//! The answers: one function per route, typed request in, JSON out.
//!
//! Choice for an unknown target: **400**, naming the field
//! (`targets[2].target`) and listing the known targets. Grafana shows that
//! message on the panel, which beats an empty graph that looks healthy.
//!
//! `POST /query` lives in [`query`]; the filters it and the variables
//! take in `filter`, the payloads and time range in `payload`.

use super::annotations::{AnnotationEvent, TAGS};
use super::protocol::*;
use super::spec::{Column, Table, TargetBody, TargetSpec};
use super::Live;
use crate::manifest::EventKind;
use crate::server::error::capped;
use serde_json::{json, Map, Value as Json};

mod filter;
mod payload;
mod query;

use filter::*;
use payload::*;
pub use query::{query, query_limits};

pub type Answer = Result<Json, BadField>;

fn known(live: &Live) -> String {
    let names: Vec<&str> = live.spec.targets.iter().map(|t| t.name.as_str()).collect();
    if names.is_empty() {
        "none are declared".into()
    } else {
        format!("known: {}", names.join(", "))
    }
}

fn lookup<'a>(live: &'a Live, name: &str, at: &str) -> Result<&'a TargetSpec, BadField> {
    live.spec.target(name).ok_or_else(|| {
        BadField::new(
            at,
            &format!("unknown target {:?} ({})", capped(name), known(live)),
        )
    })
}

/// `GET /health` and the connection test (`GET /`).
pub fn health(live: &Live) -> Json {
    let (samples, capacity) = live.fill();
    json!({
        "status": "ok",
        "targets": live.spec.targets.len(),
        "samples": samples,
        "capacity": capacity,
        "events": live.event_count(),
    })
}

/// `POST /search` (SimpleJSON): target names containing the typed text.
pub fn search(live: &Live, req: SearchRequest) -> Json {
    let needle = req.target.unwrap_or_default().to_lowercase();
    live.spec
        .targets
        .iter()
        .filter(|t| t.name.to_lowercase().contains(&needle))
        .map(|t| Json::from(t.name.clone()))
        .collect()
}

/// The builder-mode payloads a target takes (options come from `/metric-payload-options`).
fn payload_defs(body: &TargetBody) -> Json {
    match body {
        TargetBody::Series(_) => json!([]),
        TargetBody::Table(_) => json!([{
            "label": "Columns", "name": "columns", "type": "multi-select",
            "placeholder": "all columns", "reloadMetric": false
        }]),
        TargetBody::Annotations(_) => json!([{
            "label": "Events", "name": "events", "type": "multi-select",
            "placeholder": "all events", "reloadMetric": false
        }]),
    }
}

/// `POST /metrics` (simpod): every target with its payload definitions.
pub fn metrics(live: &Live, _req: MetricsRequest) -> Json {
    live.spec
        .targets
        .iter()
        .map(|t| {
            json!({
                "label": t.name,
                "value": t.name,
                "payloads": payload_defs(&t.body),
            })
        })
        .collect()
}

fn options<'a>(values: impl Iterator<Item = &'a str>) -> Json {
    values.map(|v| json!({"label": v, "value": v})).collect()
}

/// `POST /metric-payload-options` (simpod): the choices of one payload.
pub fn payload_options(live: &Live, req: PayloadOptionsRequest) -> Answer {
    let t = lookup(live, &req.metric, "metric")?;
    match (&t.body, req.name.as_str()) {
        (TargetBody::Table(tb), "columns") => {
            Ok(options(tb.columns.iter().map(|c| c.name.as_str())))
        }
        (TargetBody::Annotations(ev), "events") => Ok(options(ev.iter().map(|e| e.as_str()))),
        (body, name) => {
            let has = match body {
                TargetBody::Series(_) => "none",
                TargetBody::Table(_) => "columns",
                TargetBody::Annotations(_) => "events",
            };
            Err(BadField::new(
                "name",
                &format!(
                    "target {:?} has no payload {:?} (it has: {has})",
                    t.name,
                    capped(name)
                ),
            ))
        }
    }
}

/// `POST /annotations` (SimpleJSON): `annotation.query` names an annotations target (empty: all events).
pub fn annotations(live: &Live, req: AnnotationsRequest) -> Answer {
    let (from, to) = time_range(req.range.as_ref(), "range")?;
    let echo = req.annotation.clone().unwrap_or_else(|| json!({}));
    let q: AnnotationQuery = match &req.annotation {
        Some(v) => parse_value(v, "annotation")?,
        None => AnnotationQuery::default(),
    };
    let kinds = match q.query.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => EventKind::ALL.to_vec(),
        Some(name) => match &lookup(live, name, "annotation.query")?.body {
            TargetBody::Annotations(k) => k.clone(),
            other => {
                return Err(BadField::new(
                    "annotation.query",
                    &format!(
                        "target {name:?} is a {} target, not annotations",
                        other.kind()
                    ),
                ))
            }
        },
    };
    Ok(live
        .events(&kinds, from, to)
        .iter()
        .map(|e| {
            let mut v = e.to_json();
            v["annotation"] = echo.clone();
            v
        })
        .collect())
}

fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// `POST /variable` (simpod): `""`/`*` lists targets; `<table>` or `<table>.<column>` lists values.
pub fn variable(live: &Live, req: VariableRequest) -> Answer {
    let target = match &req.payload {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(Json::Object(m)) => match m.get("target") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(_) => return Err(BadField::new("payload.target", "expected a string")),
        },
        Some(_) => return Err(BadField::new("payload", "expected an object or a string")),
    };
    let target = target.trim();
    let pairs = |vals: Vec<String>| -> Json {
        vals.into_iter()
            .map(|v| json!({"__text": v, "__value": v}))
            .collect()
    };
    if target.is_empty() || target == "*" {
        return Ok(pairs(
            live.spec.targets.iter().map(|t| t.name.clone()).collect(),
        ));
    }
    let (name, column) = match live.spec.target(target) {
        Some(_) => (target, None),
        None => match target.rsplit_once('.') {
            Some((n, c)) if live.spec.target(n).is_some() => (n, Some(c)),
            _ => (target, None),
        },
    };
    let t = lookup(live, name, "payload.target")?;
    let TargetBody::Table(tb) = &t.body else {
        return Err(BadField::new(
            "payload.target",
            &format!(
                "target {name:?} is a {} target; only tables have values",
                t.body.kind()
            ),
        ));
    };
    let ci = match column {
        None => 0,
        Some(c) => tb.columns.iter().position(|x| x.name == c).ok_or_else(|| {
            BadField::new(
                "payload.target",
                &format!("table {name:?} has no column {:?}", capped(c)),
            )
        })?,
    };
    Ok(pairs(distinct(
        tb.rows.iter().filter_map(|r| r.get(ci)).map(text),
    )))
}

/// `POST /tag-keys`: table columns, plus `tags` when annotations are served.
pub fn tag_keys(live: &Live) -> Json {
    let mut out: Vec<Json> = column_keys(live)
        .iter()
        .map(|c| {
            let kind = if c.kind == "number" {
                "number"
            } else {
                "string"
            };
            json!({"type": kind, "text": c.name})
        })
        .collect();
    if has_annotations(live) {
        out.push(json!({"type": "string", "text": "tags"}));
    }
    Json::Array(out)
}

/// `POST /tag-values`: the values a key takes.
pub fn tag_values(live: &Live, req: TagValuesRequest) -> Answer {
    let vals: Vec<String> = if req.key == "tags" && has_annotations(live) {
        TAGS.iter().map(|s| s.to_string()).collect()
    } else if column_keys(live).iter().any(|c| c.name == req.key) {
        distinct(live.spec.targets.iter().flat_map(|t| match &t.body {
            TargetBody::Table(tb) => match tb.columns.iter().position(|c| c.name == req.key) {
                Some(i) => tb.rows.iter().map(|r| text(&r[i])).collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        }))
    } else {
        return Err(BadField::new(
            "key",
            &format!("unknown key {:?} (see /tag-keys)", capped(&req.key)),
        ));
    };
    Ok(vals.into_iter().map(|v| json!({"text": v})).collect())
}
