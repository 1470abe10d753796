//! The rendered stack for traces (issue 25, item 4), Prometheus: it runs
//! with the exemplar storage the compose file asks for.

mod common;
mod render_support;
use render_support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The debian Prometheus runs with the flags the compose file gives it,
/// and answers the exemplar API that Grafana's exemplars use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_runs_with_the_rendered_flags_and_serves_exemplars() {
    let r = rendered_default();
    let compose = yaml(&r.out.join("docker-compose.yml"));
    let port = common::prom::free_port();
    let prom_dir = r.out.join("prometheus");
    let mut args = Vec::new();
    for a in compose["services"]["prometheus"]["command"]
        .as_array()
        .unwrap()
    {
        let a = a.as_str().unwrap();
        // The container's paths and address, as they are here.
        let a = if a.starts_with("--config.file=") {
            format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            )
        } else if a.starts_with("--storage.tsdb.path=") {
            format!(
                "--storage.tsdb.path={}",
                r.dir.path().join("tsdb").display()
            )
        } else if a.starts_with("--web.listen-address=") {
            format!("--web.listen-address=127.0.0.1:{port}")
        } else {
            a.to_string()
        };
        args.push(a);
    }
    assert!(args.contains(&"--enable-feature=exemplar-storage".to_string()));
    let log = r.dir.path().join("prometheus.log");
    let mut child = std::process::Command::new("prometheus")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("prometheus is required (Debian package `prometheus`): {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Ok(resp) = reqwest::get(format!("{base}/-/ready")).await {
            if resp.status() == 200 {
                break true;
            }
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let flags: Value = if ready {
        reqwest::get(format!("{base}/api/v1/status/flags"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    } else {
        Value::Null
    };
    let exemplars: Value = if ready {
        reqwest::get(format!(
            "{base}/api/v1/query_exemplars?query=up&start=0&end=1"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    } else {
        Value::Null
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ready, "prometheus did not start with {args:?}:\n{log}");
    assert_eq!(
        flags["data"]["enable-feature"], "exemplar-storage",
        "{flags}"
    );
    assert_eq!(exemplars["status"], "success", "{exemplars}");
    assert!(
        log.contains("exemplar"),
        "no exemplar storage in the log:\n{log}"
    );
}
