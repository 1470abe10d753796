//! The answers: one function per route, typed request in, JSON out.
//!
//! Choice for an unknown target: **400**, naming the field
//! (`targets[2].target`) and listing the known targets. Grafana shows that
//! message on the panel, which beats an empty graph that looks healthy.

use super::annotations::{AnnotationEvent, TAGS};
use super::protocol::*;
use super::spec::{Column, Table, TargetBody, TargetSpec};
use super::Live;
use crate::manifest::EventKind;
use crate::server::error::capped;
use serde_json::{json, Map, Value as Json};

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

/// A filter, checked.
struct Cond {
    key: String,
    op: FilterOp,
    values: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum FilterOp {
    Eq,
    Ne,
    Lt,
    Gt,
    AnyOf,
    NoneOf,
}

/// The text of a cell, for comparisons and tag values.
fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn column_keys(live: &Live) -> Vec<&Column> {
    live.spec.columns()
}

fn has_annotations(live: &Live) -> bool {
    live.spec.has_annotations()
}

fn compile_filters(live: &Live, list: &[Filter], field: &str) -> Result<Vec<Cond>, BadField> {
    let cols = column_keys(live);
    let tags = has_annotations(live);
    list.iter()
        .enumerate()
        .map(|(i, f)| {
            let at = |x: &str| format!("{field}[{i}].{x}");
            let is_tags = tags && f.key == "tags";
            if !is_tags && !cols.iter().any(|c| c.name == f.key) {
                return Err(BadField::new(
                    &at("key"),
                    &format!(
                        "unknown filter key {:?} (keys: {})",
                        capped(&f.key),
                        live.spec.keys().join(", ")
                    ),
                ));
            }
            let op = match f.operator.as_str() {
                "=" => FilterOp::Eq,
                "!=" => FilterOp::Ne,
                "<" if !is_tags => FilterOp::Lt,
                ">" if !is_tags => FilterOp::Gt,
                "=|" => FilterOp::AnyOf,
                "!=|" => FilterOp::NoneOf,
                other => {
                    return Err(BadField::new(
                        &at("operator"),
                        &format!(
                            "operator {:?} is not supported for {:?} (supported: {})",
                            capped(other),
                            capped(&f.key),
                            if is_tags {
                                "=, !=, =|, !=|"
                            } else {
                                "=, !=, <, >, =|, !=|"
                            }
                        ),
                    ))
                }
            };
            let values = match op {
                FilterOp::AnyOf | FilterOp::NoneOf if !f.values.is_empty() => f.values.clone(),
                _ => vec![f.value.clone()],
            };
            Ok(Cond {
                key: f.key.clone(),
                op,
                values,
            })
        })
        .collect()
}

fn cell_matches(cell: &Json, op: FilterOp, values: &[String]) -> bool {
    let eq = |v: &String| match (cell.as_f64(), v.parse::<f64>()) {
        (Some(a), Ok(b)) => a == b,
        _ => text(cell) == *v,
    };
    let cmp = |v: &String| match (cell.as_f64(), v.parse::<f64>()) {
        (Some(a), Ok(b)) => a.partial_cmp(&b),
        _ => Some(text(cell).cmp(v)),
    };
    match op {
        FilterOp::Eq | FilterOp::AnyOf => values.iter().any(eq),
        FilterOp::Ne | FilterOp::NoneOf => !values.iter().any(eq),
        FilterOp::Lt => values
            .iter()
            .all(|v| cmp(v) == Some(std::cmp::Ordering::Less)),
        FilterOp::Gt => values
            .iter()
            .all(|v| cmp(v) == Some(std::cmp::Ordering::Greater)),
    }
}

fn tags_match(tags: &[String], op: FilterOp, values: &[String]) -> bool {
    let any = values.iter().any(|v| tags.contains(v));
    match op {
        FilterOp::Eq | FilterOp::AnyOf => any,
        _ => !any,
    }
}

/// A payload as an object: absent, `null` and `""` are empty; a string must hold JSON.
fn payload_object(p: Option<&Json>, at: &str) -> Result<Map<String, Json>, BadField> {
    let parsed;
    let v = match p {
        None | Some(Json::Null) => return Ok(Map::new()),
        Some(Json::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Json::String(s)) => {
            parsed = serde_json::from_str::<Json>(s)
                .map_err(|e| BadField::new(at, &format!("payload text is not JSON: {e}")))?;
            &parsed
        }
        Some(v) => v,
    };
    match v {
        Json::Object(m) => Ok(m.clone()),
        _ => Err(BadField::new(at, "expected a JSON object")),
    }
}

/// A list argument: an array of strings, or one comma-separated string.
fn list_arg(v: &Json, at: &str) -> Result<Vec<String>, BadField> {
    match v {
        Json::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Json::Array(a) => a
            .iter()
            .enumerate()
            .map(|(j, x)| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| BadField::new(&format!("{at}[{j}]"), "expected a string"))
            })
            .collect(),
        _ => Err(BadField::new(at, "expected a list of strings")),
    }
}

