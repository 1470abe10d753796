//! Consistency lint: every query in the manifest refers to things the
//! manifest declares. Runs inside `validate`, so `serve` and `render` both
//! refuse an inconsistent manifest.
//!
//! - PromQL (panels, alerts): every metric is declared (`_bucket`/`_sum`/`_count`
//!   for histograms) and counters only appear under `rate`/`irate`/`increase`;
//! - LogQL (panels): every stream-selector label is a declared Loki label
//!   (`logging.labels`), and `level` values are levels the server writes;
//! - panels: the datasource is one of `stack.datasources`, the grid size fits;
//! - alerts: a promtool test fixture, and annotations that test can expand;
//! - rules: thresholds and durations of the derived alerts (each source
//!   says how its alert is tuned: [`PreparedSource::alert_tuning`]).

use super::kinds::PreparedSource;
use super::{logql, promql};
use crate::manifest::{Diagnostics, Manifest, MetricType, PromDuration, Source};
use crate::model::annotation;
use crate::model::contrib::AlertTuning;
use std::sync::Arc;
use std::time::Duration;

mod rules;
mod vocabulary;
use rules::*;
pub use vocabulary::*;

/// The closest name of `set` to `name` (case-insensitive first).
fn nearest<'a>(name: &str, set: &[&'a str]) -> &'a str {
    set.iter()
        .copied()
        .min_by_key(|c| {
            if c.eq_ignore_ascii_case(name) {
                0
            } else {
                1 + strsim::levenshtein(&name.to_ascii_lowercase(), &c.to_ascii_lowercase())
            }
        })
        .unwrap_or("")
}

/// `name` is not one of `set`: the message that says so, with the closest
/// name suggested when it is near enough to be a typo (within a third of
/// the name's length, at least 2 edits).
pub(crate) fn unknown_name(what: &str, name: &str, set: &[&str], listed: &str) -> String {
    let close = nearest(name, set);
    let near = !close.is_empty()
        && strsim::levenshtein(&name.to_ascii_lowercase(), &close.to_ascii_lowercase())
            <= (name.chars().count() / 3).max(2);
    let hint = if near {
        format!(": did you mean {close:?}?")
    } else {
        String::new()
    };
    format!(
        "unknown {what} {name:?}{hint} ({listed}: {})",
        set.join(", ")
    )
}

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
    for (n, k, _) in OWN_FAMILIES {
        match k {
            MetricType::Histogram => {
                for s in ["_bucket", "_sum", "_count"] {
                    out.push((format!("{n}{s}"), *k));
                }
            }
            _ => out.push((n.to_string(), *k)),
        }
    }
    out
}

/// The labels a series of `name` can carry: a declared metric's (with `le`
/// on a histogram's `_bucket`), Prometheus's own series', plus `job` and
/// `instance`, which every scraped series has. `None` for an unknown name.
fn labels_of(m: &Manifest, name: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = vec!["job".into(), "instance".into()];
    if SCRAPE_SERIES.contains(&name) {
        return Some(out);
    }
    let own = OWN_FAMILIES.iter().find(|(n, k, _)| match k {
        MetricType::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.strip_suffix(s) == Some(*n)),
        _ => *n == name,
    });
    if let Some((_, _, labels)) = own {
        out.extend(labels.iter().map(|l| l.to_string()));
        if name.ends_with("_bucket") {
            out.push("le".into());
        }
        return Some(out);
    }
    for metric in &m.metrics {
        let family = match metric.kind {
            MetricType::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| *f == metric.name),
            _ => (name == metric.name).then_some(name),
        };
        if family.is_some() {
            out.extend(metric.labels.iter().map(|l| l.name.clone()));
            if name.ends_with("_bucket") {
                out.push("le".into());
            }
            return Some(out);
        }
    }
    None
}

/// A diagnostic at `column` (0-based) inside the expression at `path`:
/// exact when the expression is a one-line scalar, plain or quoted.
fn at_column(
    src: &Source,
    path: &str,
    column: usize,
    message: String,
) -> crate::manifest::Diagnostic {
    let mut d = src.error(path, message);
    if let Some(line) = src.text.lines().nth(d.line.saturating_sub(1)) {
        let start = d.column.saturating_sub(1);
        let quoted = line[start.min(line.len())..].starts_with(['"', '\'']);
        d.column += column + usize::from(quoted);
    }
    d
}

