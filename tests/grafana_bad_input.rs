//! The Grafana JSON datasource over real HTTP: every kind of bad input
//! (which must never be a 500 or hurt the server), and datasource mistakes
//! in the manifest.
mod common;
use common::grafana::*;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;

/// Sends only the head of a POST announcing `len` body bytes; returns the status line.
fn announced_post(port: u16, path: &str, len: u64) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().unwrap_or("").to_string()
}

/// Sends a chunked POST without Content-Length, bigger than `limit`; returns the status line.
fn chunked_post(port: u16, path: &str, limit: u64) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let path = path.to_string();
    let writer = std::thread::spawn(move || {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        w.write_all(head.as_bytes())?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0u64;
        while sent <= limit + 128 * 1024 {
            w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            w.write_all(&chunk)?;
            w.write_all(b"\r\n")?;
            sent += chunk.len() as u64;
        }
        w.write_all(b"0\r\n\r\n")
    });
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let _ = writer.join();
    let text = String::from_utf8_lossy(&buf).to_string();
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_field_and_never_hurts_the_server() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "5s", None);
    let m = model(&path);
    let limit = m.manifest.service.body_limit_bytes;
    let api = Api::start(&path, dir.path());

    let cases = bad_bodies();
    for (route, body, status, field) in &cases {
        let (s, v) = api.post_raw(route, body.clone()).await;
        assert_eq!(s, *status, "{route} {body}: {v}");
        assert_eq!(v["status"], json!(status), "{v}");
        assert_eq!(v["field"], json!(field), "{route} {body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }

    oversized_bodies_are_413s_and_the_limit_itself_is_fine(&api, limit).await;

    extremes_are_answered_and_one_past_them_is_a_400(&api).await;

    wrong_methods_are_405s(&api).await;

    // Still healthy, still answering, and nothing above was a 5xx.
    assert_eq!(api.get("/health").await.0, 200);
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": "cpu_percent"}]}),
        )
        .await;
    assert_eq!(v[0]["target"], "cpu_percent");
    let text = api.metrics().await;
    let five_xx: f64 = parse_metrics(&text)
        .iter()
        .filter(|(s, _)| s.starts_with("http_requests_total{") && s.contains("status=\"5"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(five_xx, 0.0, "a bad request produced a 5xx:\n{text}");
    let four_xx = metric_sum(
        &text,
        "http_requests_total",
        &["path=\"/grafana/query\"", "status=\"400\""],
    );
    let expected_400 = cases
        .iter()
        .filter(|c| c.0 == "/grafana/query" && c.2 == 400)
        .count() as f64
        + 1.0; // maxDataPoints one past its maximum
    assert_eq!(four_xx, expected_400);
    assert!(api.srv.stop().success());
}

/// Bad bodies: (route, body, expected status, expected field).
fn bad_bodies() -> Vec<(&'static str, String, u16, &'static str)> {
    vec![
        ("/grafana/query", "{\"targets\": [".into(), 400, "targets"),
        ("/grafana/query", "{\"targets\": [}".into(), 400, "targets[0]"),
        ("/grafana/query", "not json".into(), 400, "body"),
        ("/grafana/query", "{}".into(), 400, "targets"),
        ("/grafana/query", r#"{"targets": {"target": "x"}}"#.into(), 400, "targets"),
        ("/grafana/query", r#"{"targets": [{"target": "cpu_percent", "refId": 7}]}"#.into(), 400, "targets[0].refId"),
        ("/grafana/query", r#"{"targets": [{"target": "cpu_percent"}, {"target": "nope"}]}"#.into(), 400, "targets[1].target"),
        ("/grafana/query", r#"{"targets": [{"target": "cpu_percent", "type": "graph"}]}"#.into(), 400, "targets[0].type"),
        ("/grafana/query", r#"{"range": {"from": "yesterday", "to": "now"}, "targets": []}"#.into(), 400, "range.from"),
        ("/grafana/query", r#"{"range": {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "targets": []}"#.into(), 400, "range"),
        ("/grafana/query", r#"{"maxDataPoints": 0, "targets": []}"#.into(), 400, "maxDataPoints"),
        ("/grafana/query", r#"{"maxDataPoints": -5, "targets": []}"#.into(), 400, "maxDataPoints"),
        ("/grafana/query", r#"{"targets": [{"target": "cpu_percent", "payload": {"x": 1}}]}"#.into(), 400, "targets[0].payload.x"),
        ("/grafana/query", r#"{"targets": [{"target": "low_stock_products", "payload": {"columns": ["nope"]}}]}"#.into(), 400, "targets[0].payload.columns[0]"),
        ("/grafana/query", r#"{"targets": [{"target": "low_stock_products", "payload": "{oops"}]}"#.into(), 400, "targets[0].payload"),
        ("/grafana/query", r#"{"filters": [{"key": "color", "operator": "=", "value": "red"}], "targets": []}"#.into(), 400, "filters[0].key"),
        ("/grafana/query", r#"{"adhocFilters": [{"key": "stock", "operator": "=~", "value": ".*"}], "targets": []}"#.into(), 400, "adhocFilters[0].operator"),
        ("/grafana/query", r#"{"filters": [{"key": "stock"}], "targets": []}"#.into(), 400, "filters[0].operator"),
        ("/grafana/search", r#"{"target": 5}"#.into(), 400, "target"),
        ("/grafana/metrics", r#"{"metric": []}"#.into(), 400, "metric"),
        ("/grafana/metric-payload-options", r#"{"metric": "nope", "name": "columns"}"#.into(), 400, "metric"),
        ("/grafana/metric-payload-options", r#"{"metric": "cpu_percent", "name": "columns"}"#.into(), 400, "metric"),
        ("/grafana/metric-payload-options", r#"{"metric": "cpu_percent"}"#.into(), 400, "name"),
        ("/grafana/annotations", r#"{"annotation": {"query": "nope"}}"#.into(), 400, "annotation.query"),
        ("/grafana/annotations", r#"{"annotation": {"query": 3}}"#.into(), 400, "annotation.query"),
        ("/grafana/annotations", r#"{"annotation": {"query": "cpu_percent"}}"#.into(), 400, "annotation.query"),
        ("/grafana/variable", r#"{"payload": {"target": "nope"}}"#.into(), 400, "payload.target"),
        ("/grafana/variable", r#"{"payload": {"target": 1}}"#.into(), 400, "payload.target"),
        ("/grafana/variable", r#"{"payload": {"target": "low_stock_products.nope"}}"#.into(), 400, "payload.target"),
        ("/grafana/tag-values", r#"{"key": "nope"}"#.into(), 400, "key"),
        ("/grafana/tag-values", "{}".into(), 400, "key"),
        ("/grafana/tag-keys", r#"{"a": "#.into(), 400, "a"),
    ]
}

/// Too large: with a Content-Length, rejected before any of the body is
/// sent, and chunked, without one (rejected while reading); exactly at the
/// limit is fine.
async fn oversized_bodies_are_413s_and_the_limit_itself_is_fine(api: &Api, limit: u64) {
    // Too large: with a Content-Length, rejected before any of the body is sent ...
    let status = announced_post(api.srv.port, "/grafana/query", limit + 1);
    assert!(
        status.starts_with("HTTP/1.1 413"),
        "announced oversized body: {status:?}"
    );
    // ... and chunked, without one (rejected while reading).
    let status = chunked_post(api.srv.port, "/grafana/query", limit);
    assert!(
        status.starts_with("HTTP/1.1 413"),
        "chunked oversized body: {status:?}"
    );
    // Exactly at the limit is fine (valid JSON padded with spaces).
    let body = r#"{"targets": []}"#;
    let padded = format!("{body}{}", " ".repeat(limit as usize - body.len()));
    let (s, v) = api.post_raw("/grafana/query", padded).await;
    assert_eq!((s, v), (200, json!([])));
}

/// The documented extremes (2^53 - 1, exact in JSON) are answered, not
/// overflowed; one past them is a 400 naming the field.
async fn extremes_are_answered_and_one_past_them_is_a_400(api: &Api) {
    // The documented extremes (2^53 - 1, exact in JSON) are answered, not
    // overflowed; one past them is a 400 naming the field.
    let max = (1i64 << 53) - 1;
    let v = api
        .ok(
            "/grafana/query",
            json!({"intervalMs": max, "maxDataPoints": max,
                   "range": {"from": -max, "to": max},
                   "targets": [{"target": "cpu_percent"}]}),
        )
        .await;
    assert_eq!(v[0]["target"], "cpu_percent");
    let (s, v) = api
        .post(
            "/grafana/query",
            json!({"maxDataPoints": u64::MAX, "targets": []}),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (400, Some("maxDataPoints")),
        "{v}"
    );
}

/// Wrong methods are 405s.
async fn wrong_methods_are_405s(api: &Api) {
    // Wrong methods are 405s.
    let r = api
        .http
        .get(api.srv.url("/grafana/query"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = api
        .http
        .post(api.srv.url("/grafana/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[test]
fn datasource_mistakes_in_the_manifest_are_located_errors() {
    let dir = tempdir();
    let path = copy_default_manifest(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let swaps = [
        // (from, to, expected field path, expected words)
        (
            "stat: error_rate",
            "stat: quantile",
            "datasource.targets[1].stat",
            "histogram",
        ),
        (
            "metric: system_cpu_usage_percent\n      stat: value",
            "metric: system_cpu_usage\n      stat: value",
            "datasource.targets[3].metric",
            "not a declared metric",
        ),
        (
            "columns: [id, name, category, stock, price]",
            "columns: [id, colour]",
            "datasource.targets[6].columns[1]",
            "colour",
        ),
        (
            "events: [startup, error_burst, low_stock]",
            "events: [startup, eruption]",
            "datasource.targets[7].events[1]",
            "unknown variant",
        ),
        (
            "- expr: low_stock_products",
            "- expr: low_stock_product",
            ".targets[0].expr",
            "undeclared target",
        ),
        (
            "sample_interval: 5s",
            "sample_interval: 5 parsecs",
            "datasource.sample_interval",
            "bad duration",
        ),
        (
            "retention: 720 ",
            "retention: 0 ",
            "datasource.retention",
            "from 1",
        ),
        (
            "options: { op: tag_values }",
            "options: { op: tag_vals }",
            "endpoints[",
            "unknown variant",
        ),
    ];
    for (from, to, field, words) in swaps {
        assert!(text.contains(from), "manifest no longer contains {from:?}");
        let bad = text.replacen(from, to, 1);
        let at_line = text[..text.find(from).unwrap()].lines().count();
        std::fs::write(&path, &bad).unwrap();
        let (st, _out, err) = run(
            &["validate", "--manifest", path.to_str().unwrap()],
            dir.path(),
        );
        assert!(!st.success(), "{to:?} was accepted");
        let line = err
            .lines()
            .find(|l| l.contains(field) && l.contains(words))
            .unwrap_or_else(|| panic!("{to:?}: no error at {field} mentioning {words:?}:\n{err}"));
        // file:line:col points at the edited line.
        let lineno: usize = line.split(':').nth(1).unwrap().parse().unwrap();
        assert_eq!(lineno, at_line, "{line}");
    }
}
