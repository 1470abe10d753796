//! `telltale verify` against a real Prometheus scraping the real server:
//! every panel has data; a manifest whose job this Prometheus does not
//! scrape, and a panel whose labels match nothing, are empty with the
//! reason named (exit 1); an unreachable Prometheus is exit 2.

mod common;
mod render_support;
use common::prom::*;
use common::*;
use render_support::*;
use serde_json::Value;
use std::path::Path;

fn verify(manifest: &std::path::Path, prom: &str, json: bool) -> (i32, String, String) {
    let mut args = vec![
        "verify",
        "-m",
        manifest.to_str().unwrap(),
        "--prometheus",
        prom,
    ];
    if json {
        args.push("--json");
    }
    let (st, out, err) = run(&args, manifest.parent().unwrap());
    (st.code().unwrap_or(-1), out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_every_panel_with_data_and_names_why_others_are_empty() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let srv = Server::start(&base, dir.path());
    let (manifest, out) = render_for_test_server(&base, dir.path(), srv.port);
    let prom = Prometheus::start(&out.join("prometheus/prometheus.yml"), dir.path()).await;
    wait_for_scrape(&prom).await;
    let c = reqwest::Client::new();
    for _ in 0..10 {
        for p in ["/products", "/users", "/nope", "/error"] {
            c.get(srv.url(p)).send().await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    // The same wait the end-to-end test uses: every panel has data.
    panels_have_data_and_rules_evaluate(
        &prom,
        &out.join("grafana/dashboards/ecommerce-api.json"),
        &out.join("prometheus/alerts.yml"),
    )
    .await;

    let (code, text, err) = verify(&manifest, &prom.base, false);
    assert_eq!(code, 0, "{text}{err}");
    let m: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    for p in m["dashboard"]["panels"].as_sequence().unwrap() {
        if p["datasource"] == "prometheus" {
            let title = p["title"].as_str().unwrap();
            let row = text
                .lines()
                .find(|l| l.starts_with("panel") && l.contains(title))
                .unwrap_or_else(|| panic!("no row for {title}:\n{text}"));
            assert!(row.contains(" data "), "{row}");
        }
    }
    assert!(text.contains("rule "), "rules are checked too:\n{text}");

    let (code, json, _) = verify(&manifest, &prom.base, true);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["passed"], true);
    let rows = report["queries"].as_array().unwrap();
    assert!(rows
        .iter()
        .filter(|r| r["kind"] == "panel" && r["backend"] == "prometheus")
        .all(|r| r["result"] == "data" && r["series"].as_u64().unwrap() >= 1));
    // The dashboard variables were filled for this service.
    assert!(
        rows.iter()
            .all(|r| !r["query"].as_str().unwrap().contains('$')),
        "{json}"
    );

    a_job_this_prometheus_does_not_scrape_is_named(dir.path(), &manifest, &prom.base);
    a_label_mismatch_is_named(dir.path(), &manifest, &prom.base);
}

/// A manifest whose job this Prometheus does not scrape: every panel is
/// empty, and says why.
fn a_job_this_prometheus_does_not_scrape_is_named(dir: &Path, manifest: &Path, prom: &str) {
    let other = dir.join("other.yaml");
    edit_manifest(manifest, &other, |v| {
        *at(v, &["service", "name"]) = "billing-api".into();
    });
    let (code, json, _) = verify(&other, prom, true);
    assert_eq!(code, 1, "{json}");
    let report: Value = serde_json::from_str(&json).unwrap();
    let panels: Vec<&Value> = report["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["kind"] == "panel" && r["backend"] == "prometheus" && r["name"] != "Targets Up"
        })
        .collect();
    assert!(!panels.is_empty());
    for r in &panels {
        assert_eq!(r["result"], "empty", "{r}");
        assert!(
            r["reason"].as_str().unwrap().starts_with("job not scraped"),
            "{r}"
        );
    }
}

/// A panel whose label matcher selects nothing is empty by a label
/// mismatch; the others keep their data.
fn a_label_mismatch_is_named(dir: &Path, manifest: &Path, prom: &str) {
    let mismatch = dir.join("mismatch.yaml");
    edit_manifest(manifest, &mismatch, |v| {
        let panels = at(v, &["dashboard", "panels"]).as_sequence_mut().unwrap();
        let mut p = panels[0].clone();
        p["title"] = "Brewed Requests".into();
        p["targets"][0]["expr"] =
            r#"sum(rate(http_requests_total{job=~"$job", method="BREW"}[$__rate_interval]))"#
                .into();
        panels.push(p);
    });
    let (code, text, _) = verify(&mismatch, prom, false);
    assert_eq!(code, 1, "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("Brewed Requests"))
        .unwrap();
    assert!(
        row.contains("empty") && row.contains("label mismatch"),
        "{row}"
    );
    let others_ok = text
        .lines()
        .filter(|l| l.starts_with("panel") && !l.contains("Brewed"))
        .all(|l| l.contains(" data ") || l.contains(" skipped "));
    assert!(others_ok, "{text}");
}

#[test]
fn an_unreachable_prometheus_is_exit_2() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let port = free_port();
    let (code, out, err) = verify(&manifest, &format!("http://127.0.0.1:{port}"), false);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("cannot reach Prometheus"), "{err}");
    let (code, _, err) = verify(&manifest, "ftp://x", false);
    assert_eq!(code, 2);
    assert!(err.contains("--prometheus"), "{err}");
}
