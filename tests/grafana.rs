//! The Grafana JSON datasource over real HTTP: both dialects, every route,
//! and every kind of bad input (which must never be a 500 or hurt the server).

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use telltale::internals::manifest::DatasourceTargetKind;
use telltale::internals::model::Model;

/// The repo manifest with a faster sampler (and optionally a smaller ring).
fn manifest_with(dir: &Path, interval: &str, retention: Option<usize>) -> PathBuf {
    let path = copy_default_manifest(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("  sample_interval: 5s\n"));
    let mut text = text.replace(
        "  sample_interval: 5s\n",
        &format!("  sample_interval: {interval}\n"),
    );
    if let Some(r) = retention {
        let at = text.find("  retention: ").unwrap();
        let end = at + text[at..].find('\n').unwrap();
        text.replace_range(at..end, &format!("  retention: {r}"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn model(path: &Path) -> Model {
    telltale::internals::model::open(Some(path), &telltale::KindRegistry::builtin())
        .expect("manifest is valid")
}

fn names_of(m: &Model, kind: Option<DatasourceTargetKind>) -> Vec<String> {
    m.manifest
        .datasource
        .targets
        .iter()
        .filter(|t| kind.is_none_or(|k| t.kind == k))
        .map(|t| t.name.clone())
        .collect()
}

struct Api {
    srv: Server,
    http: reqwest::Client,
}

impl Api {
    fn start(manifest: &Path, dir: &Path) -> Api {
        Api {
            srv: Server::start(manifest, dir),
            http: reqwest::Client::new(),
        }
    }

    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .http
            .post(self.srv.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {text}"));
        (status, v)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, body.clone()).await;
        assert_eq!(s, 200, "POST {path} {body}: {v}");
        v
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.srv.url(path)).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap())
    }

    async fn metrics(&self) -> String {
        self.http
            .get(self.srv.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until `/grafana/health` reports at least `n` samples.
    async fn wait_samples(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, h) = self.get("/grafana/health").await;
            if h["samples"].as_u64().unwrap() >= n {
                return;
            }
            assert!(Instant::now() < deadline, "sampler did not run: {h}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn iso(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn datapoints(v: &Value) -> &Vec<Value> {
    v["datapoints"].as_array().unwrap()
}

#[tokio::test]
async fn health_search_and_metrics_list_the_declared_targets() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "5s", None);
    let m = model(&path);
    let all = names_of(&m, None);
    assert!(
        all.len() >= 3,
        "the demo manifest declares datasource targets"
    );
    let api = Api::start(&path, dir.path());

    for p in ["/grafana", "/grafana/health"] {
        let (s, h) = api.get(p).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(h["status"], "ok");
        assert_eq!(h["targets"], json!(all.len()));
        assert_eq!(h["capacity"], json!(m.manifest.datasource.retention), "{h}");
    }

    // SimpleJSON: /search, a list of names, filtered by the typed text.
    assert_eq!(api.ok("/grafana/search", json!({})).await, json!(all));
    assert_eq!(
        api.ok("/grafana/search", json!({"target": ""})).await,
        json!(all)
    );
    let typed = &all[0][..3];
    let found: Vec<String> =
        serde_json::from_value(api.ok("/grafana/search", json!({"target": typed})).await).unwrap();
    assert!(!found.is_empty() && found.iter().all(|n| n.contains(typed)));
    // An empty body is an empty query.
    let (s, v) = api.post_raw("/grafana/search", "").await;
    assert_eq!((s, v), (200, json!(all)));

    // simpod: /metrics with payload definitions; /metric-payload-options fills them.
    let metrics = api.ok("/grafana/metrics", json!({})).await;
    let values: Vec<&str> = metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, all);
    for t in &m.manifest.datasource.targets {
        let entry = metrics
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["value"] == json!(t.name))
            .unwrap();
        let payloads = entry["payloads"].as_array().unwrap();
        match t.kind {
            DatasourceTargetKind::Series => assert!(payloads.is_empty()),
            DatasourceTargetKind::Table => {
                assert_eq!(payloads[0]["name"], "columns");
                let opts = api
                    .ok(
                        "/grafana/metric-payload-options",
                        json!({"metric": t.name, "name": "columns", "payload": {}}),
                    )
                    .await;
                let cols: Vec<&str> = opts
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["value"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    cols,
                    t.columns.iter().map(String::as_str).collect::<Vec<_>>()
                );
            }
            DatasourceTargetKind::Annotations => {
                assert_eq!(payloads[0]["name"], "events");
                let opts = api
                    .ok(
                        "/grafana/metric-payload-options",
                        json!({"metric": t.name, "name": "events", "payload": {}}),
                    )
                    .await;
                let want = if t.events.is_empty() {
                    telltale::internals::manifest::EventKind::ALL.len()
                } else {
                    t.events.len()
                };
                assert_eq!(opts.as_array().unwrap().len(), want);
            }
        }
    }
    assert!(api.srv.stop().success());
}

