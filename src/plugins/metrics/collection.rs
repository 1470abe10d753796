//! `collection.below_threshold`: how many items of a collection endpoint
//! have a numeric field below a threshold (the seed's low-stock gauge). It
//! derives a low-stock alert, and backs the JSON datasource's tables.

use crate::manifest::Endpoint;
use crate::manifest::{Diagnostics, Metric, MetricType};
use crate::model::contrib::{AlertCtx, AlertTuning, DerivedAlertRule};
use crate::model::data::load_items;
use crate::model::data::{is_below, Item};
use crate::model::kinds::{opts, Installer, MetricCtx, MetricSourceKind, PreparedSource};
use crate::render::escape::go_template_text as go_text;
use crate::render::rules::{camel, num, series};
use prometheus::IntGauge;
use serde::Deserialize;
use std::sync::Arc;

pub struct BelowThresholdSource;

struct PreparedBelowThreshold {
    /// The items it counts.
    items: Vec<Item>,
}

/// The handler kind whose endpoints it reads.
const COLLECTION: &str = "collection";

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

impl MetricSourceKind for BelowThresholdSource {
    fn name(&self) -> &'static str {
        "collection.below_threshold"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        ctx.require_type(MetricType::Gauge)?;
        ctx.labels_within(&[])?;
        let items = below_threshold_items(ctx)?;
        Ok(Arc::new(PreparedBelowThreshold { items }))
    }
    fn derives_alert(&self) -> Option<&'static str> {
        Some("collection.below_threshold gauges")
    }
}

/// The items the gauge counts: those of its endpoint's data file whose
/// field is a number below the threshold.
fn below_threshold_items(ctx: &MetricCtx<'_>) -> Result<Vec<Item>, Diagnostics> {
    let o: Options = ctx.options()?;
    let fail = |f: &str, msg: String| Diagnostics(vec![ctx.source.error(&ctx.at(f), msg)]);
    let endpoints = &ctx.manifest.endpoints;
    let found = endpoints
        .iter()
        .enumerate()
        .find(|(_, e): &(usize, &Endpoint)| e.path == o.endpoint && e.handler == COLLECTION);
    let Some((idx, ep)) = found else {
        return Err(fail(
            "options.endpoint",
            format!("{:?} is not a declared `collection` endpoint", o.endpoint),
        ));
    };
    let items = load_items(ctx.source, ep, idx, ctx.manifest.service.data_limit_bytes)?;
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

/// A string option as written (`options.endpoint`, ...), if set.
fn option(metric: &Metric, key: &str) -> Option<String> {
    match metric.options.get(key)? {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl PreparedSource for PreparedBelowThreshold {
    fn install(&self, m: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        let g = IntGauge::with_opts(opts(m))?;
        g.set(self.items.len() as i64);
        inst.registry.register(Box::new(g))
    }
    fn table_items(&self) -> Option<&[Item]> {
        Some(&self.items)
    }
    fn alert_tuning(&self) -> Option<AlertTuning> {
        Some(AlertTuning {
            fixed_name: None,
            threshold: |t| {
                (!t.is_finite() || t < 0.0).then(|| "must be a number of items >= 0".to_string())
            },
        })
    }
    /// Low stock: more than `rules.low_stock_above` items are counted.
    fn alerts(&self, g: &Metric, ctx: &AlertCtx<'_>) -> Vec<DerivedAlertRule> {
        let tune = g.alert.clone().unwrap_or_default();
        let r = &ctx.manifest.rules;
        let (sel, instance) = (ctx.selector, ctx.instance);
        // From the gauge alone: another gauge never renames it.
        let name = tune
            .name
            .unwrap_or_else(|| camel(g.name.strip_suffix("_total").unwrap_or(&g.name)));
        let above_n = tune.threshold.unwrap_or(r.low_stock_above);
        let for_ = tune.for_.unwrap_or_else(|| r.low_stock_for.clone());
        let endpoint = go_text(&option(g, "endpoint").unwrap_or_else(|| "the collection".into()));
        let field = go_text(&option(g, "field").unwrap_or_else(|| "stock".into()));
        let threshold = go_text(&option(g, "threshold").unwrap_or_else(|| "its threshold".into()));
        let above = num(above_n);
        let s = format!("{}{{{sel}, {instance}}}", g.name);
        vec![DerivedAlertRule {
            name,
            expr: format!("max by (job, instance) ({}{{{sel}}}) > {above}", g.name),
            severity: tune.severity.unwrap_or_else(|| "warning".into()),
            summary: format!("More than {above} items of {endpoint} are low on {field}"),
            description: format!(
                "{{{{ $labels.instance }}}}: more than {above} items of {endpoint} have {field} below {threshold} ({} has been above {above} for {for_}).",
                g.name
            ),
            for_,
            firing: vec![series(s.clone(), &format!("{}x30", num(above_n.floor() + 3.0)))],
            quiet: vec![series(s, &format!("{}x30", num((above_n / 2.0).floor())))],
            fired_labels: [
                ("job".to_string(), ctx.job.to_string()),
                ("instance".to_string(), ctx.test_instance.to_string()),
            ]
            .into(),
            eval_margin_secs: 300,
            metrics: vec![g.name.clone()],
            prefer: None,
        }]
    }
}
