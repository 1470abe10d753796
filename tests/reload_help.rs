//! A reload that changes only a metric's help text keeps the family and its
//! values; `/metrics` serves the new help.

mod common;

use common::{copy_default_manifest, edit, get_text, metric_sum, tempdir, Server};
use std::time::{Duration, Instant};

/// Waits until `telltale_config_reloads_total{result="success"}` is 1.
async fn await_reload(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = get_text(&server.url("/metrics")).await;
        let seen = metric_sum(
            &text,
            "telltale_config_reloads_total",
            &["result=\"success\""],
        );
        if seen >= 1.0 {
            return text;
        }
        assert!(Instant::now() < deadline, "no reload; {}", server.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reload_that_changes_only_help_keeps_the_counter_and_serves_the_new_help() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    for _ in 0..20 {
        let r = reqwest::get(srv.url("/products")).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let series = ["path=\"/products\"", "status=\"200\""];
    let before = get_text(&srv.url("/metrics")).await;
    let counted = metric_sum(&before, "http_requests_total", &series);
    assert_eq!(counted, 20.0, "{before}");
    edit(
        &manifest,
        "help: Total HTTP requests by method, route template and status.",
        "help: Every HTTP request, by method, route template and status.",
    );
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let after = await_reload(&srv).await;
    assert_eq!(
        metric_sum(&after, "http_requests_total", &series),
        counted,
        "the counter was reset by a help-only change"
    );
    assert!(
        after.contains(
            "# HELP http_requests_total Every HTTP request, by method, route template and status."
        ),
        "old help still served"
    );
    assert!(srv.stop().success());
}
