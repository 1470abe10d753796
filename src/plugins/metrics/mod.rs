//! Metric source kinds (`metrics[].source`): what feeds each declared family.
//!
//! `prepare()` checks the declaration (type, labels, options) during
//! validation; `install()` registers the family in the server's registry and
//! hands the server whatever it needs to keep it current.

pub use crate::manifest::{Diagnostics, Manifest, Metric, MetricType, Source};
pub use crate::model::kinds::{
    label_names, opts, Installer, MetricCtx, MetricSourceKind, PreparedSource, Sampler,
};
pub use std::sync::Arc;
pub use std::time::Duration;

pub mod app;
mod build;
mod collection;
mod http;
mod system;

pub use crate::model::data::{is_below, Item};
pub use crate::model::COMMIT;

/// The built-in kinds, as `Registry::builtin` registers them.
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
