//! `telltale chaos` against the real server: the request counter grows by
//! exactly what chaos sent, the mix is seeded, surprises fail the run, and
//! an unreachable target stops it with a clear message; a body past the
//! cap is a failed request, not memory.

mod common;
mod fake_http;
use common::*;
use serde_json::Value;
use std::sync::atomic::Ordering;

/// A blocking GET (the tests below are plain #[test]s).
fn get(url: String) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { get_text(&url).await })
}

fn requests_total(srv: &Server) -> f64 {
    metric_sum(&get(srv.url("/metrics")), "http_requests_total", &[])
}

fn chaos_json(manifest: &str, target: &str, extra: &[&str], cwd: &std::path::Path) -> (i32, Value) {
    let mut args = vec![
        "chaos",
        "--manifest",
        manifest,
        "--target",
        target,
        "--json",
    ];
    args.extend_from_slice(extra);
    let (st, out, err) = run(&args, cwd);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("chaos --json printed no JSON ({e}):\n{out}\nstderr:\n{err}"));
    (st.code().unwrap(), v)
}

/// (endpoint, kind, count) of every report row.
fn mix(v: &Value) -> Vec<(String, String, u64)> {
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["endpoint"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Sum of `count` of the rows whose statuses include `status`.
fn status_count(v: &Value, status: &str) -> f64 {
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["statuses"][status].as_f64())
        .sum()
}

/// The same seed sends the same mix as `first` (seed 11); another seed
/// another one.
fn the_seed_decides_the_mix(m: &str, srv: &Server, first: &Value, dir: &std::path::Path) {
    let (_, again) = chaos_json(m, &srv.base, &["--requests", "60", "--seed", "11"], dir);
    assert_eq!(mix(&again), mix(first));
    let (_, other) = chaos_json(m, &srv.base, &["--requests", "60", "--seed", "12"], dir);
    assert_ne!(mix(&other), mix(first));
}

/// Text mode: the table and the summary, and no progress bar when stdout is a pipe.
fn text_mode_prints_the_table_and_no_progress_bar(m: &str, srv: &Server, dir: &std::path::Path) {
    let (st, out, err) = run(
        &[
            "chaos",
            "-m",
            m,
            "--target",
            &srv.base,
            "--requests",
            "20",
            "--seed",
            "3",
        ],
        dir,
    );
    assert!(st.success(), "{out}\n{err}");
    for needle in [
        "ENDPOINT",
        "STATUSES",
        "Latency (ms): min",
        "p99",
        "Good requests: ",
        "PASS",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert!(
        !out.contains('\r') && !out.contains("\x1b["),
        "progress bar drawn to a pipe:\n{out}"
    );
    assert!(
        !err.contains('\r') && !err.contains("\x1b["),
        "progress bar drawn:\n{err}"
    );
}

#[test]
fn chaos_counts_exactly_what_it_sent_and_passes() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let m = manifest.to_str().unwrap();
    let srv = Server::start(&manifest, dir.path());

    let scrape_before = get(srv.url("/metrics"));
    let before = metric_sum(&scrape_before, "http_requests_total", &[]);
    let err_before = metric_sum(&scrape_before, "http_requests_total", &["status=\"500\""]);
    let (code, v) = chaos_json(
        m,
        &srv.base,
        &["--requests", "60", "--concurrency", "3", "--seed", "11"],
        dir.path(),
    );
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["passed"], true);
    assert_eq!(v["sent"], 60);
    assert_eq!(v["planned"], 60);
    let sent = v["sent"].as_f64().unwrap();
    assert!(v["bad"]["total"].as_u64().unwrap() > 0 && v["good"]["total"].as_u64().unwrap() > 0);
    assert_eq!(v["good"]["success_rate"], 1.0);
    assert_eq!(v["unexpected"], serde_json::json!([]));
    for k in ["min", "p50", "p95", "p99", "max"] {
        assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0, "{k}");
    }

    let scrape_after = get(srv.url("/metrics"));
    let after = metric_sum(&scrape_after, "http_requests_total", &[]);
    // The first scrape is counted once it has answered, so it shows up in
    // the second one; the second one is not yet counted in its own body.
    assert_eq!(
        after - before,
        sent + 1.0,
        "http_requests_total grew by {}",
        after - before
    );
    // The 500s the server counted are exactly the 500s chaos saw.
    let err_after = metric_sum(&scrape_after, "http_requests_total", &["status=\"500\""]);
    assert_eq!(err_after - err_before, status_count(&v, "500"));
    assert!(
        status_count(&v, "500") > 0.0,
        "the seed draws some /error requests"
    );
    let unmatched = metric_sum(
        &scrape_after,
        "http_requests_total",
        &["path=\"unmatched\""],
    );
    assert_eq!(unmatched, status_count(&v, "404"));

    the_seed_decides_the_mix(m, &srv, &v, dir.path());
    // And the counter kept up with both runs.
    let last = requests_total(&srv);
    assert_eq!(last - after, 120.0 + 1.0);

    text_mode_prints_the_table_and_no_progress_bar(m, &srv, dir.path());
    assert!(srv.stop().success());
}