/// Splits a payload into its one allowed key (`allowed`), rejecting others.
fn payload_list(
    p: Option<&Json>,
    at: &str,
    allowed: Option<&str>,
) -> Result<Option<Vec<String>>, BadField> {
    let obj = payload_object(p, at)?;
    let mut out = None;
    for (k, v) in &obj {
        let kat = format!("{at}.{k}");
        match allowed {
            Some(a) if a == k => out = Some(list_arg(v, &kat)?),
            Some(a) => {
                return Err(BadField::new(
                    &kat,
                    &format!("unknown payload key {k:?} (this target takes: {a})"),
                ))
            }
            None => return Err(BadField::new(&kat, "series targets take no payload")),
        }
    }
    Ok(out)
}

fn time_range(r: Option<&Range>, at: &str) -> Result<(i64, i64), BadField> {
    match r {
        Some(r) if r.from.0 > r.to.0 => Err(BadField::new(
            at,
            &format!("`from` ({}) is after `to` ({})", r.from.0, r.to.0),
        )),
        Some(r) => Ok((r.from.0, r.to.0)),
        None => Ok((i64::MIN, i64::MAX)),
    }
}

fn table_json(ref_id: &Json, columns: Json, rows: Vec<Json>) -> Json {
    json!({"type": "table", "refId": ref_id, "columns": columns, "rows": rows})
}

