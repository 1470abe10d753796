//! `collection.below_threshold`: how many items of a collection endpoint
//! have a numeric field below a threshold (the seed's low-stock gauge).

use super::*;
use prometheus::IntGauge;

pub struct BelowThreshold;

struct Prepared {
    count: i64,
}

impl MetricSourceKind for BelowThreshold {
    fn name(&self) -> &'static str {
        "collection.below_threshold"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Gauge)?;
        ctx.labels_within(&[])?;
        let items = below_threshold_items(ctx.source, ctx.manifest, ctx.index)?;
        Ok(Arc::new(Prepared {
            count: items.len() as i64,
        }))
    }
}

impl PreparedSource for Prepared {
    fn install(&self, m: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        let g = IntGauge::with_opts(opts(m))?;
        g.set(self.count);
        inst.registry.register(Box::new(g))
    }
}
