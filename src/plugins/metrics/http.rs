//! `http.requests` and `http.duration`: fed by the request middleware.
//! Label values come only from route templates and closed sets.

use crate::manifest::{Diagnostics, Metric, MetricType};
use crate::model::contrib::{AlertCtx, AlertTuning, DerivedAlertRule, Role};
use crate::model::kinds::{
    label_names, opts, Installer, MetricCtx, MetricSourceKind, PreparedSource,
};
use crate::render::rules::{num, percent, series};
use prometheus::{HistogramVec, IntCounterVec};
use std::sync::Arc;

pub struct HttpRequestsSource;
pub struct HttpDurationSource;
struct PreparedRequests {
    /// It has a `status` label: it derives the error-ratio alert.
    status: bool,
}
struct PreparedDuration {
    /// A latency objective reads it: `metrics[].alert` tunes the
    /// objective's P95High alert.
    latency: bool,
}

impl MetricSourceKind for HttpRequestsSource {
    fn name(&self) -> &'static str {
        "http.requests"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Counter)?;
        ctx.labels_within(&["method", "path", "status"])?;
        unique(ctx)?;
        Ok(Arc::new(PreparedRequests {
            status: ctx.metric.labels.iter().any(|l| l.name == "status"),
        }))
    }
    fn derives_alert(&self) -> Option<&'static str> {
        Some("the http.requests counter with a status label")
    }
}

impl MetricSourceKind for HttpDurationSource {
    fn name(&self) -> &'static str {
        "http.duration"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Histogram)?;
        // A status label would multiply every bucket by every status code.
        ctx.labels_within(&["method", "path"])?;
        unique(ctx)?;
        let latency = ctx.manifest.objectives.iter().any(|o| {
            o.metric == ctx.metric.name && o.kind == crate::manifest::ObjectiveKind::Latency
        });
        Ok(Arc::new(PreparedDuration { latency }))
    }
    fn derives_alert(&self) -> Option<&'static str> {
        Some("http.duration histograms of latency objectives")
    }
}

/// The middleware feeds one family per source.
fn unique(ctx: &MetricCtx<'_>) -> Result<(), Diagnostics> {
    let first = ctx
        .manifest
        .metrics
        .iter()
        .position(|m| m.source == ctx.metric.source);
    match first {
        Some(i) if i != ctx.index => Err(Diagnostics(vec![ctx.source.error(
            &ctx.at("source"),
            format!(
                "source {:?} already feeds metrics[{i}]; declare it once",
                ctx.metric.source
            ),
        )])),
        _ => Ok(()),
    }
}

impl PreparedSource for PreparedRequests {
    fn roles(&self) -> &[Role] {
        &[Role::RequestCounter]
    }
    fn alert_tuning(&self) -> Option<AlertTuning> {
        self.status.then_some(AlertTuning {
            fixed_name: None,
            threshold: |t| {
                (!(t > 0.0 && t < 1.0))
                    .then(|| format!("{t} must be a share of requests between 0 and 1 (exclusive)"))
            },
        })
    }
    /// HighErrorRatio: the share of 5xx responses over `rules.rate_window`
    /// is above the threshold.
    fn alerts(&self, metric: &Metric, ctx: &AlertCtx<'_>) -> Vec<DerivedAlertRule> {
        if !self.status {
            return Vec::new();
        }
        let tune = metric.alert.clone().unwrap_or_default();
        let r = &ctx.manifest.rules;
        let (c, sel, instance, w) = (&metric.name, ctx.selector, ctx.instance, &r.rate_window);
        let ratio = tune.threshold.unwrap_or(r.error_ratio);
        let for_ = tune.for_.unwrap_or_else(|| r.error_ratio_for.clone());
        let pct = percent(ratio);
        // Of 10 requests a second, enough 5xx to be above the threshold.
        let errors = ((ratio * 10.0).floor() as u32 + 1).min(10);
        let s = |status: &str, values: &str| {
            series(
                format!("{c}{{{sel}, {instance}, status=\"{status}\"}}"),
                values,
            )
        };
        vec![DerivedAlertRule {
            name: tune.name.unwrap_or_else(|| "HighErrorRatio".into()),
            expr: format!(
                "sum by (job) (rate({c}{{{sel}, status=~\"5..\"}}[{w}])) / sum by (job) (rate({c}{{{sel}}}[{w}])) > {}",
                num(ratio)
            ),
            severity: tune.severity.unwrap_or_else(|| "critical".into()),
            summary: format!("More than {pct}% of {{{{ $labels.job }}}} requests fail with 5xx"),
            description: format!(
                "The share of 5xx responses in {c} of {{{{ $labels.job }}}} over {w} has been above {pct}% for {for_}.",
            ),
            for_,
            firing: vec![
                s("500", &format!("0+{errors}x30")),
                s("200", &format!("0+{}x30", 10 - errors)),
            ],
            quiet: vec![s("500", "0x30"), s("200", "0+10x30")],
            fired_labels: [("job".to_string(), ctx.job.to_string())].into(),
            eval_margin_secs: 600,
            metrics: vec![c.clone()],
            prefer: Some("status"),
        }]
    }
    fn max_series(&self, m: &Metric, http: &crate::model::budget::HttpShape) -> usize {
        http_series(m, http)
    }
    fn keeps_values(&self) -> bool {
        true
    }
    fn install(&self, m: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        let v = IntCounterVec::new(opts(m), &label_names(m))?;
        inst.registry.register(Box::new(v.clone()))?;
        inst.http_requests = Some((v, m.labels.iter().map(|l| l.name.clone()).collect()));
        Ok(())
    }
}

impl PreparedSource for PreparedDuration {
    fn roles(&self) -> &[Role] {
        &[Role::RequestDuration]
    }
    fn alert_tuning(&self) -> Option<AlertTuning> {
        self.latency.then_some(AlertTuning {
            fixed_name: Some("a P95High alert is named after its objective (<Objective>P95High)"),
            threshold: |_| {
                Some("a P95High alert's threshold is its objective's threshold_seconds".into())
            },
        })
    }
    fn max_series(&self, m: &Metric, http: &crate::model::budget::HttpShape) -> usize {
        http_series(m, http)
    }
    fn keeps_values(&self) -> bool {
        true
    }
    fn install(&self, m: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        let mut o = prometheus::HistogramOpts::new(m.name.clone(), m.help.clone());
        if let Some(b) = &m.buckets {
            o = o.buckets(b.clone());
        }
        let v = HistogramVec::new(o, &label_names(m))?;
        inst.registry.register(Box::new(v.clone()))?;
        inst.http_duration = Some((v, m.labels.iter().map(|l| l.name.clone()).collect()));
        Ok(())
    }
}

/// Route templates × methods × statuses (the labels it has), times a
/// histogram's series per label set.
fn http_series(m: &Metric, http: &crate::model::budget::HttpShape) -> usize {
    m.labels.iter().map(|l| http.values(&l.name)).fold(
        crate::model::budget::per_label_set(m),
        usize::saturating_mul,
    )
}
