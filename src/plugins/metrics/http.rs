//! `http.requests` and `http.duration`: fed by the request middleware.
//! Label values come only from route templates and closed sets.

use super::*;
use prometheus::{HistogramVec, IntCounterVec};

pub struct Requests;
pub struct Duration;
struct PreparedRequests;
struct PreparedDuration;

impl MetricSourceKind for Requests {
    fn name(&self) -> &'static str {
        "http.requests"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Counter)?;
        ctx.labels_within(&["method", "path", "status"])?;
        unique(ctx)?;
        Ok(Arc::new(PreparedRequests))
    }
}

impl MetricSourceKind for Duration {
    fn name(&self) -> &'static str {
        "http.duration"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Histogram)?;
        // A status label would multiply every bucket by every status code.
        ctx.labels_within(&["method", "path"])?;
        unique(ctx)?;
        Ok(Arc::new(PreparedDuration))
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
