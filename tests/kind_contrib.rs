//! A kind of the user's contributes to the stages through the same trait
//! methods as the built-in ones: a metric source kind registered beside
//! the built-ins derives an alert (rendered with its promtool tests) and
//! says how `metrics[].alert` tunes it.

use std::sync::Arc;
use telltale::internals::manifest::{Diagnostics, Metric, MetricType};
use telltale::internals::model::contrib::{AlertCtx, AlertTuning, DerivedAlertRule};
use telltale::internals::model::kinds::{Installer, MetricCtx, MetricSourceKind, PreparedSource};
use telltale::KindRegistry;

/// `queue.depth`: a gauge that derives a backlog alert.
struct QueueDepth;
struct Prepared;

impl MetricSourceKind for QueueDepth {
    fn name(&self) -> &'static str {
        "queue.depth"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Gauge)?;
        Ok(Arc::new(Prepared))
    }
    fn derives_alert(&self) -> Option<&'static str> {
        Some("queue.depth gauges")
    }
}

impl PreparedSource for Prepared {
    fn install(&self, _: &Metric, _: &mut Installer<'_>) -> prometheus::Result<()> {
        Ok(())
    }
    fn alert_tuning(&self) -> Option<AlertTuning> {
        Some(AlertTuning {
            fixed_name: None,
            threshold: |t| (t < 1.0).then(|| "must be at least 1 message".to_string()),
        })
    }
    fn alerts(&self, metric: &Metric, ctx: &AlertCtx<'_>) -> Vec<DerivedAlertRule> {
        let tune = metric.alert.clone().unwrap_or_default();
        let above = tune.threshold.unwrap_or(100.0);
        let series = format!("{}{{{}, {}}}", metric.name, ctx.selector, ctx.instance);
        vec![DerivedAlertRule {
            name: tune.name.unwrap_or_else(|| "QueueBacklog".into()),
            expr: format!("max({}{{{}}}) > {above}", metric.name, ctx.selector),
            for_: tune.for_.unwrap_or_else(|| {
                telltale::internals::manifest::PromDuration::parse("5m").unwrap()
            }),
            severity: tune.severity.unwrap_or_else(|| "warning".into()),
            summary: format!("More than {above} messages wait"),
            description: String::new(),
            firing: vec![telltale::internals::manifest::TestSeries {
                series: series.clone(),
                values: format!("{}x30", above + 1.0),
            }],
            quiet: vec![telltale::internals::manifest::TestSeries {
                series,
                values: "0x30".into(),
            }],
            fired_labels: Default::default(),
            eval_margin_secs: 300,
            metrics: vec![metric.name.clone()],
            prefer: None,
        }]
    }
}

fn registry() -> KindRegistry {
    let mut r = KindRegistry::builtin();
    r.add_source_kind(Arc::new(QueueDepth)).unwrap();
    r
}

/// The demo manifest with a `queue.depth` gauge declared as `extra`.
fn validate(extra: &str) -> Result<telltale::internals::model::Model, Diagnostics> {
    let text = telltale::internals::manifest::load::EMBEDDED_MANIFEST.replacen(
        "metrics:\n",
        &format!("metrics:\n  - name: queue_depth\n    type: gauge\n    help: Messages waiting.\n    source: queue.depth\n{extra}"),
        1,
    );
    let loaded = telltale::internals::manifest::load_str("manifest.yaml", &text, None).unwrap();
    telltale::internals::model::validate(loaded, &registry())
}

#[test]
fn a_user_kinds_derived_alert_is_rendered_with_its_tests() {
    let model = validate("    alert: { threshold: 7 }\n").unwrap();
    let files = telltale::internals::render::render_all(&model, "logs".to_string()).unwrap();
    let rules = &files["prometheus/alerts.yml"];
    assert!(rules.contains("alert: \"QueueBacklog\""), "{rules}");
    assert!(rules.contains("max(queue_depth{"), "{rules}");
    assert!(rules.contains("> 7"), "{rules}");
    let tests = &files["prometheus/alerts.test.yml"];
    assert!(tests.contains("QueueBacklog fires"), "{tests}");
    assert!(tests.contains("QueueBacklog stays quiet"), "{tests}");
}

#[test]
fn a_user_kind_says_how_its_alert_is_tuned() {
    let errs = validate("    alert: { threshold: 0.5 }\n")
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("metrics[0].alert.threshold: must be at least 1 message"),
        "{errs}"
    );
    // The list of sources that derive an alert names it too.
    let text = telltale::internals::manifest::load::EMBEDDED_MANIFEST.replacen(
        "    source: system.memory\n",
        "    source: system.memory\n    alert: { threshold: 2 }\n",
        1,
    );
    let loaded = telltale::internals::manifest::load_str("manifest.yaml", &text, None).unwrap();
    let errs = telltale::internals::model::validate(loaded, &registry())
        .unwrap_err()
        .to_string();
    assert!(errs.contains("and queue.depth gauges derive one"), "{errs}");
}
