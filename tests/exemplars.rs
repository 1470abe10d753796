//! Exemplars end to end: a real Prometheus (Debian's, with
//! `--enable-feature=exemplar-storage`) scrapes the real server, which it
//! asks for OpenMetrics as it does by default; after requests sent with
//! known sampled `traceparent`s, `/api/v1/query_exemplars` returns those
//! trace ids on the request counter and the latency buckets, and never an
//! unsampled one.

mod common;
mod render_support;
use common::prom::*;
use common::*;
use render_support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn trace(i: usize) -> String {
    format!("{:032x}", 0xe8e3_0000_0000u64 + i as u64)
}

/// Trace ids of every exemplar `query` has over the last 10 minutes.
async fn exemplar_traces(prom: &Prometheus, query: &str) -> BTreeSet<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 600).to_string(), (now + 60).to_string());
    let v = prom
        .api(
            "/api/v1/query_exemplars",
            &[("query", query), ("start", &start), ("end", &end)],
        )
        .await;
    assert_eq!(v["status"], "success", "{v}");
    let mut out = BTreeSet::new();
    for series in v["data"].as_array().unwrap() {
        for e in series["exemplars"].as_array().unwrap() {
            out.insert(e["labels"]["trace_id"].as_str().unwrap().to_string());
        }
    }
    out
}
const UNSAMPLED: &str = "0000000000000000000000000000beef";

/// Eight requests sampled by their caller, each followed by an unsampled
/// one. Returns the sampled traces.
async fn sampled_and_unsampled_requests(c: &reqwest::Client, srv: &Server) -> BTreeSet<String> {
    let mut sent = BTreeSet::new();
    for i in 0..8 {
        let t = trace(i);
        c.get(srv.url(["/products", "/users"][i % 2]))
            .header("traceparent", format!("00-{t}-{:016x}-01", i + 1))
            .send()
            .await
            .unwrap();
        sent.insert(t);
        c.get(srv.url("/products"))
            .header("traceparent", format!("00-{UNSAMPLED}-00000000000000bb-00"))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    sent
}

/// The exemplars' traces on the request counter and on the latency
/// buckets, once each has two (at most 60 s); each is a sampled request's,
/// never the unsampled one. Returns them (counter, buckets).
async fn stored_exemplars_are_sampled_traces(
    prom: &Prometheus,
    sent: &BTreeSet<String>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut counted, mut timed);
    loop {
        counted = exemplar_traces(prom, r#"http_requests_total{path=~"/products|/users"}"#).await;
        timed = exemplar_traces(
            prom,
            r#"http_request_duration_seconds_bucket{path=~"/products|/users"}"#,
        )
        .await;
        if (counted.len() >= 2 && timed.len() >= 2) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = || std::fs::read_to_string(&prom.log).unwrap_or_default();
    assert!(
        counted.len() >= 2,
        "counter exemplars: {counted:?}\n{}",
        log()
    );
    assert!(timed.len() >= 2, "bucket exemplars: {timed:?}\n{}", log());
    for t in counted.iter().chain(&timed) {
        assert!(sent.contains(t), "{t} is not a sampled request's trace");
    }
    assert!(!counted.contains(UNSAMPLED) && !timed.contains(UNSAMPLED));
    (counted, timed)
}

/// What Prometheus stores is the series it stored from the text format.
async fn the_stored_series_are_the_text_formats(prom: &Prometheus) {
    let series = prom
        .query(r#"http_request_duration_seconds_bucket{path="/products",le="+Inf"}"#)
        .await
        .unwrap();
    assert!(!series.is_empty());
    let stored: Value = prom.api("/api/v1/label/le/values", &[]).await;
    let les: Vec<&str> = stored["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(les.contains(&"1") && les.contains(&"0.005"), "{les:?}");
}

/// Metric → exemplar → trace: each exemplar's trace is one the receiver
/// got, its server span a child of the caller's span, following the HTTP
/// conventions.
async fn each_exemplars_trace_reached_the_receiver<'a>(
    receiver: &common::otlp::Otlp,
    srv: &Server,
    exemplars: impl Iterator<Item = &'a String>,
) {
    let wait = Duration::from_secs(15);
    for t in exemplars {
        let i = (0..8).find(|i| trace(*i) == *t).unwrap();
        let span = receiver
            .wait_for(wait, |r| r.trace_id() == *t && r.span.kind == 2)
            .await
            .unwrap_or_else(|| panic!("no span of trace {t}; stderr:\n{}", srv.stderr()));
        assert_eq!(span.parent_id(), format!("{:016x}", i + 1));
        let route = ["/products", "/users"][i % 2];
        assert_eq!(span.span.name, format!("GET {route}"));
        assert_eq!(span.attr("http.route").as_deref(), Some(route));
        assert_eq!(span.attr("http.request.method").as_deref(), Some("GET"));
        assert_eq!(
            span.attr("http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(span.attr("url.path").as_deref(), Some(route));
        assert_eq!(
            span.resource("service.name").as_deref(),
            Some("ecommerce-api")
        );
    }
}

/// The issue's end-to-end path: Prometheus (exemplar storage) scrapes the
/// real server in OpenMetrics; an OTLP receiver that decodes with the
/// OpenTelemetry protobuf definitions gets the spans. Every exemplar's
/// trace is a trace the receiver got, whose server span has the incoming
/// span as parent and follows the HTTP conventions, and whose request's log
/// line carries the same ids; a request refused before routing has a span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_sampled_requests_as_exemplars() {
    let receiver = common::otlp::Otlp::start().await;
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    common::export_to(&base, &receiver.base);
    let srv = Server::start(&base, dir.path());
    let (_, out) = render_for_test_server(&base, dir.path(), srv.port);
    let prom = Prometheus::start_with(
        &out.join("prometheus/prometheus.yml"),
        dir.path(),
        &["--enable-feature=exemplar-storage"],
    )
    .await;
    wait_for_scrape(&prom).await;

    let c = reqwest::Client::new();
    let sent = sampled_and_unsampled_requests(&c, &srv).await;
    let (counted, timed) = stored_exemplars_are_sampled_traces(&prom, &sent).await;
    the_stored_series_are_the_text_formats(&prom).await;

    let refused = trace(99);
    c.get(srv.url("/no/such/route"))
        .header("traceparent", format!("00-{refused}-00000000000000cc-01"))
        .send()
        .await
        .unwrap();
    each_exemplars_trace_reached_the_receiver(&receiver, &srv, counted.iter().chain(&timed)).await;
    let wait = Duration::from_secs(15);
    assert!(receiver
        .wait_for(wait, |r| r.trace_id() == refused)
        .await
        .is_some());
    assert!(receiver.spans().iter().all(|r| r.trace_id() != UNSAMPLED));
    assert!(srv.stop().success());
    // Trace → logs: the request lines carry the same trace ids.
    let lines = log_lines(dir.path());
    for t in counted.iter().chain(&timed).chain([&refused]) {
        assert!(
            lines
                .iter()
                .any(|l| l["trace_id"] == t.as_str() && l["logger"] == "telltale::http"),
            "no request line with trace_id {t}"
        );
    }
}
