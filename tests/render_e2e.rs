//! End to end: the rendered Prometheus config, run by a real Prometheus
//! against the real server, gives every dashboard panel data and evaluates
//! every rule; and the user's flow (new endpoint + panel → re-render →
//! restart) works.

mod common;
mod render_support;
use common::prom::*;
use common::*;
use render_support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Good and bad requests: 2xx, 4xx and 5xx.
async fn traffic(srv: &Server, rounds: usize) {
    let c = reqwest::Client::new();
    for _ in 0..rounds {
        for (path, want) in [
            ("/products", 200),
            ("/users", 200),
            ("/health", 200),
            ("/", 200),
            ("/products?limit=abc", 400),
            ("/nope", 404),
            ("/error", 500),
        ] {
            let s = c.get(srv.url(path)).send().await.unwrap().status();
            assert_eq!(s.as_u16(), want, "{path}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_has_data_and_every_rule_evaluates_in_a_real_prometheus() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let srv = Server::start(&base, dir.path());

    // Render from a copy of the manifest pointed at this server, scraped every second.
    let (manifest, out) = render_for_test_server(&base, dir.path(), srv.port);
    let prom = Prometheus::start(&out.join("prometheus/prometheus.yml"), dir.path()).await;

    // Prometheus scrapes a few seconds after it is ready; send traffic once it
    // has seen the server, so that every counter increases between scrapes.
    wait_for_scrape(&prom).await;
    traffic(&srv, 20).await;

    let queries = panels_have_data_and_rules_evaluate(
        &prom,
        &out.join("grafana/dashboards/ecommerce-api.json"),
        &out.join("prometheus/alerts.yml"),
    )
    .await;
    assert!(queries >= 7, "{queries} panel queries");
    // The real traffic had 5xx: the SLO error ratio is recorded above zero,
    // the fast burn-rate alert fires (no `for`), and the 5xx-ratio alert is pending.
    let ratio = prom
        .query(r#"slo:sli_error:ratio_rate5m{slo="availability"}"#)
        .await
        .unwrap();
    let value: f64 = ratio[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        value > 0.05 && value < 0.5,
        "availability error ratio {value}"
    );
    let latency = prom
        .query(r#"slo:sli_error:ratio_rate5m{slo="latency"}"#)
        .await
        .unwrap();
    assert_eq!(latency.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = prom.api("/api/v1/alerts", &[]).await;
        let state = |name: &str| {
            alerts["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == name)
                .map(|a| a["state"].as_str().unwrap().to_string())
        };
        let page = state("AvailabilityErrorBudgetBurnPage");
        let ratio = state("HighErrorRatio");
        if page.as_deref() == Some("firing") && ratio.as_deref() == Some("pending") {
            assert_eq!(state("TargetDown"), None);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts: page={page:?} 5xx-ratio={ratio:?}\n{alerts}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The shippers' glob matches the log files the server really wrote.
    let m = yaml(&manifest);
    let glob = format!("{}.*log", m["logging"]["file"].as_str().unwrap());
    let logs: Vec<String> =
        std::fs::read_dir(dir.path().join(m["logging"]["dir"].as_str().unwrap()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    assert!(!logs.is_empty());
    for f in &logs {
        assert!(glob_match(&glob, f), "{f} does not match {glob}");
    }
    drop(prom);
    assert!(srv.stop().success());
}

#[tokio::test]
async fn a_new_endpoint_and_panel_need_only_a_manifest_edit() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let out = dir.path().join("generated");

    // Before: render and serve the original manifest.
    render_ok(&manifest, &out);
    let srv = Server::start(&manifest, dir.path());
    let r = reqwest::get(srv.url("/inventory")).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(srv.stop().success());
    let old = snapshot(&out);

    // The user's edit: one endpoint of an existing kind, one panel.
    let expr = r#"sum(rate(http_requests_total{path="/inventory", job=~"$job", instance=~"$instance"}[$__rate_interval]))"#;
    edit_manifest(&manifest.clone(), &manifest, |v| {
        at(v, &["endpoints"]).as_sequence_mut().unwrap().push(
            serde_yaml::from_str(
                "{path: /inventory, method: GET, summary: Inventory, tags: [catalog], handler: collection, data: data/products.yaml, options: {default_limit: 5, max_limit: 50}}",
            )
            .unwrap(),
        );
        let mut panel: serde_yaml::Value = serde_yaml::from_str(
            "{title: Inventory Request Rate, type: timeseries, datasource: prometheus, unit: reqps, thresholds: [{color: green}]}",
        )
        .unwrap();
        panel["targets"] = serde_yaml::from_str(&format!("[{{expr: '{expr}'}}]")).unwrap();
        at(v, &["dashboard", "panels"])
            .as_sequence_mut()
            .unwrap()
            .push(panel);
    });

    // The committed output is now stale, and --check says where.
    let (st, _, err) = render(&manifest, &out, &["--check"]);
    assert_eq!(st.code(), Some(1));
    assert!(
        err.contains("differs: grafana/dashboards/ecommerce-api.json"),
        "{err}"
    );
    assert_eq!(snapshot(&out), old);

    // Re-render: the panel is in the dashboard.
    render_ok(&manifest, &out);
    let dash = json(&out.join("grafana/dashboards/ecommerce-api.json"));
    let panel = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Inventory Request Rate")
        .expect("new panel in the dashboard")
        .clone();
    assert_eq!(panel["targets"][0]["expr"], expr);
    assert_eq!(panel["fieldConfig"]["defaults"]["unit"], "reqps");

    // Restart: the endpoint serves, and its series appears in /metrics.
    let srv = Server::start(&manifest, dir.path());
    let r = reqwest::get(srv.url("/inventory?limit=2")).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("stock"), "{body}");
    let metrics = get_text(&srv.url("/metrics")).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "http_requests_total",
            &["path=\"/inventory\"", "status=\"200\""]
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket{method=\"GET\",path=\"/inventory\"")
    );
    assert!(srv.stop().success());
    let (st, _, err) = render(&manifest, &out, &["--check"]);
    assert!(st.success(), "{err}");
}
