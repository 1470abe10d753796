//! Hostile conditions, one test (or a few) per defect of the hardening
//! issue: a broken console, an amplifying `/grafana/query`, a render that
//! would delete what it did not write. The README's "Reliability" table
//! points here.
mod common;
use common::*;
use std::process::Stdio;

/// Serves `n` requests on 8 connections, checking each answers 200.
async fn load(srv: &Server, n: usize) {
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), srv.url("/products"));
            tokio::spawn(async move {
                for _ in 0..n / 8 {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Runs `n` requests against a server whose stderr is `stderr`, then checks
/// that the file log has every request line and one report of the console's
/// failure, that the failure is counted, that the server stays ready and
/// that SIGTERM stops it cleanly.
async fn console_failure_keeps_the_file_log(stderr: Stdio, close_pipe: bool, n: usize) {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let (srv, pipe) = Server::start_stdio(&manifest, dir.path(), &[], stderr);
    if close_pipe {
        drop(pipe);
    } else {
        // Held open and never read: the pipe fills and the reader is stuck.
        std::mem::forget(pipe);
    }
    load(&srv, n).await;
    let health = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reqwest::get(srv.url("/ready")),
    )
    .await
    .expect("/ready answers at once")
    .unwrap();
    assert_eq!(health.status(), 200, "still ready");
    // A stuck reader fails a write only after console::PATIENCE (1 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let metrics = get_text(&srv.url("/metrics")).await;
        let errors = metric_sum(
            &metrics,
            "telltale_log_write_errors_total",
            &["output=\"console\""],
        );
        if errors >= 1.0 {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "console errors never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(metric_sum(&metrics, "telltale_log_writer_up", &[]), 1.0);
    assert!(srv.stop().success(), "SIGTERM stops it cleanly");
    let lines = log_lines(dir.path());
    let requests = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::http")
        .count();
    // The /ready and /metrics requests above are logged too.
    let extra = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::http" && l["path"] != "/products")
        .count();
    assert!(extra >= 2);
    assert_eq!(
        requests,
        n / 8 * 8 + extra,
        "every request line reached the file"
    );
    let reports: Vec<_> = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::internals::logging" && l["output"] == "console")
        .collect();
    assert_eq!(reports.len(), 1, "the console's failure is reported once");
    assert_eq!(reports[0]["level"], "error");
}

#[tokio::test]
async fn a_full_console_device_keeps_the_file_log_and_the_server() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    console_failure_keeps_the_file_log(full.into(), false, 4000).await;
}

#[tokio::test]
async fn a_closed_console_pipe_keeps_the_file_log_and_the_server() {
    console_failure_keeps_the_file_log(Stdio::piped(), true, 4000).await;
}

#[tokio::test]
async fn a_console_nobody_reads_keeps_the_file_log_and_the_server() {
    // 64 KiB of pipe buffer hold about 300 console lines.
    console_failure_keeps_the_file_log(Stdio::piped(), false, 2000).await;
}

/// Resident memory of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

async fn post_query(
    client: &reqwest::Client,
    srv: &Server,
    body: String,
) -> (u16, serde_json::Value) {
    let r = client
        .post(srv.url("/grafana/query"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let len = r.content_length();
    let bytes = r.bytes().await.unwrap();
    assert!(
        bytes.len() < 8 << 20,
        "{} bytes answered ({len:?})",
        bytes.len()
    );
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// One request may not cost gigabytes: each amplifier of a 1 MB body is
/// refused with a JSON error naming its limit, and memory stays put.
#[tokio::test]
async fn grafana_query_amplifiers_are_refused_and_memory_stays_bounded() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let client = reqwest::Client::new();
    let range = r#""range":{"from":"2020-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}"#;
    let repeat = |one: &str, n: usize| vec![one; n].join(",");
    let before = rss(srv.pid());

    // 40k series targets in a 1 MB body (583 MB of answer before the fix).
    let series = format!(
        r#"{{{range},"targets":[{}]}}"#,
        repeat(r#"{"target":"request_rate"}"#, 40_000)
    );
    assert!(series.len() < 1 << 20);
    for _ in 0..5 {
        let (status, body) = post_query(&client, &srv, series.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], "targets");
        let msg = body["message"].as_str().unwrap();
        assert!(
            msg.contains("max_targets") && msg.contains("40000"),
            "{msg}"
        );
    }

    // Table targets, and one table target naming its columns 30k times.
    let tables = format!(
        r#"{{{range},"targets":[{}]}}"#,
        repeat(r#"{"target":"low_stock_products"}"#, 33)
    );
    let (status, body) = post_query(&client, &srv, tables).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("max_targets"));
    let columns = format!(
        r#"{{{range},"targets":[{{"target":"low_stock_products","payload":{{"columns":[{}]}}}}]}}"#,
        repeat(r#""name""#, 30_000)
    );
    let (status, body) = post_query(&client, &srv, columns).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "targets[0].payload.columns");
    assert!(body["message"].as_str().unwrap().contains("max_columns"));

    // Within the limits, still answered.
    let (status, body) = post_query(
        &client,
        &srv,
        format!(
            r#"{{{range},"targets":[{}]}}"#,
            repeat(r#"{"target":"request_rate"}"#, 32)
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 32);

    let after = rss(srv.pid());
    assert!(
        after < before + (64 << 20),
        "RSS went from {before} to {after} bytes"
    );
    assert!(srv.stop().success());
}

/// Points default to `datasource.limits.default_max_points` without
/// `maxDataPoints`, and an answer over `max_response_bytes` is a 413.
#[tokio::test]
async fn grafana_query_points_and_response_size_are_capped() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "  sample_interval: 5s\n",
        "  sample_interval: 100ms\n  limits: { default_max_points: 3, max_response_bytes: 600 }\n",
    );
    let srv = Server::start(&manifest, dir.path());
    let client = reqwest::Client::new();
    // Let the sampler fill more than three points.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let range = r#""range":{"from":"2020-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}"#;
    let (status, body) = post_query(
        &client,
        &srv,
        format!(r#"{{{range},"targets":[{{"target":"cpu_percent"}}]}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let points = body[0]["datapoints"].as_array().unwrap().len();
    assert!((1..=3).contains(&points), "{points} points");
    let (status, body) = post_query(
        &client,
        &srv,
        format!(
            r#"{{{range},"targets":[{}]}}"#,
            [r#"{"target":"low_stock_products"}"#; 10].join(",")
        ),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("max_response_bytes"));
    assert!(srv.stop().success());
}

/// `render --out` the project folder itself (manifest and data inside), a
/// folder of the user's, or one whose sibling matches `DIR.tmp-*`: exit 2
/// for the first two with nothing touched, and the sibling survives.
#[test]
fn render_never_deletes_what_it_did_not_write() {
    let dir = tempdir();
    let project = dir.path().join("project");
    let manifest = copy_default_manifest(&project);
    let m = manifest.to_str().unwrap();
    let files_of = |d: &std::path::Path| {
        let mut v: Vec<_> = walkdir(d);
        v.sort();
        v
    };
    let before = files_of(&project);

    let (st, _, err) = run(&["render", "--manifest", m, "--out", "."], &project);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("manifest.yaml"), "{err}");
    assert_eq!(files_of(&project), before, "nothing touched");

    let (st, _, err) = run(&["render", "--manifest", m, "--out", "data"], &project);
    assert_eq!(st.code(), Some(2), "{err}");
    assert_eq!(files_of(&project), before);

    let mine = project.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("thesis.tex"), "years of work").unwrap();
    let (st, _, err) = run(&["render", "--manifest", m, "--out", "mine"], &project);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("thesis.tex") && err.contains("nothing was touched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("thesis.tex")).unwrap(),
        "years of work"
    );

    // A render into a new folder, then again with a look-alike sibling.
    let (st, _, err) = run(&["render", "--manifest", m, "--out", "gen"], &project);
    assert!(st.success(), "{err}");
    let sibling = project.join("gen.tmp-keep");
    std::fs::create_dir(&sibling).unwrap();
    std::fs::write(sibling.join("backup.tar"), "precious").unwrap();
    let (st, _, err) = run(&["render", "--manifest", m, "--out", "gen"], &project);
    assert!(st.success(), "{err}");
    assert_eq!(
        std::fs::read_to_string(sibling.join("backup.tar")).unwrap(),
        "precious"
    );
    assert!(project.join("gen/.telltale-render").exists());
}

/// Every file under `d`, relative.
fn walkdir(d: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(d).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// The compose file publishes the unauthenticated Prometheus (lifecycle
/// API on), Loki and the shipper, and Grafana, on 127.0.0.1 unless the
/// manifest says `publish: all`; Grafana keeps its login either way.
#[test]
fn compose_publishes_the_stack_on_loopback_unless_told_otherwise() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let ports = |out: &str| -> Vec<String> {
        let (st, o, e) = run(
            &["render", "--manifest", m.to_str().unwrap(), "--out", out],
            dir.path(),
        );
        assert!(st.success(), "{o}{e}");
        let text =
            std::fs::read_to_string(dir.path().join(out).join("docker-compose.yml")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mut all = Vec::new();
        for (_, svc) in v["services"].as_mapping().unwrap() {
            for p in svc["ports"].as_sequence().unwrap() {
                all.push(p.as_str().unwrap().to_string());
            }
            let env = serde_yaml::to_string(&svc["environment"]).unwrap();
            assert!(!env.contains("GF_AUTH_ANONYMOUS_ENABLED: 'true'"), "{env}");
        }
        all.sort();
        all
    };
    let default = ports("a");
    // Prometheus, Loki, the shipper, Grafana, and Tempo's API and OTLP receiver.
    assert_eq!(default.len(), 6, "{default:?}");
    assert!(
        default.iter().all(|p| p.starts_with("127.0.0.1:")),
        "{default:?}"
    );
    edit(
        &m,
        "  shipper: alloy\n",
        "  shipper: alloy\n  publish: all\n  publish_grafana: all\n",
    );
    let open = ports("b");
    assert!(open.iter().all(|p| p.starts_with("0.0.0.0:")), "{open:?}");
}

/// `validate` on `m`: (exit code, stderr).
fn validate(m: &std::path::Path, dir: &std::path::Path) -> (Option<i32>, String) {
    let (st, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir);
    (st.code(), err)
}

/// A FIFO, a directory or an oversized file given as `data:` is a located
/// error at once; nothing hangs and nothing is read into memory.
#[test]
fn data_files_are_regular_files_within_the_limit() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let fifo = dir.path().join("data/fifo.yaml");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    edit(&m, "data: data/users.yaml", "data: data/fifo.yaml");
    let started = std::time::Instant::now();
    let (code, err) = validate(&m, dir.path());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "validate hung on a FIFO"
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("endpoints[2].data: data file") && err.contains("is not a regular file"),
        "{err}"
    );
    // Located at the field's value: file:line:column.
    let line = std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .position(|l| l.contains("data/fifo.yaml"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("manifest.yaml:{line}:")), "{err}");
    // serve refuses the same way, without hanging.
    let (st, _, err) = run(
        &["serve", "--manifest", m.to_str().unwrap(), "--port", "0"],
        dir.path(),
    );
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("is not a regular file"), "{err}");

    edit(&m, "data: data/fifo.yaml", "data: data");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not a regular file"), "{err}");

    // Over the limit: the default (8 MiB), then a declared one.
    let big = dir.path().join("data/big.yaml");
    let item = "- {id: 1, name: padding padding padding padding padding padding padding}\n";
    std::fs::write(&big, item.repeat((9 << 20) / item.len())).unwrap();
    edit(&m, "data: data\n", "data: data/big.yaml\n");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("over service.data_limit_bytes (8388608)"),
        "{err}"
    );
    edit(
        &m,
        "  shutdown_timeout_seconds: 10\n",
        "  shutdown_timeout_seconds: 10\n  data_limit_bytes: 100\n",
    );
    edit(&m, "data: data/big.yaml", "data: data/users.yaml");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("over service.data_limit_bytes (100)"), "{err}");
}

/// An unbounded drain and a log directory serve could not write are
/// `validate` errors at their fields.
#[test]
fn validate_bounds_the_drain_and_checks_the_log_directory() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    edit(
        &m,
        "shutdown_timeout_seconds: 10",
        "shutdown_timeout_seconds: 18446744073709551615",
    );
    edit(&m, "  dir: logs\n", "  dir: manifest.yaml/logs\n");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "service.shutdown_timeout_seconds: 18446744073709551615 must be from 1 to 600 seconds"
        ),
        "{err}"
    );
    assert!(
        err.contains("logging.dir: manifest.yaml exists and is not a directory"),
        "{err}"
    );
    assert!(err.contains("2 errors"), "both in one run: {err}");
}

