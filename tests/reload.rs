//! Hot reload under load: a reload that adds an endpoint, one that removes
//! it, and an invalid one, while clients keep sending requests. No request
//! may fail, every answered request must have its log line, kept families
//! keep their values and the removed route's series leave `/metrics`.

mod common;

use common::{copy_default_manifest, edit, log_lines, metric_sum, tempdir, Server};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIVEZ: &str = "  - path: /livez
    method: GET
    summary: A second liveness probe, added by a reload
    tags: [probes]
    handler: probe
    options: { probe: health }
  - path: /error
";

fn hup(server: &Server) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn metrics(server: &Server) -> String {
    common::get_text(&server.url("/metrics")).await
}

/// Waits until `telltale_config_reloads_total{result}` reaches `n`.
async fn await_reloads(server: &Server, result: &str, n: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(server).await;
        let seen = metric_sum(
            &text,
            "telltale_config_reloads_total",
            &[&format!("result=\"{result}\"")],
        );
        if seen >= n {
            assert_eq!(seen, n, "more {result} reloads than triggered");
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {result} reload #{n} within 20 s; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the load clients saw: request id → status, and transport errors.
#[derive(Default)]
struct Seen {
    answered: HashMap<String, u16>,
    errors: Vec<String>,
}

/// Four clients sending requests with their own ids until `stop`.
fn load(
    server: &Server,
    seen: &Arc<Mutex<Seen>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut clients = Vec::new();
    for worker in 0..4 {
        let (seen, stop, base) = (seen.clone(), stop.clone(), server.base.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let paths = ["/products", "/health", "/users?limit=5", "/"];
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("load-{worker}-{i}");
                let path = paths[i % paths.len()];
                i += 1;
                let r = client
                    .get(format!("{base}{path}"))
                    .header("x-request-id", &id)
                    .send()
                    .await;
                let mut s = seen.lock().unwrap();
                match r {
                    Ok(resp) => {
                        let _ = s.answered.insert(id, resp.status().as_u16());
                    }
                    Err(e) => s.errors.push(format!("{path}: {e}")),
                }
            }
        }));
    }
    clients
}

/// The first reload adds an endpoint: it is served, documented and has
/// its series. Returns the count of /products requests so far.
async fn a_reload_adds_an_endpoint(server: &Server, manifest: &Path) -> f64 {
    edit(manifest, "  - path: /error\n", LIVEZ);
    hup(server);
    await_reloads(server, "success", 1.0).await;
    let livez = reqwest::get(server.url("/livez")).await.unwrap();
    assert_eq!(livez.status(), 200, "the added endpoint is served");
    let spec = common::get_text(&server.url("/openapi.json")).await;
    assert!(spec.contains("\"/livez\""), "the document lists it");
    let before = metrics(server).await;
    assert!(before.contains("path=\"/livez\""), "its series exist");
    let products_before = metric_sum(&before, "http_requests_total", &["path=\"/products\""]);
    assert!(products_before > 0.0, "the load reached /products");
    products_before
}

