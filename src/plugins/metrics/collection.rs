//! `collection.below_threshold`: how many items of a collection endpoint
//! have a numeric field below a threshold (the seed's low-stock gauge).

use super::*;
use crate::plugins::handlers::load_items;
use prometheus::IntGauge;
use serde::Deserialize;

pub struct BelowThreshold;

/// One item of a collection.
pub type Item = serde_json::Map<String, serde_json::Value>;

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

/// True when `item.field` is a number below `threshold`.
pub fn is_below(item: &Item, field: &str, threshold: f64) -> bool {
    item.get(field)
        .and_then(|v| v.as_f64())
        .is_some_and(|v| v < threshold)
}

/// The items that `metrics[index]` (a `collection.below_threshold` gauge)
/// counts, checked like the metric itself. The JSON datasource's tables
/// use this, so a table and its gauge can never disagree.
pub fn below_threshold_items(
    src: &Source,
    manifest: &Manifest,
    index: usize,
) -> Result<Vec<Item>, Diagnostics> {
    let metric = &manifest.metrics[index];
    let at = |f: &str| format!("metrics[{index}].{f}");
    let mut errs = Diagnostics::default();
    let o: Options = src
        .options(&metric.options, &at("options"), &mut errs)
        .ok_or(errs)?;
    let fail = |f: &str, msg: String| Diagnostics(vec![src.error(&at(f), msg)]);
    let Some((idx, ep)) = manifest
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
    let items = load_items(src, ep, idx)?;
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
    Ok(items
        .into_iter()
        .filter(|i| is_below(i, &o.field, o.threshold))
        .collect())
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
