//! Links between the signals: an alert to its runbook, its dashboard and
//! the exact panel that shows its metric; an HTTP panel to the log lines of
//! the same route in Grafana Explore; a logged `request_id` to every line
//! of that request; a latency panel's exemplars, and a logged `trace_id`,
//! to the trace in Tempo; a trace to its log lines and to the service's
//! request metrics. Built from the manifest alone, so they point at what
//! `render` really writes (panel ids, the labels the shipper sets).

use crate::manifest::{Manifest, Panel};
use crate::model::contrib::Role;
use crate::model::{promql, Model};
use serde_json::{json, Value as Json};

/// Grafana's address as alert links name it (`stack.grafana_url`, else
/// the published Grafana port on localhost), without a trailing `/`.
pub fn grafana_url(m: &Manifest) -> String {
    match &m.stack.grafana_url {
        Some(u) => u.as_str().trim_end_matches('/').to_string(),
        None => format!("http://localhost:{}", m.stack.grafana.port),
    }
}

/// `<grafana>/d/<uid>`.
pub fn dashboard_url(m: &Manifest) -> String {
    format!("{}/d/{}", grafana_url(m), m.dashboard.uid)
}

/// The link that opens panel `id` alone.
pub fn panel_url(m: &Manifest, id: u32) -> String {
    format!("{}?viewPanel={id}", dashboard_url(m))
}

/// 32-bit FNV-1a: a panel id that depends on its title only.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Each panel's id, derived from its title (titles are unique), so that
/// adding, removing or moving a panel keeps the others' ids and the alert
/// links to them. Ids are 1-9999; a clash takes the next free id.
pub fn panel_ids(panels: &[Panel]) -> Vec<u32> {
    let mut taken = std::collections::HashSet::new();
    panels
        .iter()
        .map(|p| {
            let mut id = fnv1a(&p.title) % 9999 + 1;
            while !taken.insert(id) {
                id = id % 9999 + 1;
            }
            id
        })
        .collect()
}

/// A histogram's series names (`_bucket`, `_sum`, `_count`) as its family name.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// The first Prometheus panel that queries one of `metrics` (family
/// names), preferring one whose queries name the label `prefer` (an error
/// alert opens the panel split by `status`): its index. `title` picks the
/// panel by title instead.
pub fn panel_for(
    m: &Manifest,
    metrics: &[&str],
    prefer: Option<&str>,
    title: Option<&str>,
) -> Option<usize> {
    let panels = &m.dashboard.panels;
    if let Some(t) = title {
        return panels.iter().position(|p| p.title == t);
    }
    let shows = |p: &Panel| {
        p.datasource == "prometheus"
            && p.targets.iter().any(|t| {
                promql::selectors(&t.expr)
                    .iter()
                    .any(|s| metrics.contains(&family(&s.metric)))
            })
    };
    let preferred = prefer.and_then(|label| {
        panels
            .iter()
            .position(|p| shows(p) && p.targets.iter().any(|t| t.expr.contains(label)))
    });
    preferred.or_else(|| panels.iter().position(shows))
}

