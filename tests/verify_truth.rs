//! Issue 24, item 7: `verify` tells the truth, tried as a new user would
//! with the demo on loopback.
//! - a firing alert is shown `firing` (not `data`), and fails the run only
//!   with `--fail-on-firing`;
//! - an empty comparison (`up == 0`, `max by (job, instance)
//!   (system_memory_usage_percent) > 90`) is "the condition does not hold",
//!   not a selector reason;
//! - rules of one name (`slo:sli_error:ratio_rate5m` of each objective),
//!   and the queries of one panel, are told apart;
//! - Loki and JSON-datasource panels are listed as skipped, and counted.

mod common;
mod fake_http;
mod render_support;
use common::prom::*;
use common::*;
use fake_http::Answer;
use render_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn verify(manifest: &Path, prom: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "verify",
        "-m",
        manifest.to_str().unwrap(),
        "--prometheus",
        prom,
    ];
    args.extend_from_slice(extra);
    let (st, out, err) = run(&args, manifest.parent().unwrap());
    (st.code().unwrap_or(-1), out, err)
}

fn verify_json(manifest: &Path, prom: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = verify(manifest, prom, &args);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}):\n{out}{err}"));
    (code, v)
}

/// The report's row named `name`.
fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {report:#}"))
}

/// The demo server, and a real Prometheus scraping it every second (with
/// `edit` applied to the manifest first); every panel has data and every
/// rule has been evaluated when it returns.
struct Demo {
    _dir: tempfile::TempDir,
    srv: Server,
    prom: Prometheus,
    manifest: PathBuf,
}

