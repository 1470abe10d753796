//! What a dependency contributes to the dashboard and the rules unless its
//! kind says otherwise ([`super::dependencies::PreparedDependency`]'s
//! `panels` and `alerts`): one row of four panels (calls per second by
//! operation and outcome, the share of calls that failed, p95 latency by
//! operation, and its state: up, calls in flight, and a pool's size, idle
//! and waiting), and three alerts (error ratio, latency, down), each with
//! the promtool fixtures that prove it fires and stays quiet.
//!
//! Validation appends them to the model's dashboard panels and alerts, so
//! every later stage (render, its proof, lint's links, verify) treats them
//! like declared ones. Every name in them is a dependency name, checked to
//! be lower-case letters, digits and `_`: nothing to escape in PromQL.

use crate::manifest::dependencies::Dependency;
use crate::manifest::{Alert, AlertTest, Manifest, Panel, PanelTarget, PromDuration, TestSeries};
use std::collections::BTreeMap;

const DURATION: &str = "telltale_dependency_request_duration_seconds";

/// The error share past which the errors alert fires.
pub const ERROR_RATIO: f64 = 0.05;
/// The p95 past which the latency alert fires: half the dependency's
/// timeout, at most this.
pub const MAX_SLOW_SECONDS: f64 = 5.0;

