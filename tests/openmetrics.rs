//! `/metrics` in OpenMetrics 1.0, checked by the official Python client's
//! parser (`prometheus_client.openmetrics.parser`, installed in `.venv` by
//! scripts/install-test-deps): every family type the `prometheus` crate
//! gathers, with exemplars; the demo server's answer to Prometheus's
//! `Accept`, whose exemplars are the sampled requests' server spans and
//! whose series are the ones the text format gives; and the text format,
//! unchanged, for a scraper that does not ask.

mod common;
use common::*;
use prometheus::core::Collector;
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary, Untyped};
use serde_json::Value;
use std::collections::BTreeSet;
use telltale::internals::model::exemplars::{Exemplar, ExemplarIndex, Ids, SeriesExemplars};
use telltale::internals::server::openmetrics;

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

/// A summary and an untyped family, which the crate gathers from a
/// collector of one's own (it has no types for them).
fn hand_made() -> Vec<MetricFamily> {
    let q = |at: f64, v: f64| {
        let mut q = Quantile::default();
        q.set_quantile(at);
        q.set_value(v);
        q
    };
    let mut s = Summary::default();
    s.set_sample_count(4);
    s.set_sample_sum(2.5);
    s.set_quantile(vec![q(0.5, 0.5), q(0.99, 1.25)]);
    let mut m = Metric::default();
    m.set_label(vec![label("queue", "a \"b\"")]);
    m.set_summary(s);
    let mut summary = MetricFamily::default();
    summary.set_name("rpc_seconds".into());
    summary.set_help("RPC latency".into());
    summary.set_field_type(MetricType::SUMMARY);
    summary.set_metric(vec![m]);

    let mut u = Untyped::default();
    u.set_value(7.0);
    let m = Metric {
        untyped: Some(u).into(),
        ..Default::default()
    };
    let mut untyped = MetricFamily::default();
    untyped.set_name("legacy_value".into());
    untyped.set_help("".into());
    untyped.set_field_type(MetricType::UNTYPED);
    untyped.set_metric(vec![m]);
    vec![summary, untyped]
}

fn family<'a>(families: &'a Value, name: &str) -> &'a Value {
    families
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name} in {families:#}"))
}

/// Every family type the crate gathers, plus a summary and an untyped one,
/// sorted by name.
fn families_of_every_type() -> Vec<MetricFamily> {
    let requests = prometheus::IntCounterVec::new(
        prometheus::Opts::new("orders_total", "Orders, by \"kind\"\nand \\ path"),
        &["kind"],
    )
    .unwrap();
    requests.with_label_values(&["a\\b\"c\nd"]).inc_by(2);
    requests.with_label_values(&["plain"]).inc();
    let bare = prometheus::Counter::new("bare_events", "A counter without _total").unwrap();
    bare.inc_by(3.0);
    let gauge = prometheus::Gauge::new("queue_depth", "Depth").unwrap();
    gauge.set(-4.5);
    let hist = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("latency_seconds", "Latency").buckets(vec![0.1, 1.0]),
        &["route"],
    )
    .unwrap();
    hist.with_label_values(&["/x"]).observe(0.05);
    hist.with_label_values(&["/x"]).observe(0.5);
    hist.with_label_values(&["/x"]).observe(30.0);
    let signed = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("drift", "Signed drift").buckets(vec![-1.0, 0.0, 1.0]),
    )
    .unwrap();
    signed.observe(-0.5);
    let collectors: [&dyn Collector; 5] = [&requests, &bare, &gauge, &hist, &signed];
    let mut families: Vec<MetricFamily> = collectors.iter().flat_map(|c| c.collect()).collect();
    families.extend(hand_made());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    families
}

/// An exemplar on one counter series and on two buckets of a histogram.
fn exemplar_index() -> ExemplarIndex {
    let trace = |n: u8| Ids {
        trace_id: [n; 16],
        span_id: [n + 1; 8],
    };
    let e = |n: u8, value: f64| Exemplar {
        ids: trace(n),
        value,
        at_ms: 1_765_000_000_123,
    };
    let mut index = ExemplarIndex::default();
    index.add(
        "orders_total",
        &[("kind", "a\\b\"c\nd")],
        SeriesExemplars {
            total: Some(e(0xa1, 2.0)),
            buckets: vec![],
        },
    );
    index.add(
        "latency_seconds",
        &[("route", "/x")],
        SeriesExemplars {
            total: None,
            buckets: vec![(1.0, e(0xb2, 0.5)), (f64::INFINITY, e(0xc3, 30.0))],
        },
    );
    index
}