/// A server that cannot bind says so and never that it started; every
/// signal that ends a running one drains and flushes (SIGHUP reloads
/// instead: `tests/reload.rs`).
#[tokio::test]
async fn bind_failure_and_every_ending_signal_are_clean() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (st, out, err) = run(
        &[
            "serve",
            "--manifest",
            m.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port,
        ],
        dir.path(),
    );
    assert_eq!(st.code(), Some(1), "{out}{err}");
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
    assert!(
        !out.contains("listening") && !err.contains("listening"),
        "{out}{err}"
    );
    let logs: String = std::fs::read_dir(dir.path().join("logs"))
        .map(|d| {
            d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    assert!(!logs.contains("Server started"), "{logs}");
    drop(taken);

    for signal in ["TERM", "QUIT", "INT"] {
        let run_dir = dir.path().join(signal);
        let m = copy_default_manifest(&run_dir);
        let srv = Server::start(&m, &run_dir);
        for _ in 0..25 {
            assert_eq!(
                reqwest::get(srv.url("/products")).await.unwrap().status(),
                200
            );
        }
        let pid = srv.pid().to_string();
        let st = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "SIG{signal} did not stop the server"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let lines = log_lines(&run_dir);
        let requests = lines
            .iter()
            .filter(|l| l["logger"] == "telltale::http")
            .count();
        assert_eq!(requests, 25, "SIG{signal}: every request line flushed");
        assert!(
            lines.iter().any(|l| l["signal"] == format!("SIG{signal}")),
            "SIG{signal}: the drain is logged"
        );
        assert!(
            lines.last().unwrap()["message"] == "server stopped",
            "{:?}",
            lines.last()
        );
        drop(srv);
    }
}

/// CPU time (user + system) of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// 500 slowloris connections (headers never finished), a half-sent body
/// and an idle keep-alive: `/health` still answers at once, and each is
/// closed within its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_never_starve_the_server() {
    use std::io::{Read, Write};
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    edit(
        &m,
        "  shutdown_timeout_seconds: 10\n",
        "  shutdown_timeout_seconds: 10\n  limits: { header_timeout_seconds: 2, body_timeout_seconds: 2, idle_timeout_seconds: 3, max_connections: 1000 }\n",
    );
    let srv = Server::start(&m, dir.path());
    let addr = format!("127.0.0.1:{}", srv.port);
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        slow.push(s);
    }
    let mut body = std::net::TcpStream::connect(&addr).unwrap();
    body.write_all(b"POST /grafana/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"targets\":").unwrap();
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        reqwest::get(srv.url("/health")),
    )
    .await
    .expect("/health answers at once with 500 slowloris connections")
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));

    // All closed by the server within their deadlines (+ margin): a read sees EOF or a reset.
    let closed = |s: &mut std::net::TcpStream| {
        s.set_read_timeout(Some(std::time::Duration::from_secs(6)))
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue, // a response (408 or 200) before the close
            }
        }
    };
    for s in slow.iter_mut().step_by(50) {
        let t = closed(s);
        assert!(
            t < std::time::Duration::from_secs(5),
            "slowloris open after {t:?}"
        );
    }
    assert!(closed(&mut body) < std::time::Duration::from_secs(5));
    assert!(closed(&mut idle) < std::time::Duration::from_secs(6));
    let metrics = get_text(&srv.url("/metrics")).await;
    assert!(
        metric_sum(&metrics, "telltale_connections_timed_out_total", &[]) >= 502.0,
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("telltale_conn"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(srv.stop().success());
}

/// At the fd limit `accept` fails at once: the server backs off instead
/// of spinning a core, and serves again once connections close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_fd_limit_the_server_backs_off_and_recovers() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let srv = Server::start_with(&m, dir.path(), &[]);
    // Lower the running server's fd limit to what it has open plus a few.
    let open = std::fs::read_dir(format!("/proc/{}/fd", srv.pid()))
        .unwrap()
        .count();
    let st = std::process::Command::new("prlimit")
        .args([
            &format!("--pid={}", srv.pid()),
            &format!("--nofile={}", open + 8),
        ])
        .status()
        .expect("prlimit (util-linux)");
    assert!(st.success());
    let addr = format!("127.0.0.1:{}", srv.port);
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(std::net::TcpStream::connect(&addr).unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t0 = cpu_ticks(srv.pid());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let used = cpu_ticks(srv.pid()) - t0;
    // A spinning accept loop burns ~200 ticks in 2 s; backing off, almost none.
    assert!(used < 40, "{used} ticks of CPU in 2 s at the fd limit");
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            reqwest::get(srv.url("/health")),
        )
        .await;
        if matches!(&r, Ok(Ok(r)) if r.status() == 200) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no service after the connections closed: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let metrics = get_text(&srv.url("/metrics")).await;
    assert!(metric_sum(&metrics, "telltale_accept_errors_total", &[]) >= 1.0);
    assert!(srv.stop().success());
}

