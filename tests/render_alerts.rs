//! `telltale render`, its Prometheus side: promtool accepts the config, the
//! rules and their unit tests; every alert has a firing and a quiet test,
//! and the tests catch a broken alert; every discovery kind renders.

mod common;
mod render_support;
use common::*;
use render_support::*;
use std::collections::BTreeSet;

#[test]
fn promtool_accepts_config_rules_and_unit_tests() {
    let r = rendered_default();
    let prom = r.out.join("prometheus");
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"], &prom);
    assert!(ok, "{out}");
    assert!(out.contains("1 rule files found"), "{out}");
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], &prom);
    assert!(ok, "{out}");
    let n = alert_rules(&prom.join("alerts.yml")).len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"], &prom);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test() {
    let r = rendered_default();
    let prom = r.out.join("prometheus");
    let alerts: BTreeSet<String> = alert_rules(&prom.join("alerts.yml"))
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    // The derived alerts of the issue, plus the manifest's own.
    for a in [
        "HighErrorRatio",
        "LatencyP95High",
        "LowStock",
        "TargetDown",
        "AvailabilityErrorBudgetBurnPage",
        "AvailabilityErrorBudgetBurnTicket",
        "LatencyErrorBudgetBurnPage",
        "LatencyErrorBudgetBurnTicket",
        "HighMemoryUsage",
    ] {
        assert!(alerts.contains(a), "{a} missing from {alerts:?}");
    }
    let tests = yaml(&prom.join("alerts.test.yml"));
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in tests["tests"].as_array().unwrap() {
        for case in t["alert_rule_test"].as_array().unwrap() {
            let name = case["alertname"].as_str().unwrap().to_string();
            if case["exp_alerts"].as_array().unwrap().is_empty() {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    assert_eq!(firing, alerts);
    assert_eq!(quiet, alerts);
    for rule in alert_rules(&prom.join("alerts.yml")) {
        if rule["alert"].is_string() {
            assert!(rule["labels"]["severity"].is_string(), "{rule}");
            assert!(rule["annotations"]["summary"].is_string(), "{rule}");
            assert!(rule["annotations"]["description"].is_string(), "{rule}");
        }
    }
}

/// The unit tests are not vacuous: breaking any alert makes them fail.
#[test]
fn promtool_tests_fail_when_an_alert_is_broken() {
    let r = rendered_default();
    let prom = r.out.join("prometheus");
    let text = read(&prom.join("alerts.yml"));
    let rules = alert_rules(&prom.join("alerts.yml"));
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&read(&prom.join("alerts.test.yml"))).unwrap();
    for rule in rules.iter().filter(|r| r["alert"].is_string()) {
        let name = rule["alert"].as_str().unwrap();
        let expr = rule["expr"].as_str().unwrap();
        let quoted = format!("expr: '{}'", expr.replace('\'', "''"));
        assert!(
            text.contains(&quoted),
            "{name}: expression not found as written"
        );
        for (broken, why) in [
            ("vector(0) > 1", "never fires"),
            ("vector(1)", "always fires"),
        ] {
            let dir = tempdir();
            std::fs::write(
                dir.path().join("alerts.yml"),
                text.replacen(&quoted, &format!("expr: '{broken}'"), 1),
            )
            .unwrap();
            // Only this alert's two tests, to keep promtool fast.
            let mut mine = tests.clone();
            mine["tests"]
                .as_sequence_mut()
                .unwrap()
                .retain(|t| t["alert_rule_test"][0]["alertname"].as_str() == Some(name));
            assert_eq!(mine["tests"].as_sequence().unwrap().len(), 2, "{name}");
            std::fs::write(
                dir.path().join("alerts.test.yml"),
                serde_yaml::to_string(&mine).unwrap(),
            )
            .unwrap();
            let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"], dir.path());
            assert!(!ok, "{name} {why}, yet its unit tests pass:\n{out}");
            assert!(
                out.contains(name),
                "{name}: failure does not name it:\n{out}"
            );
        }
    }
}

/// Each kind of discovery, and remote write, renders a config promtool
/// accepts, with the instances where Prometheus will look for them.
#[test]
fn every_discovery_kind_and_remote_write_render_a_config_promtool_accepts() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let cases: Vec<(&str, serde_yaml::Value)> = vec![
        (
            "static",
            serde_yaml::from_str("{type: static, targets: ['10.0.0.1:8001', '10.0.0.2:8001']}")
                .unwrap(),
        ),
        (
            "file",
            serde_yaml::from_str(
                "{type: file, targets: ['a:8001', 'b:8001', 'c:8001'], refresh_interval: 10s}",
            )
            .unwrap(),
        ),
        (
            "srv",
            serde_yaml::from_str("{type: dns, names: [_http._tcp.api.internal]}").unwrap(),
        ),
        (
            "a",
            serde_yaml::from_str("{type: dns, names: [api.internal], record: A, port: 9000}")
                .unwrap(),
        ),
    ];
    for (name, discovery) in cases {
        let m = dir.path().join(format!("{name}.yaml"));
        edit_manifest(&base, &m, |v| {
            *at(v, &["stack", "discovery"]) = discovery;
            *at(v, &["stack", "remote_write"]) =
                serde_yaml::from_str("[{url: 'http://mimir:9009/api/v1/push', name: mimir}]")
                    .unwrap();
        });
        let out = dir.path().join(format!("out-{name}"));
        render_ok(&m, &out);
        let prom_dir = out.join("prometheus");
        let (ok, text) = promtool(&["check", "config", "prometheus.yml"], &prom_dir);
        assert!(ok, "{name}: {text}");
        let prom = yaml(&prom_dir.join("prometheus.yml"));
        assert_eq!(
            prom["remote_write"][0]["url"],
            "http://mimir:9009/api/v1/push"
        );
        let job = &prom["scrape_configs"][0];
        match name {
            "static" => assert_eq!(
                job["static_configs"][0]["targets"],
                serde_json::json!(["10.0.0.1:8001", "10.0.0.2:8001"])
            ),
            "file" => {
                assert_eq!(job["file_sd_configs"][0]["refresh_interval"], "10s");
                let groups = yaml(&prom_dir.join("targets/ecommerce-api/telltale.yml"));
                assert_eq!(
                    groups[0]["targets"],
                    serde_json::json!(["a:8001", "b:8001", "c:8001"])
                );
            }
            "srv" => {
                assert_eq!(job["dns_sd_configs"][0]["type"], "SRV");
                assert!(job["dns_sd_configs"][0].get("port").is_none());
            }
            _ => {
                assert_eq!(job["dns_sd_configs"][0]["type"], "A");
                assert_eq!(job["dns_sd_configs"][0]["port"], 9000);
            }
        }
        if name != "file" {
            assert!(
                !prom_dir.join("targets").exists(),
                "{name}: no file_sd file"
            );
        }
    }
}
