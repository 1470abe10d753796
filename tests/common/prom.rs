//! A real Prometheus for end-to-end tests, and the proof that every panel
//! of a rendered dashboard has data and every rendered rule evaluates.
//! Standalone (std, reqwest, serde_json, serde_yaml), so that the example
//! service's tests include it too (`#[path]`).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real `prometheus` on a free loopback port, killed on drop.
pub struct Prometheus {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    pub async fn start(config: &Path, dir: &Path) -> Prometheus {
        Self::start_with(config, dir, &[]).await
    }

    /// [`Prometheus::start`] with more flags (`--enable-feature=exemplar-storage`).
    pub async fn start_with(config: &Path, dir: &Path, flags: &[&str]) -> Prometheus {
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .args(flags)
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
                std::fs::read_to_string(&p.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
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
    pub async fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let v = self.api("/api/v1/query", &[("query", q)]).await;
        if v["status"] == "success" {
            Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
        } else {
            Err(format!("{}: {}", v["errorType"], v["error"]))
        }
    }
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
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
pub fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "5s")
        .replace("${job}", ".+")
        .replace("${instance}", ".+")
        .replace("$job", ".+")
        .replace("$instance", ".+")
}

/// Waits until Prometheus has scraped `up == 1` at least once.
pub async fn wait_for_scrape(prom: &Prometheus) {
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
            std::fs::read_to_string(&prom.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to 60 s) until every Prometheus panel query of `dashboard`
/// returns a finite number and every rule of `alerts` is loaded, healthy
/// and evaluated; panics with every problem otherwise. Returns how many
/// panel queries there were.
pub async fn panels_have_data_and_rules_evaluate(
    prom: &Prometheus,
    dashboard: &Path,
    alerts: &Path,
) -> usize {
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(dashboard).unwrap()).unwrap();
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
    let rules_file: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(alerts).unwrap()).unwrap();
    let n_rules: usize = rules_file["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_sequence().unwrap().len())
        .sum();
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
        std::fs::read_to_string(&prom.log).unwrap_or_default()
    );
    // Every rule expression also evaluates through the query API.
    for g in rules_file["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let expr = r["expr"].as_str().unwrap();
            prom.query(expr)
                .await
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
    }
    queries.len()
}
