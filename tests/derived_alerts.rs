//! Derived alerts are stable and controllable: a name depends only on what
//! it is derived from (a second low-stock gauge renames nothing), and each
//! can be tuned or turned off per metric; promtool still tests every one.
mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;

fn alert_names(out: &std::path::Path) -> Vec<String> {
    yaml(&out.join("prometheus/alerts.yml"))["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect()
}

fn alert(out: &std::path::Path, name: &str) -> Option<Value> {
    yaml(&out.join("prometheus/alerts.yml"))["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .find(|r| r["alert"] == name)
}

#[test]
fn a_second_low_stock_gauge_renames_nothing_and_each_alert_is_tunable() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let before = dir.path().join("before");
    render_ok(&manifest, &before);
    let names_before = alert_names(&before);
    assert!(names_before.contains(&"LowStock".to_string()));

    // A second gauge on users (no alert settings): its alert is named from
    // its metric, and LowStock keeps its name and rule.
    let edited = dir.path().join("edited.yaml");
    edit_manifest(&manifest, &edited, |m| {
        let metrics = at(m, &["metrics"]).as_sequence_mut().unwrap();
        let gauge: serde_yaml::Value = serde_yaml::from_str(
            "{name: users_low_karma_total, type: gauge, help: Users with low karma., \
              source: collection.below_threshold, options: {endpoint: /users, field: id, threshold: 3}}",
        )
        .unwrap();
        metrics.push(gauge);
        // Tuned: HighErrorRatio at 20 % for 2m, paging as "page"; the p95 alert off.
        for x in metrics.iter_mut() {
            match x["name"].as_str() {
                Some("http_requests_total") => {
                    x["alert"] =
                        serde_yaml::from_str("{threshold: 0.2, for: 2m, severity: page}").unwrap()
                }
                Some("http_request_duration_seconds") => {
                    x["alert"] = serde_yaml::from_str("{enabled: false}").unwrap()
                }
                _ => {}
            }
        }
    });
    let after = dir.path().join("after");
    render_ok(&edited, &after);
    let names_after = alert_names(&after);
    assert_eq!(
        alert(&before, "LowStock"),
        alert(&after, "LowStock"),
        "LowStock is unchanged"
    );
    assert!(
        names_after.contains(&"UsersLowKarma".to_string()),
        "{names_after:?}"
    );
    assert!(
        !names_after.iter().any(|n| n.ends_with("P95High")),
        "{names_after:?}"
    );
    let high = alert(&after, "HighErrorRatio").unwrap();
    assert!(high["expr"].as_str().unwrap().ends_with("> 0.2"), "{high}");
    assert_eq!(high["for"], "2m");
    assert_eq!(high["labels"]["severity"], "page");
    // Every rendered alert, tuned or new, passes its promtool unit tests.
    let (ok, out) = promtool(
        &["test", "rules", "alerts.test.yml"],
        &after.join("prometheus"),
    );
    assert!(ok, "{out}");

    // Turned off entirely: HighErrorRatio disappears with its tests.
    let off = dir.path().join("off.yaml");
    edit_manifest(&edited, &off, |m| {
        for x in at(m, &["metrics"]).as_sequence_mut().unwrap() {
            if x["name"] == "http_requests_total" {
                x["alert"] = serde_yaml::from_str("{enabled: false}").unwrap();
            }
        }
    });
    let off_out = dir.path().join("off");
    render_ok(&off, &off_out);
    assert!(!alert_names(&off_out).contains(&"HighErrorRatio".to_string()));
    let tests = std::fs::read_to_string(off_out.join("prometheus/alerts.test.yml")).unwrap();
    assert!(!tests.contains("HighErrorRatio"));
}

#[test]
fn alert_settings_on_a_metric_that_derives_none_are_located_errors() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "    source: system.memory\n",
        "    source: system.memory\n    alert: { threshold: 2 }\n",
    );
    edit(
        &manifest,
        "    alert: { name: LowStock }\n",
        "    alert: { name: \"Low Stock\", threshold: -1, for: soon }\n",
    );
    let (st, out, err) = run(&["validate", "-m", manifest.to_str().unwrap()], dir.path());
    assert!(!st.success());
    let text = format!("{out}{err}");
    assert!(
        text.contains("no alert is derived from \"system_memory_usage_percent\""),
        "{text}"
    );
    assert!(
        text.contains(".alert.name: \"Low Stock\" is not a valid alert name"),
        "{text}"
    );
    assert!(
        text.contains(".alert.threshold: must be a number of items >= 0"),
        "{text}"
    );
    assert!(text.contains(".alert.for: bad duration \"soon\""), "{text}");
}
