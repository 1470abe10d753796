//! Metric source kinds (`metrics[].source`): what feeds each declared family.
//!
//! `prepare()` checks the declaration (type, labels, options) during
//! validation; `install()` registers the family in the server's registry and
//! hands the server whatever it needs to keep it current.

pub use crate::model::kinds::MetricSourceKind;
use std::sync::Arc;

pub mod app;
mod build;
mod collection;
mod http;
mod system;

/// The built-in kinds, as `KindRegistry::builtin` registers them.
pub(crate) fn builtin() -> Vec<Arc<dyn MetricSourceKind>> {
    vec![
        Arc::new(http::HttpRequestsSource),
        Arc::new(http::HttpDurationSource),
        Arc::new(system::CpuSource),
        Arc::new(system::MemorySource),
        Arc::new(collection::BelowThresholdSource),
        Arc::new(build::BuildInfoSource),
        Arc::new(app::AppMetricSource),
    ]
}