fn select_table(
    tb: &Table,
    cols: Option<Vec<String>>,
    conds: &[Cond],
    at: &str,
) -> Result<(Json, Vec<Json>), BadField> {
    let idx: Vec<usize> = match cols {
        None => (0..tb.columns.len()).collect(),
        Some(names) if names.is_empty() => (0..tb.columns.len()).collect(),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(j, n)| {
                tb.columns.iter().position(|c| &c.name == n).ok_or_else(|| {
                    let have: Vec<&str> = tb.columns.iter().map(|c| c.name.as_str()).collect();
                    BadField::new(
                        &format!("{at}.columns[{j}]"),
                        &format!("unknown column {n:?} (columns: {})", have.join(", ")),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let applicable: Vec<(usize, &Cond)> = conds
        .iter()
        .filter_map(|c| {
            tb.columns
                .iter()
                .position(|x| x.name == c.key)
                .map(|i| (i, c))
        })
        .collect();
    let columns: Json = idx
        .iter()
        .map(|&i| json!({"text": tb.columns[i].name, "type": tb.columns[i].kind}))
        .collect();
    let rows = tb
        .rows
        .iter()
        .filter(|row| {
            applicable
                .iter()
                .all(|(i, c)| cell_matches(&row[*i], c.op, &c.values))
        })
        .map(|row| idx.iter().map(|&i| row[i].clone()).collect::<Json>())
        .collect();
    Ok((columns, rows))
}

fn event_kinds(
    own: &[EventKind],
    picked: Option<Vec<String>>,
    at: &str,
) -> Result<Vec<EventKind>, BadField> {
    match picked {
        None => Ok(own.to_vec()),
        Some(p) if p.is_empty() => Ok(own.to_vec()),
        Some(p) => p
            .iter()
            .enumerate()
            .map(|(j, name)| {
                own.iter()
                    .copied()
                    .find(|k| k.as_str() == name)
                    .ok_or_else(|| {
                        let have: Vec<&str> = own.iter().map(|k| k.as_str()).collect();
                        BadField::new(
                            &format!("{at}.events[{j}]"),
                            &format!(
                                "unknown event {:?} (events: {})",
                                capped(name),
                                have.join(", ")
                            ),
                        )
                    })
            })
            .collect(),
    }
}

fn select_events(
    live: &Live,
    kinds: &[EventKind],
    from: i64,
    to: i64,
    conds: &[Cond],
) -> Vec<AnnotationEvent> {
    live.events(kinds, from, to)
        .into_iter()
        .filter(|e| {
            conds
                .iter()
                .filter(|c| c.key == "tags")
                .all(|c| tags_match(&e.tags, c.op, &c.values))
        })
        .collect()
}

/// The counts a query may ask for (`datasource.limits`): checked on the
/// typed body before anything else is built from it.
pub fn query_limits(live: &Live, req: &QueryCounts) -> Result<(), BadField> {
    let limits = &live.spec.limits;
    let (targets, adhoc_filters, filters) = (req.targets.0, req.adhoc_filters.0, req.filters.0);
    if targets > limits.max_targets {
        return Err(BadField::new(
            "targets",
            &format!(
                "{targets} targets in one query; the limit is {} (datasource.limits.max_targets)",
                limits.max_targets
            ),
        ));
    }
    if adhoc_filters + filters > limits.max_filters {
        let filters = adhoc_filters + filters;
        return Err(BadField::new(
            if req.filters.0 == 0 {
                "adhocFilters"
            } else {
                "filters"
            },
            &format!(
                "{filters} filters in one query; the limit is {} (datasource.limits.max_filters)",
                limits.max_filters
            ),
        ));
    }
    Ok(())
}

/// `POST /query`: series from the ring, tables, and (simpod) annotations as a table.
///
/// Bounded by `datasource.limits`: at most `max_targets` targets,
/// `max_filters` filters and `max_columns` named columns (each a 400 naming
/// the limit), `default_max_points` points per series when `maxDataPoints`
/// is absent, and `max_response_bytes` of answer (a 413). The answer is
/// measured target by target as it is built, so an oversized one stops
/// being built at the target that crosses the limit.
pub fn query(live: &Live, req: QueryRequest) -> Answer {
    let limits = &live.spec.limits;
    let (from, to) = time_range(req.range.as_ref(), "range")?;
    if req.max_data_points == Some(0) {
        return Err(BadField::new("maxDataPoints", "must be at least 1"));
    }
    query_limits(
        live,
        &QueryCounts {
            targets: Count(req.targets.len()),
            adhoc_filters: Count(req.adhoc_filters.len()),
            filters: Count(req.filters.len()),
        },
    )?;
    let max_points = req.max_data_points.map_or(limits.default_max_points, |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    let min_step = req
        .interval_ms
        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let mut conds = compile_filters(live, &req.adhoc_filters, "adhocFilters")?;
    conds.extend(compile_filters(live, &req.filters, "filters")?);
    let frame = Frame {
        live,
        from,
        to,
        max_points,
        min_step,
        conds: &conds,
    };
    let mut out = Vec::with_capacity(req.targets.len());
    // Bytes of the answer so far: `[`, `]`, the commas and each target's JSON.
    let mut size = 2usize;
    for (i, q) in req.targets.iter().enumerate() {
        if let Some(last) = out.last() {
            size += 1 + json_len(last);
            if size > limits.max_response_bytes {
                return Err(too_large(i - 1, limits.max_response_bytes));
            }
        }
        let Some(name) = q.target.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        if q.hide == Some(true) {
            continue;
        }
        let t = lookup(live, name, &format!("targets[{i}].target"))?;
        let at = format!("targets[{i}].payload");
        let ref_id = json!(q.ref_id.clone().unwrap_or_else(|| name.to_string()));
        out.push(target_answer(&frame, t, q, &at, &ref_id)?);
    }
    if let Some(last) = out.last() {
        size += json_len(last);
        if size > limits.max_response_bytes {
            return Err(too_large(out.len() - 1, limits.max_response_bytes));
        }
    }
    Ok(Json::Array(out))
}

/// What a query asks of every target: the time range, the points per
/// series, and the filters.
struct Frame<'a> {
    live: &'a Live,
    from: i64,
    to: i64,
    max_points: usize,
    min_step: i64,
    conds: &'a [Cond],
}

/// The answer for one target of a query (`at`: its payload's field).
fn target_answer(f: &Frame, t: &TargetSpec, q: &QueryTarget, at: &str, ref_id: &Json) -> Answer {
    let (live, from, to, conds) = (f.live, f.from, f.to, f.conds);
    let limits = &live.spec.limits;
    match &t.body {
        TargetBody::Series(s) => {
            payload_list(q.payload.as_ref(), at, None)?;
            let pts = live.points(s.slot, from, to);
            let (a, b) = match (pts.first(), pts.last()) {
                (Some(a), Some(b)) => (a.0, b.0),
                _ => (0, 0),
            };
            let pts = super::ring::downsample(pts, a, b, f.max_points, f.min_step);
            if q.kind == Some(TargetType::Table) {
                let columns = json!([
                    {"text": "Time", "type": "time"},
                    {"text": t.name, "type": "number"}
                ]);
                let rows = pts.iter().map(|(t, v)| json!([t, v])).collect();
                Ok(table_json(ref_id, columns, rows))
            } else {
                let datapoints: Vec<Json> = pts.iter().map(|(t, v)| json!([v, t])).collect();
                Ok(json!({"target": t.name, "refId": ref_id, "datapoints": datapoints}))
            }
        }
        TargetBody::Table(tb) => {
            let cols = payload_list(q.payload.as_ref(), at, Some("columns"))?;
            if cols.as_ref().is_some_and(|c| c.len() > limits.max_columns) {
                return Err(BadField::new(
                    &format!("{at}.columns"),
                    &format!(
                        "{} columns named; the limit is {} (datasource.limits.max_columns)",
                        cols.as_ref().map_or(0, Vec::len),
                        limits.max_columns
                    ),
                ));
            }
            let (columns, rows) = select_table(tb, cols, conds, at)?;
            Ok(table_json(ref_id, columns, rows))
        }
        TargetBody::Annotations(own) => {
            let picked = payload_list(q.payload.as_ref(), at, Some("events"))?;
            let kinds = event_kinds(own, picked, at)?;
            let columns = json!([
                {"text": "time", "type": "time"},
                {"text": "timeEnd", "type": "time"},
                {"text": "title", "type": "string"},
                {"text": "text", "type": "string"},
                {"text": "tags", "type": "string"}
            ]);
            let rows = select_events(live, &kinds, from, to, conds)
                .iter()
                .map(|e| {
                    json!([
                        e.time_ms,
                        e.time_end_ms.unwrap_or(e.time_ms),
                        e.title,
                        e.text,
                        e.tags.join(",")
                    ])
                })
                .collect();
            Ok(table_json(ref_id, columns, rows))
        }
    }
}

/// Bytes of `v` as compact JSON, counted without keeping them.
fn json_len(v: &Json) -> usize {
    struct ByteCounter(usize);
    impl std::io::Write for ByteCounter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = ByteCounter(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The 413 for an answer that grew past the limit at target `i`.
fn too_large(i: usize, limit: usize) -> BadField {
    BadField::too_large(
        &format!("targets[{i}]"),
        &format!(
            "the answer would exceed {limit} bytes (datasource.limits.max_response_bytes); \
             ask for fewer targets, columns or points"
        ),
    )
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
