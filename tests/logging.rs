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

/// A 2 MiB tmpfs mounted on `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` where mounting is not allowed (not root).
    fn mount(dir: &std::path::Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.into()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` with the file `path`, then gives back
/// `room` bytes of it.
fn fill_leaving(path: &std::path::Path, room: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![b'x'; 4096];
    while f.write_all(&chunk).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(room)).unwrap();
}

/// `n` requests to `/products` from 8 clients.
async fn products(srv: &Server, n: usize) {
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), srv.url("/products"));
            tokio::spawn(async move {
                for _ in 0..n / 8 {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200, "the server keeps serving");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A log directory on a small tmpfs that fills up: the server keeps
/// serving, and after room comes back every line in the file is whole JSON
/// (the line cut at ENOSPC was taken back out), and every request line the
/// file lacks is counted in `telltale_log_lines_lost_total{output="file"}`.
#[tokio::test]
async fn a_full_log_disk_leaves_whole_lines_and_counts_every_lost_one() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    // Only request lines may be lost here, not the span exporter's warning.
    untraced(&manifest);
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("logs")) else {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    let srv = Server::start(&manifest, dir.path());
    let filler = dir.path().join("logs/filler");
    // Room for about 150 request lines: the batch that crosses it is cut
    // at a page boundary, inside a line.
    fill_leaving(&filler, 48 * 1024);
    products(&srv, 2000).await;
    // Let the writer try every batch while the disk is still full.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    std::fs::remove_file(&filler).unwrap();
    products(&srv, 400).await;
    let metrics = get_text(&srv.url("/metrics")).await;
    assert!(srv.stop().success(), "SIGTERM stops it cleanly");
    let lost = metric_sum(
        &metrics,
        "telltale_log_lines_lost_total",
        &["output=\"file\""],
    );
    // Every line parses (log_lines panics on a torn one).
    let lines = log_lines(dir.path());
    assert!(lost > 0.0, "nothing lost on a full disk?");
    let requests = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::http")
        .count();
    assert!(requests > 400, "lines after recovery are written");
    // Only request lines were logged while the disk was full; the
    // /metrics request's own line came after recovery.
    assert_eq!(
        requests as f64 + lost,
        2401.0,
        "each request line is in the file or counted as lost"
    );
}
