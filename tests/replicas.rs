//! Proof across instances: three replicas of the real server on loopback,
//! a real Prometheus on the rendered config with file discovery (two
//! instances rendered, the third added by an operator's file beside the
//! rendered one, with no render), traffic to all three; then one replica
//! stops and TargetDown goes pending, then firing, while the panels keep
//! the other two. Each replica's log lines carry its own instance: the
//! declared target with its port, or the one it is told.

mod common;
mod render_support;
use common::prom::*;
use common::*;
use render_support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const JOB: &str = "ecommerce-api";

/// A replica on `port`, with its own working directory (its own log
/// files). A replica the manifest declares names itself after its declared
/// target; another is told its scrape address (`TELLTALE_INSTANCE`).
fn replica(manifest: &std::path::Path, dir: &std::path::Path, port: u16, declared: bool) -> Server {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--manifest")
        .arg(manifest)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env_remove("TELLTALE_INSTANCE")
        .env_remove("POD_NAME");
    if !declared {
        cmd.env("TELLTALE_INSTANCE", format!("127.0.0.1:{port}"));
    }
    let work = dir.join(format!("replica-{port}"));
    std::fs::create_dir_all(&work).unwrap();
    let stderr = std::fs::File::create(work.join("server.stderr")).unwrap();
    Server::spawn(cmd, &work, stderr.into()).0
}

/// The distinct `instance` values of a query's result.
fn instances(series: &[Value]) -> BTreeSet<String> {
    series
        .iter()
        .filter_map(|s| s["metric"]["instance"].as_str().map(String::from))
        .collect()
}