/// Requests hyper refuses before routing (414, 431, malformed 400) are
/// counted under the `unmatched` path and logged, one line each; a 100 KB
/// method is echoed cut, in the answer and in the log.
#[tokio::test]
async fn requests_refused_before_routing_are_counted_and_logged() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let port = srv.port;
    let unmatched = |text: &str| {
        parse_metrics(text)
            .iter()
            .filter(|(s, _)| {
                s.starts_with("http_requests_total{") && s.contains("path=\"unmatched\"")
            })
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    let before = unmatched(&get_text(&srv.url("/metrics")).await);

    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    assert!(raw(port, long_uri.as_bytes()).starts_with("HTTP/1.1 414"));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    assert!(raw(port, big_head.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(raw(port, b"GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400"));
    let method = "A".repeat(100_000);
    let answer = raw(
        port,
        format!("{method} /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 405"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(answer.len() < 1024, "{} bytes answered", answer.len());

    let after = unmatched(&get_text(&srv.url("/metrics")).await);
    assert_eq!(
        after - before,
        3.0,
        "the three refused requests are counted"
    );
    let text = get_text(&srv.url("/metrics")).await;
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("path=\"unmatched\"")
            && l.contains("method=\"GET\"")),
        "the method of a refused GET is kept"
    );
    assert!(srv.stop().success());

    let lines = log_lines(dir.path());
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("refused before routing"))
        })
        .collect();
    let statuses: Vec<u64> = refused
        .iter()
        .filter_map(|l| l["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![414, 431, 400], "{refused:?}");
    let longest = lines.iter().map(|l| l.to_string().len()).max().unwrap();
    assert!(longest < 4096, "a log line of {longest} bytes");
    let logged_method = lines
        .iter()
        .filter_map(|l| l["method"].as_str())
        .find(|m| m.starts_with("AAAA"))
        .expect("the long-method request is logged");
    assert!(logged_method.len() <= 32, "{logged_method}");
}