#[test]
fn an_unexpected_status_fails_the_run() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    // Chaos reads a manifest that says /error answers 503; the server says 500.
    let lying = dir.path().join("lying.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replacen(
        "handler: fault\n",
        "handler: fault\n    options: { status: 503 }\n",
        1,
    );
    std::fs::write(&lying, text).unwrap();
    let (code, v) = chaos_json(
        lying.to_str().unwrap(),
        &srv.base,
        &["--requests", "40", "--bad-ratio", "1", "--seed", "5"],
        dir.path(),
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["passed"], false);
    let unexpected = v["unexpected"].as_array().unwrap();
    assert!(!unexpected.is_empty());
    assert!(unexpected
        .iter()
        .all(|u| u["expected"] == "503" && u["got"] == "500" && u["kind"] == "server_error"));
    assert_eq!(unexpected.len() as f64, status_count(&v, "500"));
    assert!(srv.stop().success());
}

#[test]
fn an_unreachable_target_stops_with_a_clear_message() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    // A port that was free a moment ago and has nothing listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("http://127.0.0.1:{port}");
    let (st, out, err) = run(
        &[
            "chaos",
            "-m",
            manifest.to_str().unwrap(),
            "--target",
            &target,
        ],
        dir.path(),
    );
    assert_eq!(st.code(), Some(2), "{out}\n{err}");
    assert!(
        err.contains("cannot reach") && err.contains(&target),
        "{err}"
    );
    assert!(
        out.is_empty(),
        "no report for a run that never started: {out}"
    );
    // Bad arguments are refused the same way.
    let (st, _, err) = run(
        &[
            "chaos",
            "-m",
            manifest.to_str().unwrap(),
            "--target",
            &target,
            "--bad-ratio",
            "1.5",
        ],
        dir.path(),
    );
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("--bad-ratio"), "{err}");
}

/// `--rate N --duration D`: sustained traffic, N per second for D, paced
/// (the last request cannot leave before D has nearly passed), every one
/// counted by the server; and which manifest was used is said.
#[test]
fn sustained_traffic_is_paced_at_its_rate() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let m = manifest.to_str().unwrap();
    let srv = Server::start(&manifest, dir.path());
    let before = requests_total(&srv);
    let started = std::time::Instant::now();
    let mut args = vec!["chaos", "--manifest", m, "--target"];
    let target = srv.url("");
    args.push(&target);
    args.extend(["--json", "--seed", "7", "--rate", "40", "--duration", "2s"]);
    let (st, out, err) = run(&args, dir.path());
    let took = started.elapsed();
    assert!(st.success(), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let sent: u64 = mix(&v).iter().map(|r| r.2).sum();
    assert_eq!(sent, 80, "40/s for 2s");
    // Request 79 leaves at 79/40 s = 1.975 s after the first.
    assert!(
        took.as_secs_f64() >= 1.9,
        "80 requests at 40/s took {took:?}"
    );
    // Plus the first /metrics request, counted once it was answered.
    assert_eq!(requests_total(&srv) - before, 81.0);
    let path = std::fs::canonicalize(&manifest).unwrap();
    assert!(
        err.contains(&format!("telltale: manifest {}", path.display())),
        "{err}"
    );
    // Both a count and a rate with a duration is refused.
    let (st, _, err) = run(
        &[
            "chaos",
            "--manifest",
            m,
            "--requests",
            "5",
            "--rate",
            "5",
            "--duration",
            "1s",
        ],
        dir.path(),
    );
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("not both"), "{err}");
}