/// The second reload removes it: its series leave /metrics, a kept
/// family keeps its values.
async fn a_reload_removes_it(server: &Server, manifest: &Path, products_before: f64) {
    edit(manifest, LIVEZ, "  - path: /error\n");
    hup(server);
    let after = await_reloads(server, "success", 2.0).await;
    assert!(
        !after.contains("path=\"/livez\""),
        "the removed route's series left /metrics:\n{}",
        after
            .lines()
            .filter(|l| l.contains("/livez"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let products_after = metric_sum(&after, "http_requests_total", &["path=\"/products\""]);
    assert!(
        products_after >= products_before,
        "a kept family keeps its values: {products_before} then {products_after}"
    );
    let gone = reqwest::get(server.url("/livez")).await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(
        metric_sum(&after, "telltale_config_last_reload_successful", &[]),
        1.0
    );
}

/// The third is invalid: the old manifest keeps serving.
async fn an_invalid_reload_keeps_the_old_manifest(server: &Server, manifest: &Path) {
    edit(manifest, "  port: 8001", "  port: \"x\"");
    hup(server);
    let failed = await_reloads(server, "failure", 1.0).await;
    assert_eq!(
        metric_sum(&failed, "telltale_config_last_reload_successful", &[]),
        0.0
    );
    let still = reqwest::get(server.url("/products")).await.unwrap();
    assert_eq!(still.status(), 200, "the previous manifest still serves");
}

/// No request failed, and every answered one has exactly one log line.
fn no_request_failed_and_each_has_one_log_line(seen: &Seen, lines: &[serde_json::Value]) {
    assert!(seen.errors.is_empty(), "failed requests: {:?}", seen.errors);
    let bad: Vec<_> = seen.answered.iter().filter(|(_, s)| **s != 200).collect();
    assert!(bad.is_empty(), "requests that did not succeed: {bad:?}");
    assert!(
        seen.answered.len() > 100,
        "too little load: {}",
        seen.answered.len()
    );

    let mut logged: HashMap<&str, usize> = HashMap::new();
    for l in lines {
        if let Some(id) = l["request_id"].as_str() {
            *logged.entry(id).or_default() += 1;
        }
    }
    let lost: Vec<_> = seen
        .answered
        .keys()
        .filter(|id| logged.get(id.as_str()) != Some(&1))
        .take(5)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered requests lack exactly one log line, e.g. {lost:?}",
        seen.answered
            .keys()
            .filter(|id| logged.get(id.as_str()) != Some(&1))
            .count(),
        seen.answered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_reloads_under_load_fail_no_request_and_lose_no_log_line() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let server = Server::start(&manifest, dir.path());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&server, &seen, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let products_before = a_reload_adds_an_endpoint(&server, &manifest).await;
    a_reload_removes_it(&server, &manifest, products_before).await;
    an_invalid_reload_keeps_the_old_manifest(&server, &manifest).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let workdir = server.workdir.clone();
    assert!(server.stop().success());

    let seen = seen.lock().unwrap();
    let lines = log_lines(&workdir);
    no_request_failed_and_each_has_one_log_line(&seen, &lines);
    let located = lines.iter().any(|l| {
        l["logger"] == "telltale::reload"
            && l["level"] == "error"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("manifest.yaml:11:9: service.port"))
    });
    assert!(
        located,
        "the invalid reload's error is logged with its location"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_watch_reloads_when_the_manifest_or_a_data_file_is_saved() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let server = Server::start_with(&manifest, dir.path(), &["--watch"]);
    // Replaced by a rename, as editors save.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let tmp = dir.path().join(".manifest.yaml.swp");
    std::fs::write(&tmp, text.replacen("  - path: /error\n", LIVEZ, 1)).unwrap();
    std::fs::rename(&tmp, &manifest).unwrap();
    await_reloads(&server, "success", 1.0).await;
    assert_eq!(
        reqwest::get(server.url("/livez")).await.unwrap().status(),
        200
    );

    // A data file written in place: the collection serves the new rows.
    let users = dir.path().join("data/users.yaml");
    let users_total = || async {
        let page: serde_json::Value = reqwest::get(server.url("/users?limit=100"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["total"].as_u64().unwrap()
    };
    let before = users_total().await;
    let text = std::fs::read_to_string(&users).unwrap();
    let first = text
        .lines()
        .position(|l| l.trim_start().starts_with("- "))
        .expect("a list item in users.yaml");
    // Drop the first user: every line from the first item to the next.
    let lines: Vec<&str> = text.lines().collect();
    let next = lines[first + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with("- "))
        .map(|k| first + 1 + k)
        .unwrap();
    let kept: Vec<&str> = lines[..first]
        .iter()
        .chain(&lines[next..])
        .copied()
        .collect();
    std::fs::write(&users, kept.join("\n") + "\n").unwrap();
    await_reloads(&server, "success", 2.0).await;
    let after = users_total().await;
    assert_eq!(
        after + 1,
        before,
        "one user fewer after the data file was saved: {before} then {after}"
    );
    assert!(server.stop().success());
}