/// Checks every panel and alert expression against the declared metrics,
/// and every JSON-datasource panel against the declared datasource targets.
///
/// `sources` holds each metric's prepared source (`None`: its kind is
/// unknown or refused it, and reported why); `derivers` says, for each
/// source kind that derives alerts, which of its metrics do.
pub fn check(
    src: &Source,
    m: &Manifest,
    sources: &[Option<Arc<dyn PreparedSource>>],
    derivers: &[&str],
    errs: &mut Diagnostics,
) {
    let exprs = PromqlCheck {
        src,
        m,
        exposed: exposed_names(m),
        scrape: m.stack.scrape_interval.get(),
    };
    let mut titles = std::collections::HashSet::new();
    for (i, p) in m.dashboard.panels.iter().enumerate() {
        check_panel(&exprs, i, p, &mut titles, errs);
    }
    for (i, a) in m.alerts.iter().enumerate() {
        exprs.check(&format!("alerts[{i}].expr"), &a.expr, errs);
        if let Some(t) = &a.panel {
            if !m.dashboard.panels.iter().any(|p| &p.title == t) {
                let known: Vec<&str> = m
                    .dashboard
                    .panels
                    .iter()
                    .map(|p| p.title.as_str())
                    .collect();
                errs.push(src.error(
                    &format!("alerts[{i}].panel"),
                    format!("no panel is titled {t:?} (panels: {})", known.join(", ")),
                ));
            }
        }
        if let Some(u) = &a.runbook_url {
            check_url_pattern(src, &format!("alerts[{i}].runbook_url"), u, errs);
        }
        check_alert(src, i, a, errs);
    }
    check_rules(src, m, sources, derivers, errs);
    check_dashboard_uid(src, m, errs);
}

/// What a PromQL expression is checked against: the declared and exposed
/// metrics, their labels, and the scrape interval (for range windows).
struct PromqlCheck<'a> {
    src: &'a Source,
    m: &'a Manifest,
    exposed: Vec<(String, MetricType)>,
    scrape: Duration,
}