#[tokio::test]
async fn series_come_from_the_ring_and_respect_range_and_max_data_points() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "100ms", None);
    let api = Api::start(&path, dir.path());
    api.wait_samples(2).await;
    // Traffic the sampler must see: good requests and 5xx.
    for _ in 0..20 {
        api.http.get(api.srv.url("/products")).send().await.unwrap();
        api.http.get(api.srv.url("/error")).send().await.unwrap();
    }
    let (_, h) = api.get("/grafana/health").await;
    api.wait_samples(h["samples"].as_u64().unwrap() + 3).await;
    let to = now_ms();
    let from = to - 60_000;
    // intervalMs 1: with the sampler's own 100 ms, two samples read less than
    // 100 ms apart (a tick delayed by a loaded machine) would share a bucket.
    let q = |target: &str, max: u64| {
        json!({
            "range": {"from": iso(from), "to": iso(to), "raw": {"from": "now-1m", "to": "now"}},
            "interval": "1ms", "intervalMs": 1, "maxDataPoints": max,
            "targets": [{"target": target, "refId": "A"}]
        })
    };
    let all = api.ok("/grafana/query", q("request_rate", 100_000)).await;
    let pts = datapoints(&all[0]);
    assert_eq!(all[0]["target"], "request_rate");
    assert_eq!(all[0]["refId"], "A");
    assert!(pts.len() >= 4, "{all}");
    for p in pts {
        let t = p[1].as_i64().unwrap();
        assert!((from..=to).contains(&t), "point {p} outside the range");
    }
    // 40 requests were counted at some point: some sample saw a positive rate.
    assert!(
        pts.iter().any(|p| p[0].as_f64().unwrap_or(0.0) > 0.0),
        "{all}"
    );
    let errs = api.ok("/grafana/query", q("error_rate", 100_000)).await;
    assert!(datapoints(&errs[0])
        .iter()
        .any(|p| p[0].as_f64().unwrap_or(0.0) > 0.0));
    let p95 = api.ok("/grafana/query", q("latency_p95", 100_000)).await;
    assert!(datapoints(&p95[0])
        .iter()
        .any(|p| p[0].as_f64().is_some_and(|v| v > 0.0)));

    // maxDataPoints caps the answer.
    for max in [1u64, 2, 3] {
        let v = api.ok("/grafana/query", q("request_rate", max)).await;
        let n = datapoints(&v[0]).len();
        assert!(n >= 1 && n as u64 <= max, "maxDataPoints {max}: {n} points");
    }
    // A range before the server started holds nothing.
    let old = json!({"range": {"from": "2001-01-01T00:00:00.000Z", "to": "2001-01-02T00:00:00.000Z"},
                     "targets": [{"target": "cpu_percent", "refId": "B"}]});
    let v = api.ok("/grafana/query", old).await;
    assert_eq!(datapoints(&v[0]).len(), 0);
    // SimpleJSON's `type: table` for a series: a Time/value table.
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": "memory_percent", "refId": "C", "type": "table"}]}),
        )
        .await;
    assert_eq!(v[0]["type"], "table");
    assert_eq!(v[0]["columns"][0]["type"], "time");
    assert!(!v[0]["rows"].as_array().unwrap().is_empty());
    // Placeholder and hidden targets are skipped.
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"refId": "A"}, {"target": "cpu_percent", "hide": true}]}),
        )
        .await;
    assert_eq!(v, json!([]));
    assert!(api.srv.stop().success());
}

#[tokio::test]
async fn the_ring_stays_bounded() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "100ms", Some(5));
    let api = Api::start(&path, dir.path());
    api.wait_samples(5).await;
    // Keep sampling well past the capacity.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, h) = api.get("/grafana/health").await;
    assert_eq!(h["samples"], 5, "{h}");
    assert_eq!(h["capacity"], 5);
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": "cpu_percent"}]}),
        )
        .await;
    let pts = datapoints(&v[0]);
    assert_eq!(pts.len(), 5);
    // The newest 5: all within the last ~second.
    let oldest = pts[0][1].as_i64().unwrap();
    assert!(now_ms() - oldest < 5_000, "old samples were kept: {v}");
    assert!(api.srv.stop().success());
}

