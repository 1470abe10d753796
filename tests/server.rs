//! The real server on an ephemeral port, checked through a real HTTP client.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = reqwest::get(url).await.unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.text().await.unwrap())
}

async fn get_json(url: &str) -> (u16, Value) {
    let (s, h, body) = get(url).await;
    assert_eq!(h["content-type"], "application/json", "{url}");
    (
        s,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}")),
    )
}

fn manifest_yaml(path: &Path) -> Value {
    let y: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(y).unwrap()
}

/// Every request line of every rotated log file under `dir`.
fn log_lines(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            out.push(
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")),
            );
        }
    }
    out
}

fn request_lines(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["logger"] == "telltale::http")
        .collect()
}

#[tokio::test]
async fn every_endpoint_answers_as_declared() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());

    let (s, info) = get_json(&srv.url("/")).await;
    assert_eq!(s, 200);
    let m = manifest_yaml(&manifest);
    assert_eq!(info["service"], m["service"]["name"]);
    let declared: BTreeSet<String> = m["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    let listed: BTreeSet<String> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(declared, listed);

    // collection: data from the data file, paged and validated
    let products: Vec<Value> = serde_yaml::from_str::<serde_yaml::Value>(
        &std::fs::read_to_string(dir.path().join("data/products.yaml")).unwrap(),
    )
    .map(|v| serde_json::to_value(v).unwrap())
    .unwrap()
    .as_array()
    .unwrap()
    .clone();
    let (s, page) = get_json(&srv.url("/products?limit=3&offset=2")).await;
    assert_eq!(s, 200);
    assert_eq!(page["total"], products.len());
    assert_eq!(page["items"].as_array().unwrap(), &products[2..5].to_vec());
    let (_, page) = get_json(&srv.url(&format!("/products?offset={}", products.len() - 1))).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (s, users) = get_json(&srv.url("/users")).await;
    assert_eq!(s, 200);
    assert!(!users["items"].as_array().unwrap().is_empty());

    for (q, param) in [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
        ("sort=name", "sort"),
    ] {
        let (s, e) = get_json(&srv.url(&format!("/products?{q}"))).await;
        assert_eq!(s, 400, "{q}");
        assert_eq!(e["parameter"], param, "{q}: {e}");
        assert!(e["message"].as_str().unwrap().contains(param));
    }

    let (s, h) = get_json(&srv.url("/health")).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    let (s, r) = get_json(&srv.url("/ready")).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("ready")));
    let (s, st) = get_json(&srv.url("/startup")).await;
    assert_eq!(s, 200);
    let up1 = st["uptime_seconds"].as_f64().unwrap();
    assert!(humantime::parse_rfc3339(st["started_at"].as_str().unwrap()).is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, st2) = get_json(&srv.url("/startup")).await;
    assert!(st2["uptime_seconds"].as_f64().unwrap() > up1);
    assert_eq!(st2["started_at"], st["started_at"]);

    let (s, e) = get_json(&srv.url("/error")).await;
    assert_eq!(s, 500);
    assert_eq!(e["status"], 500);

    let (s, h, body) = get(&srv.url("/metrics")).await;
    assert_eq!(s, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(body.contains("# TYPE http_requests_total counter"));

    // Bad HTTP input: JSON 404 and 405.
    let (s, e) = get_json(&srv.url("/no/such/thing")).await;
    assert_eq!((s, e["status"].as_u64()), (404, Some(404)));
    let r = reqwest::Client::new()
        .delete(srv.url("/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["status"], 405);
    assert!(srv.stop().success());
}

/// Every declared family is exposed in each text, and nothing else but
/// telltale's own families (the process's and the log writer's).
fn exactly_the_declared_families(m: &Value, texts: [&str; 2]) {
    let families = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    let declared: BTreeSet<String> = m["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect();
    for text in texts {
        let exposed = families(text);
        let missing: Vec<_> = declared.difference(&exposed).collect();
        assert!(missing.is_empty(), "declared but not exposed: {missing:?}");
        let extra: Vec<_> = exposed
            .difference(&declared)
            // telltale's own families: the process's and the log writer's.
            .filter(|f| !f.starts_with("process_") && !f.starts_with("telltale_"))
            .collect();
        assert!(extra.is_empty(), "exposed but not declared: {extra:?}");
    }
}

/// Types and label names match the manifest.
fn types_and_label_names_match_the_manifest(m: &Value, body: &str) {
    for metric in m["metrics"].as_array().unwrap() {
        let name = metric["name"].as_str().unwrap();
        let ty = metric["type"].as_str().unwrap();
        assert!(
            body.contains(&format!("# TYPE {name} {ty}")),
            "{name} is not a {ty}"
        );
        let want: BTreeSet<String> = metric["labels"]
            .as_array()
            .map(|a| a.iter().map(|l| l.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        for (series, _) in parse_metrics(body) {
            let base = series.split('{').next().unwrap();
            let base = if ty == "histogram" {
                base.trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
            } else {
                base
            };
            if base != name {
                continue;
            }
            let mut got: BTreeSet<String> = series
                .split_once('{')
                .map(|(_, l)| {
                    l.trim_end_matches('}')
                        .split(',')
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| kv.split('=').next().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            got.remove("le");
            assert_eq!(got, want, "labels of {series}");
        }
    }
}

/// Values are right: 3 OK products requests, 1 fault, path label is the template.
fn requests_are_counted_under_their_template(body: &str) {
    assert_eq!(
        metric_sum(
            body,
            "http_requests_total",
            &[r#"path="/products""#, r#"status="200""#]
        ),
        3.0
    );
    assert_eq!(
        metric_sum(
            body,
            "http_requests_total",
            &[r#"path="/error""#, r#"status="500""#]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            body,
            "http_requests_total",
            &[r#"path="unmatched""#, r#"status="404""#]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            body,
            "http_request_duration_seconds_count",
            &[r#"path="/products""#]
        ),
        3.0
    );
}

/// Low stock: computed from the data file and the manifest threshold; the
/// system gauges are percentages; build and process families are there.
fn low_stock_and_the_system_gauges_are_right(m: &Value, dir: &Path, body: &str) {
    let threshold = m["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == "collection.below_threshold")
        .unwrap()["options"]["threshold"]
        .as_f64()
        .unwrap();
    let data: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("data/products.yaml")).unwrap())
            .unwrap();
    let low = data
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|p| p["stock"].as_f64().unwrap() < threshold)
        .count();
    assert!(low > 0);
    assert_eq!(
        metric_sum(body, "products_low_stock_total", &[]),
        low as f64
    );
    let cpu = metric_sum(body, "system_cpu_usage_percent", &[]);
    let mem = metric_sum(body, "system_memory_usage_percent", &[]);
    assert!((0.0..=100.0).contains(&cpu), "cpu {cpu}");
    assert!(mem > 0.0 && mem <= 100.0, "mem {mem}");
    assert!(body.contains("build_info{commit=\""), "{body}");
    assert!(body.contains("process_resident_memory_bytes"));
}

#[tokio::test]
async fn metrics_expose_exactly_the_declared_families_with_their_labels() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let m = manifest_yaml(&manifest);
    let srv = Server::start(&manifest, dir.path());
    // Before any traffic every declared family is already there.
    let (_, _, first) = get(&srv.url("/metrics")).await;
    for _ in 0..3 {
        get(&srv.url("/products?limit=1")).await;
    }
    get(&srv.url("/error")).await;
    get(&srv.url("/missing")).await;
    let (_, _, body) = get(&srv.url("/metrics")).await;

    exactly_the_declared_families(&m, [&first, &body]);
    types_and_label_names_match_the_manifest(&m, &body);
    requests_are_counted_under_their_template(&body);
    low_stock_and_the_system_gauges_are_right(&m, dir.path(), &body);
    assert!(srv.stop().success());
}

#[tokio::test]
async fn unknown_paths_add_at_most_one_series() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let count_series = |body: &str| {
        parse_metrics(body)
            .iter()
            .filter(|(s, _)| s.starts_with("http_requests_total{"))
            .count()
    };
    let (_, _, before) = get(&srv.url("/metrics")).await;
    let client = reqwest::Client::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..1000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let r = client
            .get(srv.url(&format!("/x{seed:x}/{i}?q={seed}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let (_, _, after) = get(&srv.url("/metrics")).await;
    // +1 for the unmatched series; +1 because the first /metrics scrape is
    // itself counted (its series was created at zero, so it may not add one).
    let grown = count_series(&after) - count_series(&before);
    assert!(grown <= 1, "1000 unknown paths added {grown} series");
    assert_eq!(
        metric_sum(&after, "http_requests_total", &[r#"path="unmatched""#]),
        1000.0
    );
    assert!(!after.contains("/x"), "a raw path leaked into a label");
    assert!(srv.stop().success());
}

#[tokio::test]
async fn request_ids_are_echoed_generated_and_logged() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let client = reqwest::Client::new();
    let r = client
        .get(srv.url("/error"))
        .header("x-request-id", "chaos-42.a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "chaos-42.a");
    let r = client.get(srv.url("/health")).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 32);
    let r = client.get(srv.url("/health")).send().await.unwrap();
    assert_ne!(r.headers()["x-request-id"].to_str().unwrap(), generated);
    // A hostile id is replaced, not logged.
    let r = client
        .get(srv.url("/health"))
        .header("x-request-id", "a\"b c}".repeat(3))
        .send()
        .await
        .unwrap();
    let replaced = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(replaced.len(), 32);
    assert!(srv.stop().success());

    let lines = log_lines(&dir.path().join("logs"));
    // Every line logged while handling /error carries its request id:
    // the handler's own error line and the request line.
    let tagged: Vec<_> = lines
        .iter()
        .filter(|l| l["request_id"] == "chaos-42.a")
        .collect();
    assert_eq!(tagged.len(), 2, "{tagged:?}");
    assert!(tagged
        .iter()
        .any(|l| l["logger"] == "telltale::plugins::handlers::fault" && l["level"] == "error"));
    assert!(tagged
        .iter()
        .any(|l| l["logger"] == "telltale::http" && l["status"] == 500));
    assert!(lines.iter().any(|l| l["request_id"] == generated.as_str()));
    assert!(lines.iter().any(|l| l["request_id"] == replaced.as_str()));
}

#[tokio::test]
async fn each_request_writes_one_json_line_with_the_declared_fields() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let m = manifest_yaml(&manifest);
    let srv = Server::start(&manifest, dir.path());
    let paths = [
        "/",
        "/products?limit=2",
        "/users",
        "/health",
        "/nope",
        "/error",
    ];
    for p in paths {
        get(&srv.url(p)).await;
    }
    assert!(srv.stop().success());
    let log_dir = dir.path().join(m["logging"]["dir"].as_str().unwrap());
    // Rotated files match the one stable glob <file>.*log.
    let prefix = format!("{}.", m["logging"]["file"].as_str().unwrap());
    for f in std::fs::read_dir(&log_dir).unwrap() {
        let name = f.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.starts_with(&prefix) && name.ends_with("log"), "{name}");
    }
    let lines = log_lines(&log_dir);
    let reqs = request_lines(&lines);
    assert_eq!(reqs.len(), paths.len());
    let fields: Vec<&str> = m["logging"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for (line, p) in reqs.iter().zip(paths) {
        for f in &fields {
            assert!(!line[*f].is_null(), "field {f} missing in {line}");
        }
        assert!(humantime::parse_rfc3339(line["timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(line["path"], p.split('?').next().unwrap());
        assert_eq!(line["method"], "GET");
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(line["status"].as_u64().unwrap() >= 200);
    }
    assert_eq!(reqs[4]["status"], 404);
    assert_eq!(reqs[4]["level"], "warning");
    assert_eq!(reqs[5]["level"], "error");
    assert_eq!(reqs[0]["level"], "info");
}

#[tokio::test]
async fn graceful_shutdown_under_load_loses_no_line() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let client = reqwest::Client::new();
    let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (client, url, ok) = (client.clone(), srv.url("/products?limit=5"), ok.clone());
        set.spawn(async move {
            for i in 0..400 {
                match client
                    .get(&url)
                    .header("x-request-id", format!("w{w}-{i}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        if r.bytes().await.is_ok() {
                            ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    _ => break,
                }
            }
        });
    }
    // Let the load build up, then stop the server in the middle of it.
    while ok.load(std::sync::atomic::Ordering::SeqCst) < 500 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let status = srv.stop();
    while set.join_next().await.is_some() {}
    assert!(status.success(), "exit status {status:?}");
    let answered = ok.load(std::sync::atomic::Ordering::SeqCst);
    assert!((500..16 * 400).contains(&answered), "answered {answered}");
    let lines = log_lines(&dir.path().join("logs"));
    let logged = request_lines(&lines)
        .iter()
        .filter(|l| l["status"] == 200)
        .count();
    assert_eq!(
        logged, answered,
        "every answered request has exactly one log line"
    );
    assert!(lines
        .iter()
        .any(|l| l["message"].as_str().unwrap_or("").contains("draining")));
}

#[tokio::test]
async fn openapi_document_is_built_from_the_manifest() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let m = manifest_yaml(&manifest);
    let srv = Server::start(&manifest, dir.path());
    let (s, doc) = get_json(&srv.url("/openapi.json")).await;
    assert_eq!(s, 200);
    assert_eq!(doc["info"]["title"], m["service"]["name"]);
    assert_eq!(doc["info"]["version"], m["service"]["version"]);
    for ep in m["endpoints"].as_array().unwrap() {
        let path = ep["path"].as_str().unwrap();
        let method = ep["method"].as_str().unwrap_or("GET").to_lowercase();
        let op = &doc["paths"][path][&method];
        assert!(op.is_object(), "{method} {path} missing from the spec");
        assert_eq!(op["summary"], ep["summary"], "{path}");
        assert_eq!(op["tags"], ep["tags"], "{path}");
        let ok = op["responses"].as_object().unwrap();
        assert!(!ok.is_empty(), "{path} has no responses");
    }
    // The collection documents its query parameters and its item schema (from the data).
    let products = &doc["paths"]["/products"]["get"];
    let params: Vec<&str> = products["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["limit", "offset"]);
    // The page schema is shared by the endpoints of one data file: a reference.
    let page = products["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let name = page.strip_prefix("#/components/schemas/").unwrap();
    let item = &doc["components"]["schemas"][name]["properties"]["items"]["items"];
    assert_eq!(item["properties"]["stock"]["type"], "integer", "{item}");
    assert_eq!(item["properties"]["name"]["type"], "string");
    assert!(products["responses"]["400"].is_object());
    assert!(srv.stop().success());
}

#[tokio::test]
async fn a_new_endpoint_needs_only_a_manifest_edit_and_a_restart() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    std::fs::write(
        dir.path().join("data/orders.json"),
        r#"[{"id": 1, "total": 9.5}, {"id": 2, "total": 12.0}]"#,
    )
    .unwrap();
    edit(
        &manifest,
        "endpoints:\n",
        "endpoints:\n  - path: /orders\n    summary: List orders\n    tags: [orders]\n    handler: collection\n    data: data/orders.json\n",
    );
    let srv = Server::start(&manifest, dir.path());
    let (s, page) = get_json(&srv.url("/orders?limit=1")).await;
    assert_eq!(s, 200);
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["total"], 9.5);
    let (_, _, metrics) = get(&srv.url("/metrics")).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "http_requests_total",
            &[r#"path="/orders""#, r#"status="200""#]
        ),
        1.0
    );
    let (_, doc) = get_json(&srv.url("/openapi.json")).await;
    assert_eq!(doc["paths"]["/orders"]["get"]["summary"], "List orders");
    assert!(srv.stop().success());
}
