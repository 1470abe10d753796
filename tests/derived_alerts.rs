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

/// Every number in an alert's summary and description is printed the
/// shortest way (`7.2%`, never `7.200000000000006%` from float arithmetic).
#[test]
fn alert_texts_print_percentages_exactly() {
    let r = rendered_default();
    let rules = yaml(&r.out.join("prometheus/alerts.yml"));
    let mut burn = 0;
    for rule in rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let Some(annotations) = rule["annotations"].as_object() else {
            continue;
        };
        for text in annotations.values().filter_map(Value::as_str) {
            // A run of 6 zeros or nines after a decimal point is float noise.
            let noisy = text
                .split(|c: char| !c.is_ascii_digit() && c != '.')
                .any(|n| {
                    n.split_once('.')
                        .is_some_and(|(_, f)| f.contains("000000") || f.contains("999999"))
                });
            assert!(!noisy, "{text}");
        }
        let description = annotations["description"].as_str().unwrap_or_default();
        // The 99.5% objective's budget is 0.5%: 14.4 × 0.5% and 6 × 0.5%.
        if description.contains("14.4x the budget (7.2%)") && description.contains("6x (3%)") {
            burn += 1;
        }
    }
    assert!(burn > 0, "no exact burn-rate alert on the 99.5% objective");
}