#[tokio::test]
async fn tables_match_the_gauge_and_honour_filters_in_both_dialects() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "5s", None);
    let m = model(&path);
    let table = &m
        .manifest
        .datasource
        .targets
        .iter()
        .find(|t| t.kind == DatasourceTargetKind::Table)
        .unwrap()
        .clone();
    let api = Api::start(&path, dir.path());
    let gauge = metric_sum(&api.metrics().await, table.metric.as_ref().unwrap(), &[]);

    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": table.name, "refId": "T"}]}),
        )
        .await;
    assert_eq!(v[0]["type"], "table");
    assert_eq!(v[0]["refId"], "T");
    let cols: Vec<&str> = v[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        table.columns.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let rows = v[0]["rows"].as_array().unwrap().clone();
    assert_eq!(
        rows.len() as f64,
        gauge,
        "table rows and the gauge disagree"
    );
    assert!(gauge > 0.0);

    // Pick a real category among the rows and filter on it, both spellings.
    let cat_idx = cols.iter().position(|c| *c == "category").unwrap();
    let cat = rows[0][cat_idx].as_str().unwrap().to_string();
    let expect = rows.iter().filter(|r| r[cat_idx] == json!(cat)).count();
    for field in ["filters", "adhocFilters"] {
        let body = json!({
            field: [{"key": "category", "operator": "=", "value": cat}],
            "targets": [{"target": table.name, "payload": {"columns": ["name", "category"]}}]
        });
        let v = api.ok("/grafana/query", body).await;
        let got = v[0]["rows"].as_array().unwrap();
        assert_eq!(got.len(), expect, "{field}: {v}");
        assert!(got
            .iter()
            .all(|r| r[1] == json!(cat) && r.as_array().unwrap().len() == 2));
    }
    // Numeric comparison and multi-value operators.
    let stock_idx = cols.iter().position(|c| *c == "stock").unwrap();
    let below2 = rows
        .iter()
        .filter(|r| r[stock_idx].as_f64().unwrap() < 2.0)
        .count();
    let v = api
        .ok(
            "/grafana/query",
            json!({"filters": [{"key": "stock", "operator": "<", "value": "2"}],
                   "targets": [{"target": table.name}]}),
        )
        .await;
    assert_eq!(v[0]["rows"].as_array().unwrap().len(), below2);
    let v = api
        .ok(
            "/grafana/query",
            json!({"filters": [{"key": "category", "operator": "!=|", "value": "", "values": [cat]}],
                   "targets": [{"target": table.name}]}),
        )
        .await;
    assert_eq!(v[0]["rows"].as_array().unwrap().len(), rows.len() - expect);
    // The payload may also arrive as JSON text (simpod's code editor).
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": table.name, "payload": "{\"columns\": \"stock\"}"}]}),
        )
        .await;
    assert_eq!(
        v[0]["columns"],
        json!([{"text": "stock", "type": "number"}])
    );

    // Ad-hoc filter discovery.
    let keys = api.ok("/grafana/tag-keys", json!({})).await;
    let key_names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["text"].as_str().unwrap())
        .collect();
    assert!(
        key_names.contains(&"category") && key_names.contains(&"tags"),
        "{keys}"
    );
    let (s, _) = api.post_raw("/grafana/tag-keys", "").await;
    assert_eq!(s, 200);
    let vals = api
        .ok("/grafana/tag-values", json!({"key": "category"}))
        .await;
    assert!(vals.as_array().unwrap().contains(&json!({"text": cat})));

    // Query variables: target names, and the values of a column.
    let v = api
        .ok("/grafana/variable", json!({"payload": {"target": ""}}))
        .await;
    assert_eq!(
        v.as_array().unwrap().len(),
        m.manifest.datasource.targets.len()
    );
    let v = api
        .ok(
            "/grafana/variable",
            json!({"payload": {"target": format!("{}.category", table.name)},
                   "range": {"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"}}),
        )
        .await;
    assert!(v
        .as_array()
        .unwrap()
        .contains(&json!({"__text": cat, "__value": cat})));
    assert!(api.srv.stop().success());
}

