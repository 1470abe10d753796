//! Alerting and recording rules derived from the manifest, each alert with
//! the promtool unit tests that prove it fires and stays quiet.
//!
//! Groups, in order:
//! - `<service>.slo.<objective>`: error-ratio recording rules over every
//!   burn-rate window, then Sloth-style multi-window multi-burn-rate alerts
//!   (page: 14.4x over 5m and 1h, or 6x over 30m and 6h; ticket: 3x over 2h
//!   and 1d, or 1x over 6h and 3d), built in `slo`;
//! - `<service>.service`: per metric, the alerts its source derives (a
//!   high 5xx ratio, low stock: [`crate::model::kinds::PreparedSource::alerts`]) and p95 above
//!   each latency objective on it; then target down;
//! - `<service>.manifest`: the hand-written `alerts:` with their fixtures.

use super::escape;
use super::links;
use crate::manifest::{
    Manifest, Metric, MetricType, Objective, ObjectiveKind, PromDuration, TestSeries,
};
use crate::model::annotation;
use crate::model::contrib::{AlertCtx, DerivedAlertRule};
use crate::model::Model;
use serde::Serialize;
use std::collections::BTreeMap;

mod slo;
use slo::slo_group;

/// One rule of `alerts.yml`.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// Recording rule name, or `None` for an alert.
    pub record: Option<String>,
    /// Alert name, or `None` for a recording rule.
    pub alert: Option<String>,
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// One promtool test case: an alert evaluated once over synthetic series.
#[derive(Debug, Clone, Serialize)]
pub struct PromtoolAlertTest {
    pub name: String,
    pub alertname: String,
    pub eval_time: String,
    pub input_series: Vec<TestSeries>,
    /// The expected alert, or `None` when it must stay quiet.
    pub expect: Option<Expected>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Everything `alerts.yml` and `alerts.test.yml` are rendered from.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSet {
    pub groups: Vec<Group>,
    pub tests: Vec<PromtoolAlertTest>,
}

/// A burn-rate condition: the ratio over `short` and over `long` both exceed `factor` × budget.
pub type BurnWindows = (&'static str, &'static str, f64);

/// Burn-rate alerts: kind, severity, and two window pairs (either one fires).
pub const BURN_ALERTS: &[(&str, &str, [BurnWindows; 2])] = &[
    ("page", "critical", [("5m", "1h", 14.4), ("30m", "6h", 6.0)]),
    ("ticket", "warning", [("2h", "1d", 3.0), ("6h", "3d", 1.0)]),
];

/// Every window an error ratio is recorded over.
pub const SLO_WINDOWS: &[&str] = &["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// Recording rule name of the error ratio over `window`.
pub fn ratio_record(window: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// Instance label used in the synthetic test series.
const TEST_INSTANCE: &str = "test:8001";

/// `checkout-flow` → `CheckoutFlow`.
pub fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A number as PromQL and YAML print it (`0.25`, `5`).
pub fn num(x: f64) -> String {
    x.to_string()
}

/// `fraction` as a percentage for people to read: rounded to 12
/// significant digits and printed the shortest way, so the noise of float
/// arithmetic goes (14.4 × 0.005 × 100 is `7.2`, not `7.200000000000006`).
pub fn percent(fraction: f64) -> String {
    let x = fraction * 100.0;
    if !x.is_finite() {
        return num(x);
    }
    format!("{x:.11e}")
        .parse::<f64>()
        .map_or_else(|_| num(x), num)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One promtool input series.
pub fn series(s: String, values: &str) -> TestSeries {
    TestSeries {
        series: s,
        values: values.into(),
    }
}

/// Builder of one alert and its two tests.
struct AlertSpec {
    name: String,
    expr: String,
    for_: Option<String>,
    severity: String,
    summary: String,
    description: String,
    firing: Vec<TestSeries>,
    quiet: Vec<TestSeries>,
    /// Labels of the firing alert besides alertname and severity.
    fired_labels: BTreeMap<String, String>,
    value: Option<f64>,
    eval_time: String,
    /// Metric families it is about (its panel is the first that shows one).
    metrics: Vec<String>,
    /// A label its panel should show (`status` for error alerts).
    prefer: Option<&'static str>,
    /// A panel title chosen in the manifest, and a runbook of its own.
    panel: Option<String>,
    runbook: Option<String>,
}

impl AlertSpec {
    /// The alert's links: its runbook, the dashboard, and the panel that
    /// shows its metric (when one does).
    fn links(&self, m: &Manifest) -> Vec<(&'static str, String)> {
        let runbook = self
            .runbook
            .clone()
            .unwrap_or_else(|| m.rules.runbook_url.clone())
            .replace("{alert}", &self.name)
            .replace("{service}", &m.service.name);
        let mut out = vec![
            ("runbook_url", go_text(&runbook)),
            ("dashboard_url", go_text(&links::dashboard_url(m))),
        ];
        let metrics: Vec<&str> = self.metrics.iter().map(String::as_str).collect();
        if let Some(i) = links::panel_for(m, &metrics, self.prefer, self.panel.as_deref()) {
            let id = links::panel_ids(&m.dashboard.panels)[i];
            out.push(("panel_url", go_text(&links::panel_url(m, id))));
        }
        out
    }

    fn push(
        self,
        m: &Manifest,
        rules: &mut Vec<Rule>,
        tests: &mut Vec<PromtoolAlertTest>,
    ) -> Result<(), String> {
        let mut annotations = BTreeMap::new();
        for (k, v) in self.links(m) {
            annotations.insert(k.to_string(), v);
        }
        annotations.insert("summary".to_string(), self.summary);
        if !self.description.is_empty() {
            annotations.insert("description".to_string(), self.description);
        }
        let mut exp_labels = self.fired_labels.clone();
        exp_labels.insert("severity".into(), self.severity.clone());
        let exp_annotations = annotations
            .iter()
            .map(|(k, t)| {
                annotation::expand(t, &exp_labels, self.value)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| format!("alert {}: {k}: {e}", self.name))
            })
            .collect::<Result<_, _>>()?;
        tests.push(PromtoolAlertTest {
            name: format!("{} fires", self.name),
            alertname: self.name.clone(),
            eval_time: self.eval_time.clone(),
            input_series: self.firing,
            expect: Some(Expected {
                labels: exp_labels,
                annotations: exp_annotations,
            }),
        });
        tests.push(PromtoolAlertTest {
            name: format!("{} stays quiet", self.name),
            alertname: self.name.clone(),
            eval_time: self.eval_time,
            input_series: self.quiet,
            expect: None,
        });
        rules.push(Rule {
            record: None,
            alert: Some(self.name),
            expr: self.expr,
            for_: self.for_,
            labels: labels(&[("severity", &self.severity)]),
            annotations,
        });
        Ok(())
    }
}

/// `for` plus a margin of seconds, as a promtool eval time.
fn after(for_: &PromDuration, margin: u64) -> String {
    promql_parser::util::display_duration(&(for_.get() + std::time::Duration::from_secs(margin)))
}

/// Manifest text put into an annotation template: printed as written.
fn go_text(s: &str) -> String {
    escape::go_template_text(s)
}

/// A metric's derived-alert settings (`metrics[].alert`), or the defaults.
fn tuning(metric: &Metric) -> crate::manifest::DerivedAlert {
    metric.alert.clone().unwrap_or_default()
}

impl AlertSpec {
    /// The spec of an alert a kind derived.
    fn derived(a: DerivedAlertRule) -> AlertSpec {
        AlertSpec {
            eval_time: after(&a.for_, a.eval_margin_secs),
            for_: Some(a.for_.to_string()),
            name: a.name,
            expr: a.expr,
            severity: a.severity,
            summary: a.summary,
            description: a.description,
            firing: a.firing,
            quiet: a.quiet,
            fired_labels: a.fired_labels,
            value: None,
            metrics: a.metrics,
            prefer: a.prefer,
            panel: None,
            runbook: None,
        }
    }
}

/// Builds every group and test.
pub fn build(model: &Model) -> Result<RuleSet, String> {
    let m = &model.manifest;
    let job = super::stack::service_job(m);
    let sel = format!("job=\"{job}\"");
    let mut groups = Vec::new();
    let mut tests = Vec::new();
    for o in &m.objectives {
        groups.push(slo_group(m, o, job, &sel, &mut tests)?);
    }
    groups.push(service_group(model, job, &sel, &mut tests)?);
    if let Some(group) = manifest_group(m, job, &mut tests)? {
        groups.push(group);
    }
    unique_alert_names(&groups)?;
    Ok(RuleSet { groups, tests })
}

/// `<service>.service`: per metric, the alerts its source derives and p95
/// above each latency objective on it; then target down.
fn service_group(
    model: &Model,
    job: &str,
    sel: &str,
    tests: &mut Vec<PromtoolAlertTest>,
) -> Result<Group, String> {
    let m = &model.manifest;
    let r = &m.rules;
    let mut rules = Vec::new();
    let instance = format!("instance=\"{TEST_INSTANCE}\"");
    let ctx = AlertCtx {
        manifest: m,
        job,
        selector: sel,
        instance: &instance,
        test_instance: TEST_INSTANCE,
    };
    for (metric, source) in m.metrics.iter().zip(&model.sources) {
        if tuning(metric).enabled {
            for a in source.alerts(metric, &ctx) {
                AlertSpec::derived(a).push(m, &mut rules, tests)?;
            }
        }
        for o in (m.objectives.iter())
            .filter(|o| o.kind == ObjectiveKind::Latency && o.metric == metric.name)
        {
            let tune = tuning(metric);
            if !tune.enabled {
                continue;
            }
            latency_alert(m, metric, o, &tune, job, sel, &instance)?.push(m, &mut rules, tests)?;
        }
    }
    let up = format!("up{{{sel}, {instance}}}");
    AlertSpec {
        name: "TargetDown".into(),
        expr: "up == 0".into(),
        for_: Some(r.target_down_for.to_string()),
        severity: "critical".into(),
        summary: "Scrape target {{ $labels.instance }} of {{ $labels.job }} is down".into(),
        description: format!(
            "up is 0: Prometheus has failed to scrape {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) for {}.",
            r.target_down_for
        ),
        firing: vec![series(up.clone(), "0x20")],
        quiet: vec![series(up, "1x20")],
        fired_labels: labels(&[("job", job), ("instance", TEST_INSTANCE)]),
        value: None,
        eval_time: after(&r.target_down_for, 300),
        metrics: vec!["up".into()],
        prefer: None,
        panel: None,
        runbook: None,
    }
    .push(m, &mut rules, tests)?;
    Ok(Group {
        name: format!("{job}.service"),
        rules,
    })
}

/// p95 of the histogram `metric` above the latency objective `o`.
fn latency_alert(
    m: &Manifest,
    metric: &Metric,
    o: &Objective,
    tune: &crate::manifest::DerivedAlert,
    job: &str,
    sel: &str,
    instance: &str,
) -> Result<AlertSpec, String> {
    let r = &m.rules;
    let w = &r.rate_window;
    let h = &o.metric;
    let for_ = tune.for_.clone().unwrap_or_else(|| r.latency_for.clone());
    let t = o.threshold_seconds.unwrap_or_default();
    let buckets = match metric.kind {
        MetricType::Histogram => metric.buckets.clone().unwrap_or_default(),
        _ => Vec::new(),
    };
    let next = buckets
        .iter()
        .find(|b| **b > t)
        .map(|b| num(*b))
        .ok_or_else(|| format!("objective {}: no bucket above the threshold", o.name))?;
    let b = |le: &str| format!("{h}_bucket{{{sel}, {instance}, le=\"{le}\"}}");
    Ok(AlertSpec {
        name: format!("{}P95High", camel(&o.name)),
        expr: format!(
            "histogram_quantile(0.95, sum by (job, le) (rate({h}_bucket{{{sel}}}[{w}]))) > {}",
            num(t)
        ),
        for_: Some(for_.to_string()),
        severity: tune.severity.clone().unwrap_or_else(|| "warning".into()),
        summary: format!(
            "p95 latency of {{{{ $labels.job }}}} is above {}s ({} objective)",
            num(t),
            o.name
        ),
        description: format!(
            "The 95th percentile of {h} over {w} has been above the {} objective's {}s threshold for {for_}.",
            o.name,
            num(t),
        ),
        firing: vec![
            series(b(&num(t)), "0+1x40"),
            series(b(&next), "0+10x40"),
            series(b("+Inf"), "0+10x40"),
        ],
        quiet: vec![
            series(b(&num(t)), "0+10x40"),
            series(b(&next), "0+10x40"),
            series(b("+Inf"), "0+10x40"),
        ],
        fired_labels: labels(&[("job", job)]),
        value: None,
        eval_time: after(&for_, 600),
        metrics: vec![h.clone()],
        prefer: None,
        panel: None,
        runbook: None,
    })
}

/// `<service>.manifest`: the hand-written alerts with their fixtures, or
/// `None` when there are none.
fn manifest_group(
    m: &Manifest,
    job: &str,
    tests: &mut Vec<PromtoolAlertTest>,
) -> Result<Option<Group>, String> {
    let mut rules = Vec::new();
    for a in &m.alerts {
        let t = a
            .test
            .as_ref()
            .ok_or_else(|| format!("alert {} has no test fixture", a.name))?;
        AlertSpec {
            name: a.name.clone(),
            expr: a.expr.clone(),
            for_: Some(a.for_.to_string()),
            severity: a.severity.clone(),
            summary: a.summary.clone(),
            // It names the metric and the threshold: the expression is
            // added unless the text already names one of its metrics.
            description: if a.description.is_empty() {
                format!("`{}` has held for {}.", go_text(&a.expr), a.for_)
            } else if links::families(&a.expr)
                .iter()
                .any(|f| a.description.contains(f.as_str()))
            {
                a.description.clone()
            } else {
                format!("{} (`{}` for {})", a.description, go_text(&a.expr), a.for_)
            },
            firing: t.firing.clone(),
            quiet: t.quiet.clone(),
            fired_labels: t.labels.clone(),
            value: t.value,
            eval_time: t
                .eval_time
                .as_ref()
                .map_or_else(|| after(&a.for_, 300), PromDuration::to_string),
            metrics: links::families(&a.expr),
            prefer: None,
            panel: a.panel.clone(),
            runbook: a.runbook_url.clone(),
        }
        .push(m, &mut rules, tests)?;
    }
    Ok((!rules.is_empty()).then(|| Group {
        name: format!("{job}.manifest"),
        rules,
    }))
}

/// Fails when two alerts share a name.
fn unique_alert_names(groups: &[Group]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for rule in groups.iter().flat_map(|g| &g.rules) {
        if let Some(a) = &rule.alert {
            if !seen.insert(a.clone()) {
                return Err(format!(
                    "alert name {a} is used twice (a hand-written alert clashes with a derived one?)"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        assert_eq!(camel("checkout-flow"), "CheckoutFlow");
        assert_eq!(camel("latency"), "Latency");
        assert_eq!(after(&PromDuration::from_secs(4440), 60), "1h15m");
        assert_eq!(after(&PromDuration::from_secs(0), 900), "15m");
        assert_eq!(after(&PromDuration::from_secs(86400), 1), "1d1s");
        assert_eq!(after(&PromDuration::from_millis(1500), 0), "1s500ms");
        assert_eq!(after(&PromDuration::from_millis(500), 0), "500ms");
    }
}
