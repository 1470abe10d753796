//! `POST /query`: each target's answer (series, table or events), within
//! `datasource.limits`.

use super::*;

pub(super) fn table_json(ref_id: &Json, columns: Json, rows: Vec<Json>) -> Json {
    json!({"type": "table", "refId": ref_id, "columns": columns, "rows": rows})
}

pub(super) fn select_table(
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

pub(super) fn event_kinds(
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

pub(super) fn select_events(
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
pub(super) struct Frame<'a> {
    live: &'a Live,
    from: i64,
    to: i64,
    max_points: usize,
    min_step: i64,
    conds: &'a [Cond],
}

/// The answer for one target of a query (`at`: its payload's field).
pub(super) fn target_answer(
    f: &Frame,
    t: &TargetSpec,
    q: &QueryTarget,
    at: &str,
    ref_id: &Json,
) -> Answer {
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
            let pts = super::super::ring::downsample(pts, a, b, f.max_points, f.min_step);
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
pub(super) fn json_len(v: &Json) -> usize {
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
pub(super) fn too_large(i: usize, limit: usize) -> BadField {
    BadField::too_large(
        &format!("targets[{i}]"),
        &format!(
            "the answer would exceed {limit} bytes (datasource.limits.max_response_bytes); \
             ask for fewer targets, columns or points"
        ),
    )
}