/// Polls `q` until `ok` holds of its result (at most `secs`), returning it.
async fn until(
    prom: &Prometheus,
    q: &str,
    secs: u64,
    what: &str,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = prom.query(q).await.unwrap_or_default();
        if ok(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: {q} gave {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn addr(p: u16) -> String {
    format!("127.0.0.1:{p}")
}

/// A panel's query: its title, its expression, its legend.
type PanelQuery = (String, String, String);

/// Renders the stack with file discovery over the first two ports; the
/// third is not in the rendered file. Returns the manifest and the stack.
fn render_two_declared(dir: &std::path::Path, ports: &[u16]) -> (PathBuf, PathBuf) {
    let base = copy_default_manifest(dir);
    let manifest = dir.join("replicas.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["stack", "scrape_interval"]) = "1s".into();
        *at(v, &["stack", "evaluation_interval"]) = "1s".into();
        *at(v, &["stack", "extra_targets"]) = serde_yaml::Value::Sequence(vec![]);
        *at(v, &["stack", "discovery", "type"]) = "file".into();
        *at(v, &["stack", "discovery", "refresh_interval"]) = "1s".into();
        *at(v, &["stack", "discovery", "targets"]) =
            serde_yaml::to_value([addr(ports[0]), addr(ports[1])]).unwrap();
        *at(v, &["rules", "target_down_for"]) = "4s".into();
    });
    let out = dir.join("stack");
    render_ok(&manifest, &out);
    let rendered = read(
        &out.join("prometheus/targets")
            .join(JOB)
            .join("telltale.yml"),
    );
    assert!(
        rendered.contains(&addr(ports[0])) && !rendered.contains(&addr(ports[2])),
        "{rendered}"
    );
    (manifest, out)
}

/// 8 rounds of 4 requests to each replica.
async fn traffic(servers: &[Option<Server>]) {
    let c = reqwest::Client::new();
    for _ in 0..8 {
        for s in servers.iter().flatten() {
            for p in ["/products", "/users?limit=5", "/nope", "/error"] {
                c.get(s.url(p)).send().await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every Prometheus target of the dashboard, with its panel's title.
fn panel_queries(dashboard: &std::path::Path) -> Vec<PanelQuery> {
    let dash = json(dashboard);
    dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["datasource"]["type"] == "prometheus")
        .flat_map(|p| {
            p["targets"].as_array().unwrap().iter().map(|t| {
                (
                    p["title"].as_str().unwrap().to_string(),
                    substitute(t["expr"].as_str().unwrap()),
                    t["legendFormat"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

/// Aggregated panels read every replica: each metric they sum has series
/// from all three, and the sum is what they served. Per-instance panels
/// show one series per replica; they are returned.
async fn aggregated_panels_read_every_replica<'p>(
    prom: &Prometheus,
    panels: &'p [PanelQuery],
    all: &BTreeSet<String>,
) -> Vec<&'p PanelQuery> {
    for metric in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "products_low_stock_total",
        "system_cpu_usage_percent",
        "process_cpu_seconds_total",
    ] {
        let q = format!("count by (instance) ({metric}{{job=\"{JOB}\"}})");
        let r = prom.query(&q).await.unwrap();
        assert_eq!(&instances(&r), all, "{q}");
    }
    // The total over the three is what the replicas served: no replica
    // is missing from the sum (each served 8 rounds of 4 requests, plus
    // Prometheus's own scrapes of /metrics).
    let total = format!("sum(http_requests_total{{job=\"{JOB}\", path!=\"/metrics\"}})");
    until(prom, &total, 30, "every replica's requests summed", |r| {
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v >= 3.0 * 8.0 * 4.0)
    })
    .await;
    // Per-instance panels show one series per replica.
    let per_instance: Vec<&PanelQuery> = panels
        .iter()
        .filter(|(_, _, l)| l.contains("{{instance}}"))
        .collect();
    assert!(per_instance.len() >= 5, "{per_instance:?}");
    for (title, q, _) in &per_instance {
        let r = prom.query(q).await.unwrap();
        assert_eq!(&instances(&r), all, "panel {title:?}: {q}");
    }
    per_instance
}

/// TargetDown goes pending, then firing, for the stopped replica `gone`
/// and for no other.
async fn target_down_fires_for_the_stopped_one(prom: &Prometheus, gone: &str) {
    let alert = |state: &str| {
        format!("ALERTS{{alertname=\"TargetDown\", alertstate=\"{state}\", instance=\"{gone}\"}}")
    };
    let seen_pending = Instant::now();
    until(prom, &alert("pending"), 30, "TargetDown pending", |r| {
        !r.is_empty()
    })
    .await;
    until(prom, &alert("firing"), 30, "TargetDown firing", |r| {
        !r.is_empty()
    })
    .await;
    assert!(
        seen_pending.elapsed() >= Duration::from_secs(2),
        "TargetDown fired before its `for` could pass"
    );
    let firing = prom
        .query("ALERTS{alertname=\"TargetDown\", alertstate=\"firing\"}")
        .await
        .unwrap();
    assert_eq!(
        instances(&firing),
        BTreeSet::from([gone.to_string()]),
        "only the stopped replica is down"
    );
}

/// The panels keep the other two. Per-instance gauges (Targets Up aside,
/// which shows the stopped one as 0) drop the stopped replica once its
/// series go stale; a rate keeps it until its window has passed.
async fn the_panels_keep_the_other_two(
    prom: &Prometheus,
    panels: &[PanelQuery],
    per_instance: &[&PanelQuery],
    left: &BTreeSet<String>,
) {
    for (title, q, _) in per_instance.iter().filter(|(_, q, _)| !q.starts_with("up")) {
        let windowed = q.contains('[');
        until(prom, q, 30, &format!("panel {title:?} keeps two"), |r| {
            let got = instances(r);
            if windowed {
                got.is_superset(left)
            } else {
                &got == left
            }
        })
        .await;
    }
    for (title, q, _) in panels {
        let r = prom.query(q).await.unwrap();
        assert!(!r.is_empty(), "panel {title:?} lost its data: {q}");
    }
}

/// Each replica's log lines carry its own instance (the two declared ones
/// without being told) and the service.
fn each_replica_logs_its_own_instance(dir: &std::path::Path, ports: &[u16]) {
    for &p in ports {
        let lines = log_lines(&dir.join(format!("replica-{p}")));
        assert!(lines.len() > 10, "replica {p}: {} lines", lines.len());
        for l in &lines {
            assert_eq!(l["instance"], addr(p), "{l}");
            assert_eq!(l["service"], JOB, "{l}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_aggregate_and_a_stopped_one_fires_target_down() {
    let dir = tempdir();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let (manifest, out) = render_two_declared(dir.path(), &ports);
    let sd_dir = out.join("prometheus/targets").join(JOB);

    let mut servers: Vec<Option<Server>> = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| Some(replica(&manifest, dir.path(), p, i < 2)))
        .collect();
    let prom = Prometheus::start(&out.join("prometheus/prometheus.yml"), dir.path()).await;
    // The third replica is added as an operator would: a file beside the
    // rendered one, which Prometheus picks up on its next refresh.
    std::fs::write(
        sd_dir.join("replica-3.yml"),
        format!("- targets: [\"{}\"]\n", addr(ports[2])),
    )
    .unwrap();
    let all: BTreeSet<String> = ports.iter().map(|&p| addr(p)).collect();
    let up = format!("up{{job=\"{JOB}\"}} == 1");
    until(&prom, &up, 60, "three instances up", |r| {
        instances(r) == all
    })
    .await;

    traffic(&servers).await;
    let dashboard = out.join(format!("grafana/dashboards/{JOB}.json"));
    let alerts = out.join("prometheus/alerts.yml");
    panels_have_data_and_rules_evaluate(&prom, &dashboard, &alerts).await;

    let panels = panel_queries(&dashboard);
    let per_instance = aggregated_panels_read_every_replica(&prom, &panels, &all).await;

    // One replica stops: TargetDown goes pending, then firing, for it.
    let gone = addr(ports[1]);
    let st = servers[1].take().unwrap().stop();
    assert!(st.success(), "{st:?}");
    target_down_fires_for_the_stopped_one(&prom, &gone).await;
    let left: BTreeSet<String> = all.iter().filter(|a| **a != gone).cloned().collect();
    the_panels_keep_the_other_two(&prom, &panels, &per_instance, &left).await;

    for s in servers.into_iter().flatten() {
        assert!(s.stop().success());
    }
    each_replica_logs_its_own_instance(dir.path(), &ports);
}