async fn demo(edit: impl FnOnce(&mut serde_yaml::Value), extra_target: Option<u16>) -> Demo {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    edit_manifest(&base.clone(), &base, edit);
    let srv = Server::start(&base, dir.path());
    let (manifest, out) = render_for_test_server(&base, dir.path(), srv.port);
    if let Some(port) = extra_target {
        // A second instance of the job, which nothing serves.
        let targets = out.join("prometheus/targets/ecommerce-api/dead.yml");
        std::fs::write(targets, format!("- targets: [\"127.0.0.1:{port}\"]\n")).unwrap();
    }
    let prom = Prometheus::start(&out.join("prometheus/prometheus.yml"), dir.path()).await;
    wait_for_scrape(&prom).await;
    let c = reqwest::Client::new();
    for _ in 0..8 {
        for p in ["/products", "/users"] {
            c.get(srv.url(p)).send().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panels_have_data_and_rules_evaluate(
        &prom,
        &out.join("grafana/dashboards/ecommerce-api.json"),
        &out.join("prometheus/alerts.yml"),
    )
    .await;
    Demo {
        _dir: dir,
        srv,
        prom,
        manifest,
    }
}

/// Waits until Prometheus says alert `name` is firing (a bound for a
/// loaded 2-core machine, where 30 s once ran out in CI).
async fn wait_firing(prom: &Prometheus, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let q = format!("ALERTS{{alertname=\"{name}\", alertstate=\"firing\"}}");
    while prom.query(&q).await.map(|s| s.is_empty()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "{name} never fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_is_shown_firing_and_fails_the_run_only_when_asked() {
    let dead = free_port();
    let d = demo(
        |v| *at(v, &["rules", "target_down_for"]) = "0s".into(),
        Some(dead),
    )
    .await;
    wait_firing(&d.prom, "TargetDown").await;

    let (code, report) = verify_json(&d.manifest, &d.prom.base, &[]);
    assert_eq!(code, 0, "every panel has data: {report:#}");
    let down = row(&report, "TargetDown");
    assert_eq!(down["kind"], "alert", "{down}");
    assert_eq!(down["result"], "firing", "{down}");
    assert!(down["series"].as_u64().unwrap() >= 1, "{down}");
    assert!(report["counts"]["firing"].as_u64().unwrap() >= 1);
    let memory = row(&report, "HighMemoryUsage");
    assert_eq!(memory["result"], "inactive", "{memory}");

    let (code, report) = verify_json(&d.manifest, &d.prom.base, &["--fail-on-firing"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["passed"], false);

    let (_, text, _) = verify(&d.manifest, &d.prom.base, &[]);
    let line = text
        .lines()
        .find(|l| l.starts_with("alert") && l.contains("TargetDown"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(" firing "), "{line}");
    assert!(
        text.contains("firing, "),
        "the summary counts alerts: {text}"
    );
    assert!(d.srv.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_comparison_is_a_condition_that_does_not_hold() {
    let d = demo(|_| {}, None).await;
    let (code, report) = verify_json(&d.manifest, &d.prom.base, &[]);
    assert_eq!(code, 0, "{report:#}");
    // `up == 0` (every target is up) and `max by (job, instance)
    // (system_memory_usage_percent) > 90` (memory is under 90 %).
    for (name, operand) in [
        ("TargetDown", "up has"),
        (
            "HighMemoryUsage",
            "max by (job, instance) (system_memory_usage_percent) has",
        ),
    ] {
        let r = row(&report, name);
        assert_eq!(r["result"], "inactive", "{r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("the condition does not hold") && reason.contains(operand),
            "{r}"
        );
    }
    // The burn-rate alerts (an `or` of `and`s of comparisons) likewise.
    let burn = row(&report, "AvailabilityErrorBudgetBurnPage");
    assert_eq!(burn["result"], "inactive", "{burn}");
    assert_eq!(burn["reason"], "the condition does not hold", "{burn}");
    // An empty selector still gets the selector reasons.
    let m = dir_of(&d.manifest).join("brew.yaml");
    edit_manifest(&d.manifest, &m, |v| {
        let alerts = at(v, &["alerts"]).as_sequence_mut().unwrap();
        let mut a = alerts[0].clone();
        a["name"] = "Brewing".into();
        a["expr"] = r#"sum(rate(http_requests_total{method="BREW"}[1m])) > 0"#.into();
        alerts.push(a);
    });
    let (_, report) = verify_json(&m, &d.prom.base, &[]);
    let brew = row(&report, "Brewing");
    assert!(
        brew["reason"]
            .as_str()
            .unwrap()
            .starts_with("label mismatch"),
        "{brew}"
    );
    assert!(d.srv.stop().success());
}

fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap()
}

/// A Prometheus that answers every query with one series and has no rules.
fn one_series(path: &str) -> Answer {
    Answer::Json(
        if path.starts_with("/api/v1/rules") {
            r#"{"status":"success","data":{"groups":[]}}"#
        } else {
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0,"1"]}]}}"#
        }
        .into(),
    )
}

#[test]
fn rows_of_one_name_are_told_apart() {
    let fake = fake_http::start(one_series);
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let (code, report) = verify_json(&manifest, &fake.base, &[]);
    assert_eq!(code, 0, "{report:#}");
    let rules: Vec<&str> = report["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&&str> = rules.iter().collect();
    assert_eq!(unique.len(), rules.len(), "duplicate rows: {rules:#?}");
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        for slo in ["availability", "latency"] {
            let name = format!("slo:sli_error:ratio_rate{w}{{slo=\"{slo}\"}}");
            assert!(rules.contains(&name.as_str()), "no {name}: {rules:#?}");
        }
    }
    // A name used once keeps its bare name; a panel's queries get their refId.
    assert!(rules.contains(&"TargetDown"), "{rules:#?}");
    assert!(rules.contains(&"HTTP Request Rate"), "{rules:#?}");
    for r in ["A", "B"] {
        let name = format!("Request and Error Rate (JSON datasource) [{r}]");
        assert!(rules.contains(&name.as_str()), "{rules:#?}");
    }
}

#[test]
fn loki_and_json_panels_are_listed_as_skipped_and_counted() {
    let fake = fake_http::start(one_series);
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let m: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let mut expected = Vec::new();
    for p in m["dashboard"]["panels"].as_sequence().unwrap() {
        let ds = p["datasource"].as_str().unwrap();
        let targets = p["targets"].as_sequence().unwrap();
        if ds != "prometheus" {
            for (j, _) in targets.iter().enumerate() {
                let title = p["title"].as_str().unwrap();
                // A panel's queries are told apart by their refId.
                let name = if targets.len() > 1 {
                    format!("{title} [{}]", ["A", "B", "C"][j])
                } else {
                    title.to_string()
                };
                expected.push((name, ds.to_string()));
            }
        }
    }
    assert!(expected.iter().any(|(_, ds)| ds == "loki"));
    assert!(expected.iter().any(|(_, ds)| ds == "json"));

    let (code, report) = verify_json(&manifest, &fake.base, &[]);
    assert_eq!(code, 0, "skipped panels do not fail the run: {report:#}");
    let skipped: Vec<(String, String)> = report["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "skipped")
        .map(|r| {
            assert_eq!(r["kind"], "panel", "{r}");
            assert!(r["reason"].as_str().unwrap().contains("not checked"), "{r}");
            (
                r["name"].as_str().unwrap().to_string(),
                r["backend"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(skipped, expected);
    assert_eq!(report["counts"]["skipped"], expected.len());

    let (_, text, _) = verify(&manifest, &fake.base, &[]);
    assert!(
        text.contains(&format!("; {} panel queries skipped", expected.len())),
        "{text}"
    );
    let loki = text
        .lines()
        .find(|l| l.contains("Error Log Rate"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        loki.contains("skipped") && loki.contains("--loki"),
        "{loki}"
    );
}
