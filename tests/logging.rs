//! The request log: one JSON line per request in the file, one human line on
//! the console, nothing at all with `logging.enabled: false`, and only the
//! file's tail in the page cache with `logging.drop_page_cache: true`.
mod common;
use common::fincore::resident;
use common::*;

#[tokio::test]
async fn every_request_leaves_one_json_line_and_one_console_line() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let port = srv.port;
    let mut ids = Vec::new();
    for i in 0..50 {
        let r = reqwest::get(srv.url(&format!("/products?limit={}", i % 5 + 1)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    let bad = reqwest::get(srv.url("/products?limit=abc")).await.unwrap();
    assert_eq!(bad.status(), 400);
    let console = {
        let stopped = srv.stop();
        assert!(stopped.success());
        std::fs::read_to_string(dir.path().join("server.stderr")).unwrap()
    };
    let lines = log_lines(dir.path());
    // Every line, request or not, names its service and instance (host
    // name and the port really bound, since --port 0 picked it).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let instance = format!("{}:{port}", host.trim());
    assert!(lines.len() > 51);
    for l in &lines {
        assert_eq!(l["service"], "ecommerce-api", "{l}");
        assert_eq!(l["instance"], instance.as_str(), "{l}");
    }
    let requests: Vec<_> = lines
        .into_iter()
        .filter(|l| l["logger"] == "telltale::http")
        .collect();
    assert_eq!(requests.len(), 51, "one line per request");
    for (line, id) in requests.iter().zip(&ids) {
        assert_eq!(line["request_id"], id.as_str());
        assert_eq!(line["level"], "info");
        assert_eq!(line["message"], "request completed");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/products");
        assert_eq!(line["status"], 200);
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(requests[50]["level"], "warning");
    assert_eq!(requests[50]["status"], 400);
    let human: Vec<_> = console
        .lines()
        .filter(|l| l.contains("telltale::http: request"))
        .collect();
    assert_eq!(human.len(), 51, "console:\n{console}");
    assert!(
        human[0].contains(&format!("request_id={}", ids[0])),
        "{}",
        human[0]
    );
    assert!(human[50].contains(" WARN ") && human[50].contains("status=400"));
}

#[tokio::test]
async fn logging_disabled_writes_nothing_and_metrics_still_count() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(&manifest, "\nlogging:\n", "\nlogging:\n  enabled: false\n");
    let srv = Server::start(&manifest, dir.path());
    for _ in 0..5 {
        assert_eq!(
            reqwest::get(srv.url("/products")).await.unwrap().status(),
            200
        );
    }
    let metrics = get_text(&srv.url("/metrics")).await;
    assert_eq!(
        metric_sum(&metrics, "http_requests_total", &["path=\"/products\""]),
        5.0
    );
    assert!(srv.stop().success());
    assert!(!dir.path().join("logs").exists(), "no log directory");
    let console = std::fs::read_to_string(dir.path().join("server.stderr")).unwrap();
    assert!(!console.contains("request completed"), "{console}");
}

/// With `logging.drop_page_cache: true`, serves 41,600 requests whose
/// logged path is cut to 512 bytes (about 30 MiB of log file); returns the
/// log file's size and how much of it is cached.
async fn log_with_drop_page_cache() -> (u64, u64) {
    // On the build's file system: tmpfs (often /tmp) cannot drop pages.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "\nlogging:\n",
        "\nlogging:\n  drop_page_cache: true\n",
    );
    let srv = Server::start(&manifest, dir.path());
    let client = reqwest::Client::new();
    let url = srv.url(&format!("/{}", "x".repeat(600)));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..2600 {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 404);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(srv.stop().success());
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let size = std::fs::metadata(&logs[0]).unwrap().len();
    (size, resident(&logs[0]))
}

#[tokio::test]
async fn drop_page_cache_keeps_only_the_log_tail_cached() {
    // Without the setting the kernel keeps the whole file cached (the unit
    // tests of `pagecache.rs` show both sides); with it, only the tail.
    let (size, kept) = log_with_drop_page_cache().await;
    assert!(size > 28 << 20, "only {size} B logged");
    // KEEP (16 MiB) plus up to one STEP (4 MiB) written since the last advice.
    assert!(
        kept <= 20 << 20,
        "with drop_page_cache, {kept} of {size} B stayed cached \
         (is {} on tmpfs, which cannot drop pages?)",
        env!("CARGO_TARGET_TMPDIR")
    );
}

/// `logging.level` filters request lines like every other line: at `warn`,
/// a 200 writes nothing and a 4xx writes its warning.
#[tokio::test]
async fn request_lines_below_the_level_are_not_written() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(&manifest, "\n  level: info\n", "\n  level: warn\n");
    let srv = Server::start(&manifest, dir.path());
    for _ in 0..3 {
        let ok = reqwest::get(srv.url("/products")).await.unwrap();
        assert_eq!(ok.status(), 200);
    }
    let bad = reqwest::get(srv.url("/products?limit=abc")).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(srv.stop().success());
    let requests: Vec<_> = log_lines(dir.path())
        .into_iter()
        .filter(|l| l["logger"] == "telltale::http")
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["level"], "warning");
    assert_eq!(requests[0]["status"], 400);
}
