//! Hostile conditions: a broken console (a full device, a closed pipe, a
//! pipe nobody reads) keeps the file log and the server. The README's
//! "Reliability" table points here.
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
        .filter(|l| l["logger"] == "telltale::logging" && l["output"] == "console")
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