/// The metric families an expression selects.
pub fn families(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in promql::selectors(expr) {
        let f = family(&s.metric).to_string();
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// The stream selector of the service's request lines, from the labels the
/// shipper really sets (`logging.labels`).
pub fn request_stream(m: &Manifest) -> String {
    let labels = &m.logging.labels;
    if labels.iter().any(|l| l == "logger") {
        r#"{logger="telltale::http"}"#.to_string()
    } else if let Some(l) = labels.first() {
        format!("{{{l}=~\".+\"}}")
    } else {
        r#"{job=~".+"}"#.to_string()
    }
}

/// Request-line fields a panel's series can be matched on: the field of
/// the log line, and the metric label with the same value.
const MATCHED: [(&str, &str); 3] = [
    ("route", "path"),
    ("method", "method"),
    ("status", "status"),
];

/// The labels an expression's aggregations keep (`sum by (path, status)`).
fn by_labels(expr: &str) -> Vec<String> {
    promql::analyze(expr).map(|a| a.by).unwrap_or_default()
}

/// A data link from an HTTP panel (one whose queries use a metric the
/// request middleware feeds: [`Role::is_http`]) to Grafana Explore: the
/// Loki query for the request lines of the series clicked (its route, and
/// its method and status when the panel keeps them), over the panel's
/// time range.
pub fn logs_link(model: &Model, p: &Panel) -> Option<Json> {
    let m = &model.manifest;
    if p.datasource != "prometheus" {
        return None;
    }
    let http: Vec<&str> = (m.metrics.iter().zip(&model.sources))
        .filter(|(_, s)| s.roles().iter().any(|r| r.is_http()))
        .map(|(x, _)| x.name.as_str())
        .collect();
    let exprs: Vec<&str> = p.targets.iter().map(|t| t.expr.as_str()).collect();
    if !exprs
        .iter()
        .any(|e| families(e).iter().any(|f| http.contains(&f.as_str())))
    {
        return None;
    }
    let kept: Vec<String> = exprs.iter().flat_map(|e| by_labels(e)).collect();
    let fields = &m.logging.fields;
    let mut query = format!("{} | json", request_stream(m));
    for (field, label) in MATCHED {
        // The route template is logged as `route`; without it, `path` (the
        // raw path: the same for routes without parameters).
        let field = if field == "route" && !fields.iter().any(|f| f == "route") {
            "path"
        } else {
            field
        };
        if kept.iter().any(|k| k == label) && fields.iter().any(|f| f == field) {
            query.push_str(&format!(" | {field}=\"${{__field.labels.{label}}}\""));
        }
    }
    let pane = json!({
        "a": {
            "datasource": m.stack.datasources.loki,
            "queries": [{
                "refId": "A",
                "datasource": {"type": "loki", "uid": m.stack.datasources.loki},
                "expr": query,
            }],
            "range": {"from": "${__from}", "to": "${__to}"},
        }
    });
    Some(json!({
        "title": "Request logs",
        "url": format!("/explore?schemaVersion=1&panes={pane}"),
    }))
}

/// A stream selector matching every line of the service (any logger).
fn any_stream(m: &Manifest) -> String {
    match m.logging.labels.first() {
        Some(l) => format!("{{{l}=~\".+\"}}"),
        None => r#"{job=~".+"}"#.to_string(),
    }
}

/// The Loki datasource's derived field: a `request_id` in a line links to
/// every line of that request.
pub fn request_id_field(m: &Manifest) -> Json {
    json!({
        "name": "request_id",
        "matcherRegex": "\"request_id\":\"([^\"]+)\"",
        "datasourceUid": m.stack.datasources.loki,
        "url": format!("{} |= \"${{__value.raw}}\"", any_stream(m)),
        "urlDisplayLabel": "Every line of this request",
    })
}

/// The exemplar label that holds the trace id (what the server's
/// OpenMetrics exemplars carry, and Grafana's Prometheus datasource reads).
pub const EXEMPLAR_TRACE_ID: &str = "trace_id";
/// The structured-metadata key of a log line's trace id (see
/// [`crate::manifest::LOKI_METADATA_FIELDS`]).
pub const LOG_TRACE_ID: &str = "trace_id";

/// The request-duration histograms ([`Role::RequestDuration`]).
fn duration_histograms(model: &Model) -> Vec<&str> {
    model
        .metrics_with(Role::RequestDuration)
        .map(|x| x.name.as_str())
        .collect()
}

/// Whether a Prometheus query shows exemplars: it selects the buckets
/// (`<name>_bucket`) of a request-duration histogram, whose exemplars are
/// the traces of sampled requests.
pub fn shows_exemplars(model: &Model, p: &Panel, expr: &str) -> bool {
    let histograms = duration_histograms(model);
    p.datasource == "prometheus"
        && p.kind == "timeseries"
        && promql::selectors(expr).iter().any(|s| {
            s.metric
                .strip_suffix("_bucket")
                .is_some_and(|f| histograms.contains(&f))
        })
}

/// The Prometheus datasource's exemplar link: the exemplar's `trace_id`
/// opens the trace in Tempo.
pub fn exemplar_destinations(m: &Manifest) -> Json {
    json!([{ "name": EXEMPLAR_TRACE_ID, "datasourceUid": m.stack.datasources.tempo }])
}

/// The Loki datasource's derived field: a line's `trace_id` (structured
/// metadata, so matched as a label) opens the trace in Tempo.
pub fn trace_id_field(m: &Manifest) -> Json {
    json!({
        "name": LOG_TRACE_ID,
        "matcherType": "label",
        "matcherRegex": LOG_TRACE_ID,
        "datasourceUid": m.stack.datasources.tempo,
        "url": "${__value.raw}",
        "urlDisplayLabel": "Trace",
    })
}

/// The Tempo datasource's link from a span to its log lines: the service's
/// lines (Loki's `service_name`, which every shipper sets) whose
/// `trace_id` is the trace's, a minute either side of the span.
pub fn traces_to_logs(m: &Manifest) -> Json {
    let query = format!(
        "{{service_name={}}} | {LOG_TRACE_ID}=\"${{__trace.traceId}}\"",
        crate::render::escape::promql_string(&m.service.name)
    );
    json!({
        "datasourceUid": m.stack.datasources.loki,
        "spanStartTimeShift": "-1m",
        "spanEndTimeShift": "1m",
        "filterByTraceID": false,
        "filterBySpanID": false,
        "customQuery": true,
        "query": query,
    })
}

/// The Tempo datasource's link from a span to the service's request
/// metrics: the request rate and p95 latency of the span's route, from the
/// manifest's request counter and request-duration histogram (the span's
/// `http.route` is their `path` label, its service their `job`).
pub fn traces_to_metrics(model: &Model) -> Json {
    let m = &model.manifest;
    let mut queries = Vec::new();
    let window = "5m";
    if let Some(c) = model.metrics_with(Role::RequestCounter).next() {
        queries.push(json!({
            "name": "Request rate",
            "query": format!("sum by (path) (rate({}{{$__tags}}[{window}]))", c.name),
        }));
    }
    if let Some(h) = duration_histograms(model).first() {
        queries.push(json!({
            "name": "p95 latency",
            "query": format!(
                "histogram_quantile(0.95, sum by (le, path) (rate({h}_bucket{{$__tags}}[{window}])))"
            ),
        }));
    }
    json!({
        "datasourceUid": m.stack.datasources.prometheus,
        "spanStartTimeShift": "-15m",
        "spanEndTimeShift": "15m",
        "tags": [
            { "key": "service.name", "value": "job" },
            { "key": "http.route", "value": "path" },
        ],
        "queries": queries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_labels_are_read_from_aggregations() {
        assert_eq!(
            by_labels("sum by (path, status) (rate(x[1m])) / sum by(path) (y)"),
            ["path", "status", "path"]
        );
        assert!(by_labels("sum(rate(bytes_total[1m]))").is_empty());
    }

    #[test]
    fn only_timeseries_of_the_duration_buckets_show_exemplars() {
        let m = crate::model::validate(
            crate::manifest::load_embedded().unwrap(),
            &crate::plugins::KindRegistry::builtin(),
        )
        .unwrap();
        let panel = |kind: &str| -> Panel {
            serde_yaml::from_str(&format!(
                "{{title: t, type: {kind}, datasource: prometheus, targets: [{{expr: x}}]}}"
            ))
            .unwrap()
        };
        let h = m
            .metrics_with(Role::RequestDuration)
            .next()
            .unwrap()
            .name
            .clone();
        let p95 = format!("histogram_quantile(0.95, sum by (le) (rate({h}_bucket[5m])))");
        assert!(shows_exemplars(&m, &panel("timeseries"), &p95));
        assert!(!shows_exemplars(&m, &panel("stat"), &p95));
        let count = format!("sum(rate({h}_count[5m]))");
        assert!(!shows_exemplars(&m, &panel("timeseries"), &count));
        assert!(!shows_exemplars(
            &m,
            &panel("timeseries"),
            "rate(other_bucket[5m])"
        ));
    }

    #[test]
    fn panel_ids_depend_on_titles_only() {
        let panel = |t: &str| -> Panel {
            serde_yaml::from_str(&format!(
                "{{title: {t}, type: stat, datasource: prometheus, targets: [{{expr: x}}]}}"
            ))
            .unwrap()
        };
        let a = panel_ids(&[panel("A"), panel("B"), panel("C")]);
        let b = panel_ids(&[panel("C"), panel("New"), panel("A")]);
        assert_eq!((a[0], a[2]), (b[2], b[0]), "A and C keep their ids");
        assert!(a.iter().all(|id| (1..=9999).contains(id)));
    }
}