/// Without --manifest (run from a folder with no manifest.yaml, so the
/// embedded demo is used), chaos checks the target's /openapi.json: another
/// API is refused (exit 2, both differences named); the same API passes.
#[test]
fn without_a_manifest_chaos_refuses_a_server_with_another_api() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "endpoints:\n",
        "endpoints:\n  - path: /orders\n    summary: Orders\n    handler: info\n",
    );
    let other = Server::start(&manifest, dir.path());
    let elsewhere = tempdir();
    let target = other.url("");
    let (st, out, err) = run(
        &["chaos", "--target", &target, "--requests", "5"],
        elsewhere.path(),
    );
    assert_eq!(st.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("serves another API than the manifest compiled into this binary"),
        "{err}"
    );
    assert!(err.contains("only on the server: [GET /orders]"), "{err}");

    let same_dir = tempdir();
    let same = copy_default_manifest(same_dir.path());
    let demo = Server::start(&same, same_dir.path());
    let target = demo.url("");
    let (st, out, err) = run(
        &[
            "chaos",
            "--target",
            &target,
            "--requests",
            "20",
            "--seed",
            "3",
        ],
        elsewhere.path(),
    );
    assert!(st.success(), "{out}{err}");
}

#[test]
fn a_body_past_the_cap_fails_the_request_and_is_not_read() {
    // Every answer is a 200 with 100 MiB of body: past chaos's 16 MiB cap.
    const BODY: u64 = 100 << 20;
    let fake = fake_http::start(|_| fake_http::Answer::Stream(BODY));
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let (code, v) = chaos_json(
        manifest.to_str().unwrap(),
        &fake.base,
        &[
            "--requests",
            "4",
            "-c",
            "2",
            "--bad-ratio",
            "0",
            "--seed",
            "1",
        ],
        dir.path(),
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["passed"], false);
    let failed = v["failed_good"].as_array().unwrap();
    assert_eq!(failed.len(), 4, "{v:#}");
    for f in failed {
        let got = f["got"].as_str().unwrap();
        let url = format!("{}{}", fake.base, f["path"].as_str().unwrap());
        assert!(
            got.starts_with("200, then error: ")
                && got.contains("larger than 16 MiB")
                && got.contains(&url),
            "{got}"
        );
    }
    // Reading stopped at the cap: the server could not push the 400 MiB.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let written = fake.written.load(Ordering::Relaxed);
    assert!(written < 4 * BODY / 2, "wrote {written} bytes");
}

#[test]
fn an_openapi_document_past_the_cap_is_refused_with_its_url() {
    // The target's /openapi.json streams 100 MiB: past the 64 MiB cap.
    let fake = fake_http::start(|_| fake_http::Answer::Stream(100 << 20));
    let elsewhere = tempdir();
    let (st, out, err) = run(
        &["chaos", "--target", &fake.base, "--requests", "5"],
        elsewhere.path(),
    );
    assert_eq!(st.code(), Some(2), "{out}{err}");
    let url = format!("{}/openapi.json", fake.base);
    assert!(
        err.contains(&url) && err.contains("larger than 64 MiB"),
        "{err}"
    );
}
