//! Metric source kinds (`metrics[].source`): what feeds each declared family.
//!
//! `prepare()` checks the declaration (type, labels, options) during
//! validation; `install()` registers the family in the server's registry and
//! hands the server whatever it needs to keep it current.

use crate::manifest::{Diagnostics, Manifest, Metric, MetricType, Source};
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::sync::Arc;
use std::time::Duration;

pub mod app;
mod build;
mod collection;
mod http;
mod system;

pub use build::COMMIT;
pub use collection::{below_threshold_items, is_below, Item};

/// The built-in kinds, as [`crate::plugins::Registry::builtin`] registers them.
pub(crate) fn builtin() -> Vec<Arc<dyn MetricSourceKind>> {
    vec![
        Arc::new(http::Requests),
        Arc::new(http::Duration),
        Arc::new(system::Cpu),
        Arc::new(system::Memory),
        Arc::new(collection::BelowThreshold),
        Arc::new(build::Info),
        Arc::new(app::Kind),
    ]
}

/// What a kind sees while preparing one metric.
pub struct MetricCtx<'a> {
    pub index: usize,
    pub metric: &'a Metric,
    pub manifest: &'a Manifest,
    pub source: &'a Source,
}

impl MetricCtx<'_> {
    pub fn at(&self, field: &str) -> String {
        format!("metrics[{}].{field}", self.index)
    }
    fn fail(&self, field: &str, msg: String) -> Diagnostics {
        Diagnostics(vec![self.source.error(&self.at(field), msg)])
    }
    /// The source only feeds one metric type.
    pub fn require_type(&self, t: MetricType) -> Result<(), Diagnostics> {
        if self.metric.kind == t {
            return Ok(());
        }
        Err(self.fail(
            "type",
            format!(
                "source {:?} produces a {}, not a {}",
                self.metric.source,
                t.as_str(),
                self.metric.kind.as_str()
            ),
        ))
    }
    /// Labels must come from this closed set (bounded cardinality).
    pub fn labels_within(&self, allowed: &[&str]) -> Result<(), Diagnostics> {
        for (j, l) in self.metric.labels.iter().enumerate() {
            if !l.values.is_empty() || l.fallback.is_some() {
                return Err(Diagnostics(vec![self.source.error(
                    &self.at(&format!("labels[{j}]")),
                    format!(
                        "source {:?} fills label {:?} itself; values and fallback are for source: app",
                        self.metric.source, l.name
                    ),
                )]));
            }
            if !allowed.contains(&l.name.as_str()) {
                return Err(Diagnostics(vec![self.source.error(
                    &self.at(&format!("labels[{j}]")),
                    format!(
                        "source {:?} cannot fill label {l:?} (it can fill: {})",
                        self.metric.source,
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                )]));
            }
        }
        Ok(())
    }
    /// Parses `options:` as `T` (unknown keys are errors).
    pub fn options<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Diagnostics> {
        let mut errs = Diagnostics::default();
        self.source
            .options(&self.metric.options, &self.at("options"), &mut errs)
            .ok_or(errs)
    }
}

/// A metric source kind.
pub trait MetricSourceKind: Send + Sync {
    /// The name used in `metrics[].source`.
    fn name(&self) -> &'static str;
    /// Checks the declaration and options.
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics>;
}

/// A validated source, ready to install.
pub trait PreparedSource: Send + Sync {
    /// Registers the family in `inst.registry` and wires it up.
    fn install(&self, metric: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()>;
    /// The most series this family can expose (see `manifest::budget`):
    /// by default the product of its labels' declared values (each with
    /// its fallback), times the series of one histogram sample.
    fn max_series(&self, metric: &Metric, _http: &crate::manifest::budget::HttpShape) -> usize {
        metric
            .labels
            .iter()
            .map(|l| l.series_values().len().max(1))
            .fold(
                crate::manifest::budget::per_label_set(metric),
                usize::saturating_mul,
            )
    }
    /// For `source: app`: the family handlers' `setup` may ask for.
    fn app_family(&self) -> Option<Arc<app::AppFamily>> {
        None
    }
}

/// Something to run on a timer (not per request).
pub struct Sampler {
    pub every: Duration,
    pub tick: Box<dyn FnMut() + Send>,
}

/// What installing sources produces for the server.
pub struct Installer<'a> {
    pub registry: &'a Registry,
    /// Fed by the HTTP middleware on every request.
    /// With the declared label names, in order.
    pub http_requests: Option<(IntCounterVec, Vec<String>)>,
    pub http_duration: Option<(HistogramVec, Vec<String>)>,
    pub samplers: Vec<Sampler>,
}

/// `prometheus::Opts` for a declared metric.
pub fn opts(m: &Metric) -> prometheus::Opts {
    prometheus::Opts::new(m.name.clone(), m.help.clone())
}

/// Label names as `&str`.
pub fn label_names(m: &Metric) -> Vec<&str> {
    m.labels.iter().map(|l| l.name.as_str()).collect()
}
