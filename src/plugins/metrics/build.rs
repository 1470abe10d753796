//! `build.info`: a constant 1 labelled with version and commit.

use super::*;
use prometheus::IntGaugeVec;

pub struct Info;
struct Prepared;

/// Git commit the binary was built from (set by build.rs).
pub use crate::model::COMMIT;

impl MetricSourceKind for Info {
    fn name(&self) -> &'static str {
        "build.info"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Gauge)?;
        ctx.labels_within(&["version", "commit"])?;
        Ok(Arc::new(Prepared))
    }
}

impl PreparedSource for Prepared {
    fn install(&self, m: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        let g = IntGaugeVec::new(opts(m), &label_names(m))?;
        let version = env!("CARGO_PKG_VERSION");
        let values: Vec<&str> = m
            .labels
            .iter()
            .map(|l| if l == "version" { version } else { COMMIT })
            .collect();
        g.with_label_values(&values).set(1);
        inst.registry.register(Box::new(g))
    }
}
