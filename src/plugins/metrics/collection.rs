//! `collection.below_threshold`: how many items of a collection endpoint
//! have a numeric field below a threshold (the seed's low-stock gauge).

use super::*;
use crate::plugins::handlers::load_items;
use prometheus::IntGauge;
use serde::Deserialize;

pub struct BelowThreshold;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Path of a `collection` endpoint.
    endpoint: String,
    /// Numeric field of each item.
    field: String,
    /// Items with `field < threshold` count.
    threshold: f64,
}

struct Prepared {
    count: i64,
}

/// Counts items whose `field` is below `threshold` (shared with the JSON datasource).
pub fn count_below(
    items: &[serde_json::Map<String, serde_json::Value>],
    field: &str,
    threshold: f64,
) -> i64 {
    items
        .iter()
        .filter(|o| {
            o.get(field)
                .and_then(|v| v.as_f64())
                .is_some_and(|v| v < threshold)
        })
        .count() as i64
}

impl MetricSourceKind for BelowThreshold {
    fn name(&self) -> &'static str {
        "collection.below_threshold"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Gauge)?;
        ctx.labels_within(&[])?;
        let o: Options = ctx.options()?;
        let fail = |f: &str, msg: String| Diagnostics(vec![ctx.source.error(&ctx.at(f), msg)]);
        let Some((idx, ep)) = ctx
            .manifest
            .endpoints
            .iter()
            .enumerate()
            .find(|(_, e)| e.path == o.endpoint && e.handler == "collection")
        else {
            return Err(fail(
                "options.endpoint",
                format!("{:?} is not a declared `collection` endpoint", o.endpoint),
            ));
        };
        let items = load_items(ctx.source, ep, idx)?;
        if !items
            .iter()
            .any(|i| i.get(&o.field).is_some_and(|v| v.is_number()))
        {
            return Err(fail(
                "options.field",
                format!(
                    "no item of {} has a numeric field {:?}",
                    o.endpoint, o.field
                ),
            ));
        }
        Ok(Arc::new(Prepared {
            count: count_below(&items, &o.field, o.threshold),
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