impl PromqlCheck<'_> {
    /// Checks the expression at `path`: its syntax, its windows, each
    /// selected metric and label, and its grouping labels.
    fn check(&self, path: &str, expr: &str, errs: &mut Diagnostics) {
        let (src, scrape) = (self.src, self.scrape);
        let analysis = match promql::analyze(expr) {
            Ok(a) => a,
            Err(e) => {
                errs.push(at_column(
                    src,
                    path,
                    e.column,
                    format!(
                        "PromQL syntax error at column {} of the expression: {}",
                        e.column + 1,
                        e.message
                    ),
                ));
                return;
            }
        };
        check_windows(src, path, expr, scrape, errs);
        let known = self.selectors(path, &analysis, errs);
        self.grouping(path, &analysis, known, errs);
    }

    /// Each selected metric is declared (or Prometheus's own), has the labels
    /// matched on it, and a counter sits under `rate`, `irate` or
    /// `increase`. Returns the labels the selected metrics have.
    fn selectors(
        &self,
        path: &str,
        analysis: &promql::Analysis,
        errs: &mut Diagnostics,
    ) -> Vec<String> {
        let (src, m, exposed) = (self.src, self.m, &self.exposed);
        // Labels each selected metric has: its declared ones, plus the
        // target's (`job`, `instance`) and `le` on a histogram's buckets.
        let mut known: Vec<String> = Vec::new();
        for sel in &analysis.selectors {
            let has = labels_of(m, &sel.metric);
            if let Some(has) = &has {
                for l in &sel.labels {
                    if !has.contains(l) {
                        errs.push(src.error(
                            path,
                            format!(
                                "{:?} has no label {l:?} (its labels: {})",
                                sel.metric,
                                has.join(", ")
                            ),
                        ));
                    }
                }
                known.extend(has.iter().cloned());
            }
            if SCRAPE_SERIES.contains(&sel.metric.as_str()) {
                continue;
            }
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
        known
    }

    /// `by`/`without`/`on`/`ignoring` name labels of the metrics selected.
    fn grouping(
        &self,
        path: &str,
        analysis: &promql::Analysis,
        mut known: Vec<String>,
        errs: &mut Diagnostics,
    ) {
        let (src, m) = (self.src, self.m);
        // `by`/`without`/`on`/`ignoring` name labels of the metrics selected.
        if analysis
            .selectors
            .iter()
            .all(|s| labels_of(m, &s.metric).is_some())
        {
            for l in &analysis.grouping {
                if !known.contains(l) {
                    known.sort();
                    known.dedup();
                    errs.push(src.error(
                        path,
                        format!(
                            "grouping label {l:?} is not a label of any metric in the expression (they have: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
    }
}

/// One panel: a unique title, a known datasource, type and unit, a size
/// that fits the grid, and each target's query checked in its language.
fn check_panel<'a>(
    exprs: &PromqlCheck<'_>,
    i: usize,
    p: &'a crate::manifest::Panel,
    titles: &mut std::collections::HashSet<&'a str>,
    errs: &mut Diagnostics,
) {
    let (src, m) = (exprs.src, exprs.m);
    let at = |f: &str| format!("dashboard.panels[{i}].{f}");
    // A panel's id (and every link to it) is derived from its title.
    if !titles.insert(p.title.as_str()) {
        errs.push(src.error(
            &at("title"),
            format!(
                "panel title {:?} is used twice (titles name the panels that alerts link to)",
                p.title
            ),
        ));
    }
    if !DATASOURCES.contains(&p.datasource.as_str()) {
        errs.push(src.error(
            &at("datasource"),
            format!(
                "unknown datasource {:?} (known: prometheus = {:?}, loki = {:?}, json = {:?}, from stack.datasources)",
                p.datasource,
                m.stack.datasources.prometheus,
                m.stack.datasources.loki,
                m.stack.datasources.json
            ),
        ));
    }
    if p.targets.is_empty() {
        errs.push(src.error(&at("targets"), "a panel needs at least one target"));
    }
    if !PANEL_TYPES.contains(&p.kind.as_str()) {
        errs.push(src.error(
            &at("type"),
            format!(
                "unknown panel type {:?}: did you mean {:?}? (Grafana's: {})",
                p.kind,
                nearest(&p.kind, PANEL_TYPES),
                PANEL_TYPES.join(", ")
            ),
        ));
    }
    if !UNITS.contains(&p.unit.as_str())
        && !CUSTOM_UNIT_PREFIXES.iter().any(|c| p.unit.starts_with(c))
    {
        errs.push(src.error(
            &at("unit"),
            format!(
                "unknown unit {:?}: did you mean {:?}? (or a custom unit such as \"suffix: items\")",
                p.unit,
                nearest(&p.unit, UNITS)
            ),
        ));
    }
    if !(1..=24).contains(&p.width) {
        errs.push(src.error(
            &at("width"),
            format!("width {} must be 1-24 (the grid has 24 columns)", p.width),
        ));
    }
    if p.height == 0 {
        errs.push(src.error(&at("height"), "height must be at least 1"));
    }
    for (j, t) in p.targets.iter().enumerate() {
        let path = format!("dashboard.panels[{i}].targets[{j}].expr");
        match p.datasource.as_str() {
            "prometheus" => exprs.check(&path, &t.expr, errs),
            "loki" => check_logql(src, m, &path, &t.expr, errs),
            "json" => check_json_target(src, m, &path, &t.expr, errs),
            _ => {}
        }
    }
}

/// The dashboard's uid is also its file name: 1-40 of `[A-Za-z0-9_-]`.
fn check_dashboard_uid(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    if m.dashboard.uid.is_empty()
        || m.dashboard.uid.len() > 40
        || !m
            .dashboard
            .uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        errs.push(src.error(
            "dashboard.uid",
            "a dashboard uid is 1-40 characters of [A-Za-z0-9_-] (it is also the file name)",
        ));
    }
}

/// Stream selectors may only use declared Loki labels.
fn check_logql(src: &Source, m: &Manifest, path: &str, expr: &str, errs: &mut Diagnostics) {
    let matchers = match logql::stream_matchers(expr) {
        Ok(x) => x,
        Err(e) => {
            errs.push(src.error(path, format!("cannot read LogQL: {e}")));
            return;
        }
    };
    let identity = crate::manifest::LOKI_IDENTITY_LABELS
        .iter()
        .map(|(l, _)| *l);
    for mt in matchers {
        if !m.logging.labels.contains(&mt.label) && !identity.clone().any(|l| l == mt.label) {
            errs.push(src.error(
                path,
                format!(
                    "LogQL selector uses label {:?}, which is not a Loki label (logging.labels: {}; and the shippers' {})",
                    mt.label,
                    m.logging.labels.join(", "),
                    identity.clone().collect::<Vec<_>>().join(", ")
                ),
            ));
        } else if mt.label == "level" && mt.op == "=" && !LOG_LEVELS.contains(&mt.value.as_str()) {
            errs.push(src.error(
                path,
                format!(
                    "level {:?} never occurs (the server writes: {})",
                    mt.value,
                    LOG_LEVELS.join(", ")
                ),
            ));
        }
    }
}

/// A `datasource: json` panel names a target of the JSON datasource: it
/// must be declared under `datasource.targets`.
fn check_json_target(src: &Source, m: &Manifest, path: &str, expr: &str, errs: &mut Diagnostics) {
    let names: Vec<&str> = m
        .datasource
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    if !names.contains(&expr) {
        errs.push(src.error(
            path,
            format!(
                "JSON-datasource panel queries undeclared target {expr:?} (declared in datasource.targets: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
}

#[cfg(test)]
mod nearest_tests {
    use super::*;

    #[test]
    fn nearest_names_are_suggested() {
        assert_eq!(nearest("timeserie", PANEL_TYPES), "timeseries");
        assert_eq!(nearest("Stat", PANEL_TYPES), "stat");
        assert_eq!(nearest("reqs", UNITS), "reqps");
        assert_eq!(strsim::levenshtein("kitten", "sitting"), 3);
        let kinds = ["collection", "info", "probe"];
        assert_eq!(
            unknown_name("handler kind", "colection", &kinds, "registered"),
            "unknown handler kind \"colection\": did you mean \"collection\"? (registered: collection, info, probe)"
        );
        assert_eq!(
            unknown_name("handler kind", "no_such_kind", &kinds, "registered"),
            "unknown handler kind \"no_such_kind\" (registered: collection, info, probe)"
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::{load_str, Diagnostics};
    use crate::model::validate;

    const BASE: &str = include_str!("../../../manifest.yaml");

    /// Validates the repo manifest with `from` replaced by `to`.
    fn errors_with(from: &str, to: &str) -> Diagnostics {
        assert!(
            BASE.contains(from),
            "fixture text {from:?} not in manifest.yaml"
        );
        let text = BASE.replacen(from, to, 1);
        let loaded = load_str("m.yaml", &text, Some(env!("CARGO_MANIFEST_DIR").into())).unwrap();
        validate(loaded, &crate::plugins::KindRegistry::builtin())
            .expect_err("expected lint errors")
    }

    fn line_of(text: &str) -> usize {
        BASE.lines().position(|l| l.contains(text)).unwrap() + 1
    }

    #[test]
    fn repo_manifest_is_clean() {
        let loaded = load_str("m.yaml", BASE, Some(env!("CARGO_MANIFEST_DIR").into())).unwrap();
        validate(loaded, &crate::plugins::KindRegistry::builtin()).unwrap();
    }

    #[test]
    fn logql_label_must_be_declared() {
        // `service` is a field of the line; its label is `service_name`.
        let e = errors_with(r#"level="error"}"#, r#"service="x"}"#);
        assert_eq!(e.len(), 1, "{e}");
        let d = &e.0[0];
        assert!(d.message.contains(r#"label "service""#), "{d}");
        assert!(d.path.ends_with("targets[0].expr"), "{d}");
        assert_eq!(d.line, line_of(r#"level="error"}"#));
    }

    #[test]
    fn logql_level_value_must_exist() {
        let e = errors_with(r#"level="error"}"#, r#"level="fatal"}"#);
        assert!(e.0[0].message.contains("never occurs"), "{e}");
    }

    #[test]
    fn panel_datasource_must_exist() {
        let e = errors_with(
            "datasource: loki
      unit: short",
            "datasource: elastic
      unit: short",
        );
        assert_eq!(e.len(), 1, "{e}");
        assert!(
            e.0[0].message.contains(r#"unknown datasource "elastic""#),
            "{e}"
        );
        assert!(e.0[0].message.contains("telltale-loki"), "{e}");
        assert_eq!(e.0[0].line, line_of("datasource: loki"));
    }

    #[test]
    fn undeclared_metric_and_bare_counter_are_located() {
        let e = errors_with(
            "expr: system_cpu_usage_percent{",
            "expr: system_cpu_usage_ratio{",
        );
        assert!(e.0[0].message.contains("undeclared metric"), "{e}");
        let e = errors_with(
            "sum(increase(http_requests_total{job=~\"$job\", instance=~\"$instance\"}[$__range]))",
            "sum(http_requests_total)",
        );
        assert!(e.0[0].message.contains("must be wrapped in rate()"), "{e}");
    }

    #[test]
    fn alert_needs_a_test_and_testable_annotations() {
        let start = BASE.find("    test:\n").unwrap();
        let end = BASE[start..].find("\n\n").unwrap() + start;
        let e = errors_with(&BASE[start..end], "");
        assert_eq!(e.len(), 1, "{e}");
        assert!(e.0[0].message.contains("no `test:` fixture"), "{e}");
        assert_eq!(e.0[0].path, "alerts[0].name");
        let e = errors_with("{{ $labels.instance }}", "{{ $labels.region }}");
        assert!(e.0[0].message.contains(r#"label "region""#), "{e}");
        let e = errors_with("{{ $value }}", "{{ $value | humanize }}");
        assert!(e.0[0].message.contains("unsupported template"), "{e}");
    }

    #[test]
    fn grid_width_is_checked() {
        let e = errors_with("width: 24", "width: 30");
        assert!(e.0[0].message.contains("1-24"), "{e}");
    }
}
