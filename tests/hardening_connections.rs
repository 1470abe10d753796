//! Hostile conditions on the wire: slow clients, the fd limit, requests
//! refused before routing. The README's "Reliability" table points here.
mod common;
use common::*;

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
