//! `telltale verify` on the panels that show exemplars, against a real
//! Prometheus with exemplar storage scraping the real server: the latency
//! panel (over the histogram's `_bucket`) counts the exemplars of the
//! sampled requests; a panel over a route that only unsampled requests
//! reached has data and no exemplars; panels over other series show none
//! (`-`). Exemplars are reported, never a failure.

mod common;
mod render_support;
use common::prom::*;
use common::*;
use render_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The stack rendered for the test server, with a latency panel over
/// `/users` added (as `verify.yaml`). Returns the manifest and the stack.
fn render_with_a_users_latency_panel(base: &Path, dir: &Path, port: u16) -> (PathBuf, PathBuf) {
    let (rendered, out) = render_for_test_server(base, dir, port);
    let manifest = dir.join("verify.yaml");
    edit_manifest(&rendered, &manifest, |v| {
        let panels = at(v, &["dashboard", "panels"]).as_sequence_mut().unwrap();
        let mut p = panels[0].clone();
        p["title"] = "Users Latency Buckets".into();
        p["targets"][0]["expr"] = r#"sum by (le) (rate(http_request_duration_seconds_bucket{job=~"$job", path="/users"}[$__rate_interval]))"#.into();
        panels.push(p);
    });
    (manifest, out)
}

/// Ten requests to /products sampled by their caller, ten to /users not.
async fn sampled_products_and_unsampled_users(srv: &Server) {
    let c = reqwest::Client::new();
    for i in 0..10u64 {
        c.get(srv.url("/products"))
            .header(
                "traceparent",
                format!("00-{:032x}-{:016x}-01", 0xfeed_0000 + i, i + 1),
            )
            .send()
            .await
            .unwrap();
        c.get(srv.url("/users"))
            .header(
                "traceparent",
                format!("00-{:032x}-00000000000000cc-00", 0xdead_0000 + i),
            )
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `verify --json`, repeated (at most 60 s) until a panel has exemplars
/// and none is empty; it must pass.
async fn verify_report(manifest: &Path, prom: &Prometheus, dir: &Path) -> Value {
    let verify_json = || {
        let (st, out, err) = run(
            &[
                "verify",
                "-m",
                manifest.to_str().unwrap(),
                "--prometheus",
                &prom.base,
                "--json",
            ],
            dir,
        );
        (st.code(), out, err)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, json, err) = verify_json();
        let report: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {err}"));
        let done = report["counts"]["with_exemplars"].as_u64() >= Some(1)
            && report["counts"]["empty_panels"] == 0;
        if done || Instant::now() > deadline {
            assert_eq!(code, Some(0), "{json}{err}");
            break report;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The latency panels show exemplars (p95 has some, /users none), other
/// panels and the rules show none; the counts agree. Returns how many
/// panel queries show exemplars.
fn the_report_counts_the_exemplars_of_the_panels_that_show_them(report: &Value) -> u64 {
    let rows = report["queries"].as_array().unwrap();
    let row = |title: &str| {
        rows.iter()
            .find(|r| r["name"] == title)
            .unwrap_or_else(|| panic!("no row {title}: {report:#}"))
    };
    let p95 = row("Request Duration p95");
    assert_eq!(p95["shows_exemplars"], true, "{p95}");
    assert!(p95["exemplars"].as_u64().unwrap() >= 1, "{p95}");
    let users = row("Users Latency Buckets");
    assert_eq!(users["result"], "data", "{users}");
    assert_eq!(users["shows_exemplars"], true);
    assert_eq!(users["exemplars"], 0, "only unsampled requests: {users}");
    let rate = row("HTTP Request Rate");
    assert_eq!(rate["shows_exemplars"], false, "{rate}");
    assert!(rate["exemplars"].is_null());
    assert!(rows
        .iter()
        .filter(|r| r["kind"] != "panel")
        .all(|r| r["shows_exemplars"] == false));
    let counts = &report["counts"];
    let showing = rows.iter().filter(|r| r["shows_exemplars"] == true).count() as u64;
    assert_eq!(counts["exemplar_panels"].as_u64(), Some(showing));
    assert_eq!(counts["with_exemplars"].as_u64(), Some(showing - 1));
    showing
}

/// The table: an `exemplars` column, and the count in the summary.
fn the_table_has_an_exemplars_column(manifest: &Path, prom: &Prometheus, dir: &Path, showing: u64) {
    let (_, text, _) = run(
        &[
            "verify",
            "-m",
            manifest.to_str().unwrap(),
            "--prometheus",
            &prom.base,
        ],
        dir,
    );
    let header = text.lines().find(|l| l.starts_with("kind")).unwrap();
    assert!(header.contains("exemplars"), "{text}");
    let p95_line = text
        .lines()
        .find(|l| l.contains("Request Duration p95"))
        .unwrap();
    // kind, name (3 words), result, series, exemplars.
    let cells: Vec<&str> = p95_line.split_whitespace().collect();
    assert!(
        cells.len() >= 7 && cells[6].parse::<u64>().is_ok_and(|x| x >= 1),
        "{p95_line}"
    );
    assert!(
        text.contains(&format!(
            "exemplars: {} of {showing} panel queries that show them have some",
            showing - 1
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_counts_the_exemplars_of_the_panels_that_show_them() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    common::export_to(&base, "http://127.0.0.1:9");
    let srv = Server::start(&base, dir.path());
    let (manifest, out) = render_with_a_users_latency_panel(&base, dir.path(), srv.port);
    let prom = Prometheus::start_with(
        &out.join("prometheus/prometheus.yml"),
        dir.path(),
        &["--enable-feature=exemplar-storage"],
    )
    .await;
    wait_for_scrape(&prom).await;
    sampled_products_and_unsampled_users(&srv).await;

    let report = verify_report(&manifest, &prom, dir.path()).await;
    let showing = the_report_counts_the_exemplars_of_the_panels_that_show_them(&report);
    the_table_has_an_exemplars_column(&manifest, &prom, dir.path(), showing);
}
