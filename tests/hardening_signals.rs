//! Hostile conditions: a port already taken, and every signal that ends a
//! running server. The README's "Reliability" table points here.
mod common;
use common::*;

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