/// The families of every type, encoded with their exemplars: the families,
/// the OpenMetrics text, and what the official parser made of it.
fn encoded() -> (Vec<MetricFamily>, String, Value) {
    let families = families_of_every_type();
    let text = openmetrics::encode(&families, &exemplar_index());
    assert!(text.ends_with("# EOF\n"), "{text}");
    let om = python_parse(&text, true);
    (families, text, om)
}

#[test]
fn every_family_type_with_exemplars_parses_as_openmetrics() {
    let (_, text, om) = encoded();
    let types: BTreeSet<(String, String)> = om
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("bare_events", "unknown"),
        ("drift_bucket", "unknown"),
        ("drift_count", "unknown"),
        ("drift_sum", "unknown"),
        ("latency_seconds", "histogram"),
        ("legacy_value", "unknown"),
        ("orders", "counter"),
        ("queue_depth", "gauge"),
        ("rpc_seconds", "summary"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(types, want, "{text}");
    let kinds: Vec<&Value> = family(&om, "orders")["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["labels"]["kind"])
        .collect();
    assert!(
        kinds.iter().any(|k| *k == "a\\b\"c\nd"),
        "label values round-trip through the escapes: {kinds:?}"
    );
    assert_eq!(
        family(&om, "orders")["samples"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn openmetrics_gives_the_series_the_text_format_gives() {
    let (families, _, om) = encoded();
    // The series are the ones the text format gives (what Prometheus stores).
    let mut text_families = families.clone();
    text_families.retain(|f| f.get_field_type() != MetricType::UNTYPED);
    let plain = prometheus::TextEncoder::new()
        .encode_to_string(&text_families)
        .unwrap();
    let mut from_text = text_series(&plain);
    from_text.insert("legacy_value{}".into());
    assert!(from_text.contains("bare_events{}"), "{from_text:?}");
    assert_eq!(series_names(&om), from_text);
}

#[test]
fn exemplars_are_where_they_were_recorded_and_only_there() {
    let (_, _, om) = encoded();
    // Exemplars where they were recorded, and only there.
    let with: Vec<(String, Value)> = om
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap().iter())
        .filter(|s| !s["exemplar"].is_null())
        .map(|s| {
            let le = s["labels"]["le"].as_str().unwrap_or("").to_string();
            (
                format!("{}{le}", s["name"].as_str().unwrap()),
                s["exemplar"].clone(),
            )
        })
        .collect();
    let names: Vec<&str> = with.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "latency_seconds_bucket1",
            "latency_seconds_bucket+Inf",
            "orders_total"
        ]
    );
    let (_, first) = &with[0];
    assert_eq!(first["labels"]["trace_id"], "b2".repeat(16));
    assert_eq!(first["labels"]["span_id"], "b3".repeat(8));
    assert_eq!(first["value"], 0.5);
    let ts = first["timestamp"].as_f64().unwrap();
    assert!((ts - 1_765_000_000.123).abs() < 1e-6, "{ts}");
}

fn sampled(i: usize) -> (String, String) {
    (
        format!("{:032x}", 0x5eed_0000 + i),
        format!("{:016x}", 0xfa_0000 + i),
    )
}

const UNSAMPLED: &str = "0000000000000000000000000000dead";

/// Six requests sampled by their caller, then three not sampled.
async fn sampled_then_unsampled_requests(c: &reqwest::Client, srv: &Server) {
    for i in 0..6 {
        let (t, s) = sampled(i);
        let path = ["/products", "/users", "/nope"][i % 3];
        c.get(srv.url(path))
            .header("traceparent", format!("00-{t}-{s}-01"))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..3 {
        c.get(srv.url("/products"))
            .header("traceparent", format!("00-{UNSAMPLED}-00000000000000aa-00"))
            .send()
            .await
            .unwrap();
    }
}

/// `/metrics` with the `Accept` header given: its content type and body.
async fn scrape(c: &reqwest::Client, srv: &Server, accept: Option<&str>) -> (String, String) {
    let mut r = c.get(srv.url("/metrics"));
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    let r = r.send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.text().await.unwrap())
}

/// Without the header: the text format, as before. Returns it.
async fn without_the_header_the_text_format(c: &reqwest::Client, srv: &Server) -> String {
    let (ct, plain) = scrape(c, srv, None).await;
    assert_eq!(ct, "text/plain; version=0.0.4");
    let (ct2, plain2) = scrape(c, srv, Some("text/plain;version=0.0.4")).await;
    assert_eq!(ct2, ct);
    let shape = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.rsplit_once(' ').map_or(l, |(a, _)| a).to_string())
            .collect()
    };
    assert_eq!(shape(&plain), shape(&plain2));
    assert!(
        !plain.contains("# EOF") && !plain.contains(" # {"),
        "{plain}"
    );
    assert!(plain.contains("# TYPE http_requests_total counter\n"));
    assert!(plain.contains("le=\"+Inf\"}"));
    plain
}

