//! Consistency lint: every query in the manifest refers to things the
//! manifest declares. Runs inside `validate`, so `serve` and `render` both
//! refuse an inconsistent manifest.

use crate::manifest::{Diagnostics, Manifest, MetricType, Source};
use crate::promql;

/// Series names a declared metric exposes (histograms have three).
fn exposed_names(m: &Manifest) -> Vec<(String, MetricType)> {
    let mut out = Vec::new();
    for metric in &m.metrics {
        match metric.kind {
            MetricType::Histogram => {
                for s in ["_bucket", "_sum", "_count"] {
                    out.push((format!("{}{s}", metric.name), MetricType::Histogram));
                }
            }
            k => out.push((metric.name.clone(), k)),
        }
    }
    out
}

/// Checks every panel and alert expression against the declared metrics,
/// and every JSON-datasource panel against the declared datasource targets.
pub fn check(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let exposed = exposed_names(m);
    let check_expr = |path: &str, expr: &str, errs: &mut Diagnostics| {
        for sel in promql::selectors(expr) {
            match exposed.iter().find(|(n, _)| *n == sel.metric) {
                None => errs.push(src.error(
                    path,
                    format!("expression uses undeclared metric {:?}", sel.metric),
                )),
                Some((_, MetricType::Counter))
                    if !matches!(sel.function.as_deref(), Some("rate" | "irate" | "increase")) =>
                {
                    errs.push(src.error(
                        path,
                        format!(
                            "counter {:?} must be wrapped in rate(), irate() or increase()",
                            sel.metric
                        ),
                    ))
                }
                _ => {}
            }
        }
    };
    for (i, p) in m.dashboard.panels.iter().enumerate() {
        if p.datasource == "json" {
            check_json_panel(src, m, i, errs);
            continue;
        }
        if p.datasource != "prometheus" {
            continue;
        }
        for (j, t) in p.targets.iter().enumerate() {
            check_expr(
                &format!("dashboard.panels[{i}].targets[{j}].expr"),
                &t.expr,
                errs,
            );
        }
    }
    for (i, a) in m.alerts.iter().enumerate() {
        check_expr(&format!("alerts[{i}].expr"), &a.expr, errs);
    }
}

/// A `datasource: json` panel queries targets by name: each must be declared
/// under `datasource.targets`.
fn check_json_panel(src: &Source, m: &Manifest, i: usize, errs: &mut Diagnostics) {
    let names: Vec<&str> = m
        .datasource
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    for (j, t) in m.dashboard.panels[i].targets.iter().enumerate() {
        if !names.contains(&t.expr.as_str()) {
            errs.push(src.error(
                &format!("dashboard.panels[{i}].targets[{j}].expr"),
                format!(
                    "JSON-datasource panel queries undeclared target {:?} (declared in datasource.targets: {})",
                    t.expr,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
    }
}
