//! The lint's checks of alerts and rules: each alert's promtool fixture,
//! annotations and runbook link, range windows against the scrape
//! interval, and the derived alerts' thresholds and durations.

use super::*;

/// A duration's seconds as the lint's messages write them (`60s`, `1.5s`).
pub(super) fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A hand-written alert must come with a test fixture its annotations can be checked against.
pub(super) fn check_alert(
    src: &Source,
    i: usize,
    a: &crate::manifest::Alert,
    errs: &mut Diagnostics,
) {
    let at = |f: &str| format!("alerts[{i}].{f}");
    if !crate::model::is_metric_name(&a.name) || a.name.contains(':') {
        errs.push(src.error(
            &at("name"),
            format!("{:?} is not a valid alert name", a.name),
        ));
    }
    let Some(t) = &a.test else {
        errs.push(src.error(
            &at("name"),
            "alert has no `test:` fixture; every alert gets a promtool unit test (firing and quiet series, see README)",
        ));
        return;
    };
    if t.firing.is_empty() {
        errs.push(src.error(&at("test.firing"), "needs at least one input series"));
    }
    for (field, text) in [("summary", &a.summary), ("description", &a.description)] {
        let check = || -> Result<(), String> {
            for l in annotation::labels_used(text)? {
                if l != "severity" && !t.labels.contains_key(&l) {
                    return Err(format!(
                        "uses label {l:?}, which test.labels does not give the firing alert"
                    ));
                }
            }
            if annotation::uses_value(text)? && t.value.is_none() {
                return Err("uses {{ $value }}, so test.value must be set".into());
            }
            Ok(())
        };
        if let Err(e) = check() {
            errs.push(src.error(&at(field), e));
        }
    }
}

/// Settings of the derived alerts.
/// A link pattern: an absolute http(s) URL whose only placeholders are
/// `{alert}` and `{service}`.
pub(super) fn check_url_pattern(src: &Source, path: &str, u: &str, errs: &mut Diagnostics) {
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        errs.push(src.error(path, format!("{u:?} is not an http(s) URL")));
    }
    let mut rest = u;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i..];
        let end = tail.find('}').map_or(tail.len(), |e| e + 1);
        let ph = &tail[..end];
        if ph != "{alert}" && ph != "{service}" {
            errs.push(src.error(
                path,
                format!("unknown placeholder {ph:?} (known: {{alert}}, {{service}})"),
            ));
        }
        rest = &tail[end..];
    }
}

/// Every literal range window is at least four scrape intervals: `rate()`
/// needs two samples in its window, and four leave room for a missed
/// scrape. Grafana's `$__rate_interval` is exactly that.
pub(super) fn check_windows(
    src: &Source,
    path: &str,
    expr: &str,
    scrape: Duration,
    errs: &mut Diagnostics,
) {
    for w in promql::windows(expr) {
        if w.text.starts_with('$') {
            continue;
        }
        match PromDuration::parse(&w.text) {
            Ok(d) if d.get() < 4 * scrape => errs.push(src.error(
                path,
                format!(
                    "window [{}] of {}() is shorter than 4 scrape intervals ({}, stack.scrape_interval {}): use at least {}{}",
                    w.text,
                    w.function.as_deref().unwrap_or("a range selector"),
                    secs(4 * scrape),
                    secs(scrape),
                    secs(4 * scrape),
                    if path.starts_with("dashboard.") { ", or $__rate_interval" } else { "" }
                ),
            )),
            Ok(_) => {}
            Err(_) => errs.push(src.error(
                path,
                format!("window [{}] is not a Prometheus duration such as 5m", w.text),
            )),
        }
    }
}

