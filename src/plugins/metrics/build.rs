//! `build.info`: a constant 1 labelled with version and commit.

use crate::manifest::{Diagnostics, Metric, MetricType};
use crate::model::kinds::{
    label_names, opts, Installer, MetricCtx, MetricSourceKind, PreparedSource,
};
use prometheus::IntGaugeVec;
use std::sync::Arc;

pub struct BuildInfoSource;
/// The service's version and commit (`App::identity`).
struct PreparedBuildInfo {
    version: String,
    commit: String,
}

impl MetricSourceKind for BuildInfoSource {
    fn name(&self) -> &'static str {
        "build.info"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Gauge)?;
        ctx.labels_within(&["version", "commit"])?;
        Ok(Arc::new(PreparedBuildInfo {
            version: ctx.identity.version.clone(),
            commit: ctx.identity.commit.clone(),
        }))
    }
}

impl PreparedSource for PreparedBuildInfo {
    fn install(&self, m: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        let g = IntGaugeVec::new(opts(m), &label_names(m))?;
        let values: Vec<&str> = m
            .labels
            .iter()
            .map(|l| {
                if l == "version" {
                    self.version.as_str()
                } else {
                    self.commit.as_str()
                }
            })
            .collect();
        g.with_label_values(&values).set(1);
        inst.registry.register(Box::new(g))
    }
}
