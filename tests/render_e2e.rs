//! End to end: the rendered Prometheus config, run by a real Prometheus
//! against the real server, gives every dashboard panel data and evaluates
//! every rule; and the user's flow (new endpoint + panel → re-render →
//! restart) works.

mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real `prometheus` on a free loopback port, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    async fn start(config: &Path, dir: &Path) -> Prometheus {
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("prometheus is required (Debian package `prometheus`): {e}")
            });
        let p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", p.base)).await {
                if r.status() == 200 {
                    return p;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                read(&p.log)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        let r = reqwest::get(format!("{}{path}?{}", self.base, qs.join("&")))
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// `/api/v1/query`: Ok(result series) or Err(error text).
    async fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let v = self.api("/api/v1/query", &[("query", q)]).await;
        if v["status"] == "success" {
            Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
        } else {
            Err(format!("{}: {}", v["errorType"], v["error"]))
        }
    }
}

/// Percent-encodes a query parameter value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Grafana's variables, as Grafana would substitute them for this test's scrape interval.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "5s")
        .replace("${job}", ".+")
        .replace("${instance}", ".+")
        .replace("$job", ".+")
        .replace("$instance", ".+")
}

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
    let manifest = dir.path().join("e2e.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["service", "port"]) = (srv.port as u64).into();
        *at(v, &["stack", "service_host"]) = "127.0.0.1".into();
        *at(v, &["stack", "scrape_interval"]) = "1s".into();
        *at(v, &["stack", "evaluation_interval"]) = "1s".into();
        *at(v, &["stack", "extra_targets"]) = serde_yaml::Value::Sequence(vec![]);
    });
    let out = dir.path().join("stack");
    render_ok(&manifest, &out);
    let prom = Prometheus::start(&out.join("prometheus/prometheus.yml"), dir.path()).await;

    // Prometheus scrapes a few seconds after it is ready; send traffic once it
    // has seen the server, so that every counter increases between scrapes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while prom
        .query("up == 1")
        .await
        .map(|s| s.is_empty())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "no successful scrape:\n{}",
            read(&prom.log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    traffic(&srv, 20).await;

    let dash = json(&out.join("grafana/dashboards/ecommerce-api.json"));
    let mut queries = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        if p["datasource"]["type"] == "prometheus" {
            for t in p["targets"].as_array().unwrap() {
                queries.push((
                    p["title"].as_str().unwrap().to_string(),
                    substitute(t["expr"].as_str().unwrap()),
                ));
            }
        }
    }
    assert!(queries.len() >= 7, "{queries:?}");
    let rules_file = yaml(&out.join("prometheus/alerts.yml"));
    let n_rules: usize = rules_file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();

    // Wait until every panel has data and every rule has been evaluated.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut problems;
    loop {
        problems = Vec::new();
        for (title, q) in &queries {
            // At least one series with a number (a rate over no data would be NaN).
            let finite = |s: &Value| {
                s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            };
            match prom.query(q).await {
                Ok(series) if series.iter().any(finite) => {}
                Ok(series) => {
                    problems.push(format!("panel {title:?}: no data for {q}: {series:?}"))
                }
                Err(e) => problems.push(format!("panel {title:?}: {e} in {q}")),
            }
        }
        let rules = prom.api("/api/v1/rules", &[]).await;
        let mut seen = 0;
        for g in rules["data"]["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                seen += 1;
                let name = r["name"].as_str().unwrap();
                if r["health"] != "ok" {
                    problems.push(format!(
                        "rule {name}: health {} {}",
                        r["health"], r["lastError"]
                    ));
                }
                if r["lastEvaluation"]
                    .as_str()
                    .unwrap_or("0001")
                    .starts_with("0001")
                {
                    problems.push(format!("rule {name}: not evaluated yet"));
                }
            }
        }
        if seen != n_rules {
            problems.push(format!(
                "prometheus loaded {seen} rules, alerts.yml has {n_rules}"
            ));
        }
        if problems.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        read(&prom.log)
    );

    // Every rule expression also evaluates through the query API.
    for g in rules_file["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let expr = r["expr"].as_str().unwrap();
            prom.query(expr)
                .await
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
    }

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