#[tokio::test]
async fn annotations_record_startup_and_5xx_bursts_in_both_dialects() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "300ms", None);
    let m = model(&path);
    let burst = m.manifest.datasource.annotations.error_burst;
    let api = Api::start(&path, dir.path());
    let ann_target = names_of(&m, Some(DatasourceTargetKind::Annotations))[0].clone();

    // SimpleJSON /annotations: the start-up event, with the annotation echoed.
    let req = json!({"range": {"from": iso(now_ms() - 60_000), "to": iso(now_ms() + 60_000)},
                     "annotation": {"name": "events", "enable": true, "query": ann_target}});
    let v = api.ok("/grafana/annotations", req.clone()).await;
    let started = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["tags"].as_array().unwrap().contains(&json!("startup")))
        .unwrap_or_else(|| panic!("no start-up annotation: {v}"));
    assert_eq!(started["annotation"]["name"], "events");
    assert!(started["text"]
        .as_str()
        .unwrap()
        .contains(&m.manifest.service.name));

    // A burst: twice the threshold of 5xx responses, quickly.
    for _ in 0..burst * 2 {
        api.http.get(api.srv.url("/error")).send().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let burst_ann = loop {
        let req = json!({"annotation": {"name": "bursts", "query": ""}});
        let v = api.ok("/grafana/annotations", req).await;
        if let Some(b) = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["tags"].as_array().unwrap().contains(&json!("5xx")))
        {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no burst annotation: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(burst_ann["timeEnd"].as_i64().unwrap() >= burst_ann["time"].as_i64().unwrap());
    assert!(
        burst_ann["text"].as_str().unwrap().contains("/error"),
        "{burst_ann}"
    );

    // simpod: annotations through /query, as a frame Grafana maps to annotations.
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": ann_target, "refId": "Anno",
                                "payload": {"events": ["error_burst"]}}]}),
        )
        .await;
    let cols: Vec<&str> = v[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["time", "timeEnd", "title", "text", "tags"]);
    let rows = v[0]["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r[4].as_str().unwrap().contains("5xx")));
    // The `tags` ad-hoc key filters annotations.
    let v = api
        .ok(
            "/grafana/query",
            json!({"filters": [{"key": "tags", "operator": "=", "value": "startup"}],
                   "targets": [{"target": ann_target}]}),
        )
        .await;
    let rows = v[0]["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r[4].as_str().unwrap().contains("startup"))
    );
    assert!(api.srv.stop().success());
}

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

    // (route, body, expected status, expected field)
    let cases: Vec<(&str, String, u16, &str)> = vec![
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
    ];
    for (route, body, status, field) in &cases {
        let (s, v) = api.post_raw(route, body.clone()).await;
        assert_eq!(s, *status, "{route} {body}: {v}");
        assert_eq!(v["status"], json!(status), "{v}");
        assert_eq!(v["field"], json!(field), "{route} {body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }

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

#[tokio::test]
async fn dashboard_route_serves_the_rendered_bytes() {
    let dir = tempdir();
    let path = copy_default_manifest(dir.path());
    let m = model(&path);
    let out = dir.path().join("out");
    let (st, _, err) = run(
        &[
            "render",
            "--manifest",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(st.success(), "{err}");
    let rel = format!("grafana/dashboards/{}.json", m.manifest.dashboard.uid);
    let rendered = std::fs::read(out.join(&rel)).unwrap();
    // The repo's generated/ is the same render of the same manifest.
    assert_eq!(
        rendered,
        std::fs::read(repo().join("generated").join(&rel)).unwrap()
    );

    let api = Api::start(&path, dir.path());
    let r = api
        .http
        .get(api.srv.url("/grafana/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served = r.bytes().await.unwrap();
    assert!(
        served[..] == rendered[..],
        "GET /grafana/dashboard differs from the rendered file"
    );
    // And it holds the JSON-datasource panels, querying declared targets.
    let dash: Value = serde_json::from_slice(&served).unwrap();
    let json_targets: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["datasource"]["type"] == "simpod-json-datasource")
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["target"].as_str().unwrap().to_string())
        .collect();
    assert!(!json_targets.is_empty());
    let declared = names_of(&m, None);
    assert!(
        json_targets.iter().all(|t| declared.contains(t)),
        "{json_targets:?}"
    );
    // Each of them answers /query.
    for t in &json_targets {
        api.ok(
            "/grafana/query",
            json!({"targets": [{"target": t, "refId": "A"}]}),
        )
        .await;
    }
    assert!(api.srv.stop().success());
}