/// Exemplars: the sampled requests' server spans, never the unsampled;
/// each in its bucket, recent, and on both request families.
fn exemplars_are_the_sampled_server_spans(om: &Value, om_text: &str) {
    let sampled_ids: BTreeSet<String> = (0..6).map(|i| sampled(i).0).collect();
    let parents: BTreeSet<String> = (0..6).map(|i| sampled(i).1).collect();
    let mut seen = BTreeSet::new();
    for f in ["http_requests", "http_request_duration_seconds"] {
        let mut previous_le = f64::NEG_INFINITY;
        for s in family(om, f)["samples"].as_array().unwrap() {
            let le = s["labels"]["le"]
                .as_str()
                .map(|v| v.parse::<f64>().unwrap());
            let e = &s["exemplar"];
            if !e.is_null() {
                let trace = e["labels"]["trace_id"].as_str().unwrap().to_string();
                let span = e["labels"]["span_id"].as_str().unwrap();
                assert_ne!(trace, UNSAMPLED);
                // `/metrics` itself is requested without a traceparent:
                // a new trace, sampled (`parentbased_always_on`).
                let own = s["labels"]["path"] == "/metrics";
                assert!(
                    own || sampled_ids.contains(&trace),
                    "{trace} was not sampled"
                );
                assert!(
                    span.len() == 16 && !parents.contains(span),
                    "{span}: the server's span"
                );
                let v = e["value"].as_f64().unwrap();
                match le {
                    Some(le) => assert!(v > previous_le && v <= le, "{v} in le={le}: {s}"),
                    None => assert_eq!(v, 1.0, "a request counts 1"),
                }
                let ts = e["timestamp"].as_f64().unwrap();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                assert!(ts <= now && ts > now - 120.0, "{ts}");
                if !own {
                    seen.insert((f, trace));
                }
            }
            if let Some(le) = le {
                previous_le = if le.is_infinite() {
                    f64::NEG_INFINITY
                } else {
                    le
                };
            }
        }
    }
    for f in ["http_requests", "http_request_duration_seconds"] {
        assert!(
            seen.iter().any(|(g, _)| *g == f),
            "no exemplar on {f}:\n{om_text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_server_answers_prometheus_in_openmetrics_with_exemplars() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    common::export_to(&manifest, "http://127.0.0.1:9");
    let srv = Server::start(&manifest, dir.path());
    let c = reqwest::Client::new();
    sampled_then_unsampled_requests(&c, &srv).await;

    let plain = without_the_header_the_text_format(&c, &srv).await;

    let (ct, om_text) = scrape(&c, &srv, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om_text.ends_with("# EOF\n"));
    let om = python_parse(&om_text, true);
    assert_eq!(family(&om, "http_requests")["type"], "counter");
    assert_eq!(
        family(&om, "http_request_duration_seconds")["type"],
        "histogram"
    );
    // The same series as the text format (process_* values move, names do not).
    assert_eq!(series_names(&om), text_series(&plain));
    // And the text format is the format: the official parser reads it.
    python_parse(&plain, false);

    exemplars_are_the_sampled_server_spans(&om, &om_text);
}