/// `items` as prose: `a`, `a and b`, `a, b and c`.
pub(super) fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `metrics[i].alert`: the metric derives an alert (its source's
/// `tuning`), and the settings fit it.
pub(super) fn check_derived(
    src: &Source,
    i: usize,
    metric: &crate::manifest::Metric,
    a: &crate::manifest::DerivedAlert,
    tuning: Option<AlertTuning>,
    derivers: &[&str],
    errs: &mut Diagnostics,
) {
    let at = |f: &str| format!("metrics[{i}].alert.{f}");
    let Some(tuning) = tuning else {
        let which = match derivers {
            [] => "no metric source derives one".to_string(),
            _ => format!("only {} derive one", and_list(derivers)),
        };
        errs.push(src.error(
            &format!("metrics[{i}].alert"),
            format!(
                "no alert is derived from {:?} (source {}): {which}",
                metric.name, metric.source
            ),
        ));
        return;
    };
    if let Some(n) = &a.name {
        if let Some(why) = tuning.fixed_name {
            errs.push(src.error(&at("name"), why));
        } else if !crate::model::is_metric_name(n) || n.contains(':') {
            errs.push(src.error(&at("name"), format!("{n:?} is not a valid alert name")));
        }
    }
    if let Some(why) = a.threshold.and_then(tuning.threshold) {
        errs.push(src.error(&at("threshold"), why));
    }
    if a.severity.as_deref().is_some_and(|s| s.trim().is_empty()) {
        errs.push(src.error(&at("severity"), "must not be empty"));
    }
}

pub(super) fn check_rules(
    src: &Source,
    m: &Manifest,
    sources: &[Option<Arc<dyn PreparedSource>>],
    derivers: &[&str],
    errs: &mut Diagnostics,
) {
    let r = &m.rules;
    check_url_pattern(src, "rules.runbook_url", &r.runbook_url, errs);
    for (i, (metric, source)) in m.metrics.iter().zip(sources).enumerate() {
        // A source that failed to prepare has its own errors.
        if let (Some(a), Some(source)) = (&metric.alert, source) {
            check_derived(src, i, metric, a, source.alert_tuning(), derivers, errs);
        }
    }
    let scrape = m.stack.scrape_interval.get();
    if r.rate_window.is_zero() {
        errs.push(src.error("rules.rate_window", "must be longer than 0s"));
    } else if r.rate_window.get() < 4 * scrape {
        errs.push(src.error(
            "rules.rate_window",
            format!(
                "{} is shorter than 4 scrape intervals ({}, stack.scrape_interval {}): the derived alerts' rate() would miss samples",
                r.rate_window,
                secs(4 * scrape),
                m.stack.scrape_interval
            ),
        ));
    }
    // The shortest SLO burn-rate window is 5m.
    if !m.objectives.is_empty() && scrape > Duration::from_secs(75) {
        errs.push(src.error(
            "stack.scrape_interval",
            format!(
                "{} is too long for the objectives: their shortest burn-rate window (5m) needs at least 4 scrapes (at most 75s)",
                m.stack.scrape_interval
            ),
        ));
    }
    if !(r.error_ratio > 0.0 && r.error_ratio < 1.0) {
        errs.push(src.error(
            "rules.error_ratio",
            format!("{} must be between 0 and 1 (exclusive)", r.error_ratio),
        ));
    }
    if !r.low_stock_above.is_finite() || r.low_stock_above < 0.0 {
        errs.push(src.error("rules.low_stock_above", "must be a number >= 0"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, o) in m.objectives.iter().enumerate() {
        if o.name.is_empty() || !names.insert(&o.name) {
            errs.push(src.error(
                &format!("objectives[{i}].name"),
                format!("objective name {:?} must be non-empty and unique", o.name),
            ));
        }
        let buckets = m
            .metrics
            .iter()
            .find(|x| x.name == o.metric)
            .and_then(|x| x.buckets.as_ref());
        if let (Some(t), Some(b)) = (o.threshold_seconds, buckets) {
            if b.last().is_some_and(|last| (last - t).abs() < 1e-12) {
                errs.push(src.error(
                    &format!("objectives[{i}].threshold_seconds"),
                    "the threshold is the largest bucket, so p95 could never be seen above it; add a larger bucket",
                ));
            }
        }
    }
}