/// `orders_db` → `OrdersDb`.
fn camel(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn target(expr: String, legend: &str) -> PanelTarget {
    PanelTarget {
        expr,
        legend: legend.into(),
    }
}

fn panel(title: String, kind: &str, unit: &str, targets: Vec<PanelTarget>) -> Panel {
    Panel {
        title,
        kind: kind.into(),
        description: String::new(),
        datasource: "prometheus".into(),
        targets,
        unit: unit.into(),
        thresholds: Vec::new(),
        width: 6,
        height: 8,
    }
}

/// The selector of dependency `d` on the dashboard's job and instance.
fn on_dashboard(d: &Dependency) -> String {
    format!(
        "job=~\"$job\", instance=~\"$instance\", dependency=\"{}\"",
        d.name
    )
}

/// The titles of `d`'s panels, in order: calls, errors, p95, state.
pub fn titles(d: &Dependency) -> [String; 4] {
    let n = &d.name;
    [
        format!("{n}: calls/s"),
        format!("{n}: errors"),
        format!("{n}: p95"),
        format!("{n}: state"),
    ]
}

/// `d`'s row; with `pooled`, its state panel shows the pool too.
pub fn panels(d: &Dependency, pooled: bool) -> Vec<Panel> {
    let sel = on_dashboard(d);
    let [calls, errors, p95, state] = titles(d);
    let mut state_targets = vec![
        target(format!("min(telltale_dependency_up{{{sel}}})"), "up"),
        target(
            format!("sum(telltale_dependency_requests_in_flight{{{sel}}})"),
            "in flight",
        ),
    ];
    if pooled {
        state_targets.extend([
            target(
                format!("sum(telltale_dependency_pool_size{{{sel}}})"),
                "pool size",
            ),
            target(
                format!("sum(telltale_dependency_pool_idle{{{sel}}})"),
                "pool idle",
            ),
            target(
                format!("sum(telltale_dependency_pool_waiting{{{sel}}})"),
                "waiting",
            ),
        ]);
    }
    vec![
        panel(
            calls,
            "timeseries",
            "reqps",
            vec![target(
                format!(
                    "sum by (operation, outcome) (rate({DURATION}_count{{{sel}}}[$__rate_interval]))"
                ),
                "{{operation}} {{outcome}}",
            )],
        ),
        panel(
            errors,
            "timeseries",
            "percentunit",
            vec![target(
                format!(
                    "sum(rate({DURATION}_count{{{sel}, outcome!=\"ok\"}}[$__rate_interval])) \
                     / sum(rate({DURATION}_count{{{sel}}}[$__rate_interval]))"
                ),
                "failed",
            )],
        ),
        panel(
            p95,
            "timeseries",
            "s",
            vec![target(
                format!(
                    "histogram_quantile(0.95, sum by (le, operation) (rate({DURATION}_bucket{{{sel}}}[$__rate_interval])))"
                ),
                "{{operation}}",
            )],
        ),
        panel(state, "timeseries", "short", state_targets),
    ]
}

fn series(s: String, values: &str) -> TestSeries {
    TestSeries {
        series: s,
        values: values.into(),
    }
}

/// The p95 threshold of `d`'s latency alert, in seconds.
pub fn slow_seconds(d: &Dependency) -> f64 {
    (d.timeout.get().as_secs_f64() / 2.0).min(MAX_SLOW_SECONDS)
}

/// `d`'s alerts: errors, latency, down (critical when `required`).
pub fn alerts(d: &Dependency, m: &Manifest) -> Vec<Alert> {
    vec![errors_alert(d, m), slow_alert(d, m), down_alert(d, m)]
}

/// A promtool series of `d`'s call durations: the `_count` with `outcome`,
/// or the `_bucket` at `le`.
fn call_series(d: &Dependency, m: &Manifest, outcome: &str, le: Option<&str>) -> String {
    let name = &d.name;
    let instance = m.scrape_target();
    let job_name = &m.service.name;
    let le = le.map(|l| format!(", le=\"{l}\"")).unwrap_or_default();
    format!(
        "{DURATION}_{}{{job=\"{job_name}\", instance=\"{instance}\", dependency=\"{name}\", operation=\"op\", outcome=\"{outcome}\"{le}}}",
        if le.is_empty() { "count" } else { "bucket" }
    )
}

/// The labels of `d`'s firing alert: job, dependency and `extra`.
fn fired_labels(d: &Dependency, m: &Manifest, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    [
        ("job", m.service.name.as_str()),
        ("dependency", d.name.as_str()),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// More than [`ERROR_RATIO`] of the calls to `d` fail.
fn errors_alert(d: &Dependency, m: &Manifest) -> Alert {
    let name = &d.name;
    let c = camel(name);
    let on = |outcome: &str, le: Option<&str>| call_series(d, m, outcome, le);
    let labels = |extra: &[(&str, &str)]| fired_labels(d, m, extra);
    let [_, errors_panel, _, _] = titles(d);
    Alert {
        name: format!("{c}DependencyErrors"),
        expr: format!(
            "sum by (job, dependency) (rate({DURATION}_count{{dependency=\"{name}\", outcome!=\"ok\"}}[5m])) \
             / sum by (job, dependency) (rate({DURATION}_count{{dependency=\"{name}\"}}[5m])) > {ERROR_RATIO}"
        ),
        for_: PromDuration::from_secs(300),
        severity: "warning".into(),
        summary: format!("Calls from {{{{ $labels.job }}}} to {name} fail"),
        description: format!(
            "More than {}% of the calls to dependency {name} failed (error, timeout or refused) over 5 minutes.",
            ERROR_RATIO * 100.0
        ),
        runbook_url: None,
        panel: Some(errors_panel),
        test: Some(AlertTest {
            firing: vec![
                series(on("error", None), "0+10x20"),
                series(on("ok", None), "0+10x20"),
            ],
            quiet: vec![
                series(on("error", None), "0x20"),
                series(on("ok", None), "0+10x20"),
            ],
            labels: labels(&[]),
            value: None,
            eval_time: Some(PromDuration::from_secs(900)),
        }),
    }
}

/// The p95 of the calls to `d` is above [`slow_seconds`].
fn slow_alert(d: &Dependency, m: &Manifest) -> Alert {
    let name = &d.name;
    let c = camel(name);
    let on = |outcome: &str, le: Option<&str>| call_series(d, m, outcome, le);
    let labels = |extra: &[(&str, &str)]| fired_labels(d, m, extra);
    let [_, _, p95_panel, _] = titles(d);
    let slow = slow_seconds(d);
    let slow_text = format!("{slow}");
    Alert {
        name: format!("{c}DependencySlow"),
        expr: format!(
            "histogram_quantile(0.95, sum by (job, dependency, le) (rate({DURATION}_bucket{{dependency=\"{name}\"}}[5m]))) > {slow_text}"
        ),
        for_: PromDuration::from_secs(300),
        severity: "warning".into(),
        summary: format!("Calls from {{{{ $labels.job }}}} to {name} are slow"),
        description: format!(
            "The 95th percentile of calls to dependency {name} has been above {slow_text}s (half its timeout) for 5 minutes."
        ),
        runbook_url: None,
        panel: Some(p95_panel),
        test: Some(AlertTest {
            // All in (5s, 10s]: p95 9.75 s; quiet: all within 10 ms.
            firing: vec![
                series(on("ok", Some("0.01")), "0x20"),
                series(on("ok", Some("5")), "0x20"),
                series(on("ok", Some("10")), "0+10x20"),
                series(on("ok", Some("+Inf")), "0+10x20"),
            ],
            quiet: vec![
                series(on("ok", Some("0.01")), "0+10x20"),
                series(on("ok", Some("5")), "0+10x20"),
                series(on("ok", Some("10")), "0+10x20"),
                series(on("ok", Some("+Inf")), "0+10x20"),
            ],
            labels: labels(&[]),
            value: None,
            eval_time: Some(PromDuration::from_secs(900)),
        }),
    }
}

/// The background health check of `d` fails.
fn down_alert(d: &Dependency, m: &Manifest) -> Alert {
    let name = &d.name;
    let c = camel(name);
    let instance = m.scrape_target();
    let job_name = &m.service.name;
    let labels = |extra: &[(&str, &str)]| fired_labels(d, m, extra);
    let [_, _, _, state_panel] = titles(d);
    let up = format!(
        "telltale_dependency_up{{job=\"{job_name}\", instance=\"{instance}\", dependency=\"{name}\"}}"
    );
    Alert {
        name: format!("{c}DependencyDown"),
        expr: format!("telltale_dependency_up{{dependency=\"{name}\"}} == 0"),
        for_: PromDuration::from_secs(60),
        severity: if d.required { "critical" } else { "warning" }.into(),
        summary: format!("{{{{ $labels.instance }}}} cannot reach {name}"),
        description: format!(
            "The background health check of dependency {name} has failed for a minute{}.",
            if d.required {
                ": /ready answers 503, so no traffic reaches this instance"
            } else {
                ""
            }
        ),
        runbook_url: None,
        panel: Some(state_panel),
        test: Some(AlertTest {
            firing: vec![series(up.clone(), "0x20")],
            quiet: vec![series(up, "1x20")],
            labels: labels(&[("instance", instance.as_str())]),
            value: None,
            eval_time: Some(PromDuration::from_secs(300)),
        }),
    }
}
