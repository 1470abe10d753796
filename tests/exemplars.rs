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

/// Tracing on (the exporter's endpoint need not answer for spans to exist).
pub fn traced(manifest: &std::path::Path) {
    let text = std::fs::read_to_string(manifest).unwrap();
    std::fs::write(
        manifest,
        format!("{text}\ntracing:\n  endpoint: http://127.0.0.1:9\n"),
    )
    .unwrap();
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_sampled_requests_as_exemplars() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    traced(&base);
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
    let unsampled = "0000000000000000000000000000beef";
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
            .header("traceparent", format!("00-{unsampled}-00000000000000bb-00"))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut counted, mut timed);
    loop {
        counted = exemplar_traces(&prom, r#"http_requests_total{path=~"/products|/users"}"#).await;
        timed = exemplar_traces(
            &prom,
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
    assert!(!counted.contains(unsampled) && !timed.contains(unsampled));
    // What Prometheus stores is the series it stored from the text format.
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
