//! `app`: metrics the application owns and its handlers update, declared in
//! the manifest with a closed set of values per label:
//!
//! ```yaml
//! - name: orders_placed_total
//!   type: counter
//!   help: Orders accepted, by payment method
//!   source: app
//!   labels: [{name: payment, values: [card, cash, voucher], fallback: other}]
//! ```
//!
//! Every series (each combination of declared values, plus each label's
//! fallback) is created at start-up, at zero. A handler asks for a typed
//! handle once, in its `setup` ([`crate::Setup::counter`]); a name the
//! manifest does not declare, the wrong type or the wrong label names is an
//! error there, located at the endpoint, during `validate` as at start-up.
//! The label count is part of the handle's type (`AppCounter<1>`), so a
//! wrong count does not compile.
//!
//! After start-up an update is an atomic add on a series resolved before:
//! no registry lookup, no hashing, no allocation. A value outside the
//! declared set is matched against the closed set (a short scan), counted
//! under the label's fallback, and reported once at warn level; it never
//! becomes a series. [`AppCounter::series`] resolves a fixed value set once.
//!
//! Exemplars are automatic: `inc`, `inc_by` and `observe` made inside a
//! sampled request carry its trace and span ids to `/metrics` in
//! OpenMetrics (the last one per series, and per bucket of a histogram).
//! Outside a request, or in an unsampled one, the update costs one
//! task-local read more. The handles `series()` returns are the
//! `prometheus` crate's own and carry none.

use crate::manifest::{Diagnostics, Metric, MetricType};
pub use crate::model::app_metrics::AppFamily;
#[cfg(any(test, feature = "internals"))]
pub use crate::model::app_metrics::{AppCounter, AppFamilies, AppGauge, AppHistogram};
use crate::model::exemplars::Ids;
use crate::model::kinds::{Installer, MetricCtx, MetricSourceKind, PreparedSource};
use std::sync::Arc;

pub struct AppMetricSource;

/// The most series one app metric may declare (its label values multiplied).
pub const MAX_SERIES: usize = 10_000;
/// The most characters of one declared label value.
const MAX_VALUE_LEN: usize = 128;

impl MetricSourceKind for AppMetricSource {
    fn name(&self) -> &'static str {
        "app"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        let m = ctx.metric;
        let mut errs = Diagnostics::default();
        if !m.options.is_null() {
            errs.push(ctx.source.error(
                &ctx.at("options"),
                "source \"app\" takes no options (label values go in labels[].values)",
            ));
        }
        let mut series = 1usize;
        for (j, l) in m.labels.iter().enumerate() {
            let at = ctx.at(&format!("labels[{j}]"));
            if l.values.is_empty() {
                errs.push(ctx.source.error(
                    &at,
                    format!(
                        "label {:?} of an app metric needs its closed set of values: \
                         {{name: {}, values: [a, b]}}",
                        l.name, l.name
                    ),
                ));
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            for (k, v) in l.values.iter().enumerate() {
                let vat = format!("{at}.values[{k}]");
                if v.is_empty() || v.len() > MAX_VALUE_LEN {
                    errs.push(ctx.source.error(
                        &vat,
                        format!("a label value must have 1 to {MAX_VALUE_LEN} characters"),
                    ));
                } else if !seen.insert(v.as_str()) {
                    errs.push(
                        ctx.source
                            .error(&vat, format!("value {v:?} is declared twice")),
                    );
                }
            }
            if l.fallback().is_empty() || l.fallback().len() > MAX_VALUE_LEN {
                errs.push(ctx.source.error(
                    &format!("{at}.fallback"),
                    format!("the fallback must have 1 to {MAX_VALUE_LEN} characters"),
                ));
            }
            series = series.saturating_mul(l.series_values().len());
        }
        let per = if m.kind == MetricType::Histogram {
            m.buckets
                .as_ref()
                .map_or(prometheus::DEFAULT_BUCKETS.len(), Vec::len)
                + 3
        } else {
            1
        };
        if series.saturating_mul(per) > MAX_SERIES {
            errs.push(ctx.source.error(
                &ctx.at("labels"),
                format!(
                    "{} declares {} series (label values multiplied{}); at most {MAX_SERIES}",
                    m.name,
                    series.saturating_mul(per),
                    if per > 1 { ", times the buckets" } else { "" }
                ),
            ));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        AppFamily::new(m, sampled_span)
            .map(|f| Arc::new(PreparedAppMetric(Arc::new(f))) as Arc<dyn PreparedSource>)
            .map_err(|e| Diagnostics(vec![ctx.source.error(&ctx.at("name"), e.to_string())]))
    }
}

/// The current request's span, if it is sampled: an app metric's exemplar.
fn sampled_span() -> Option<Ids> {
    crate::logging::request::current_span()
        .filter(|s| s.sampled)
        .map(|s| Ids {
            trace_id: s.trace_id.0,
            span_id: s.span_id.0,
        })
}

struct PreparedAppMetric(Arc<AppFamily>);

impl PreparedSource for PreparedAppMetric {
    fn install(&self, _: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        inst.registry.register(self.0.collector())
    }
    fn app_family(&self) -> Option<Arc<AppFamily>> {
        Some(self.0.clone())
    }
    fn keeps_values(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::request::{sync_scope, RequestScope};
    use crate::model::exemplars::ExemplarIndex;
    use crate::traces::{SpanContext, SpanId, TraceId};

    fn metric(yaml: &str) -> Metric {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn in_span<R>(n: u8, sampled: bool, f: impl FnOnce() -> R) -> R {
        let span = SpanContext {
            trace_id: TraceId([n; 16]),
            span_id: SpanId([n + 1; 8]),
            parent: None,
            sampled,
        };
        sync_scope(RequestScope::new(None).in_span(span), f)
    }

    #[test]
    fn an_update_inside_a_sampled_request_carries_its_span() {
        let c = AppFamily::new(
            &metric(
                "{name: orders_total, type: counter, help: Orders, source: app, \
                 labels: [{name: pay, values: [card, cash]}]}",
            ),
            sampled_span,
        )
        .unwrap();
        let h = AppFamily::new(
            &metric("{name: basket, type: histogram, help: Size, source: app, buckets: [1, 5]}"),
            sampled_span,
        )
        .unwrap();
        let c = Arc::new(c);
        let h = Arc::new(h);
        let families = AppFamilies::new(vec![c.clone(), h.clone()]);
        let orders = families.counter("orders_total", ["pay"]).unwrap();
        let basket = families.histogram("basket", []).unwrap();
        orders.inc(["cash"]); // outside a request
        in_span(7, true, || {
            orders.inc_by(["card"], 2.0);
            basket.observe([], 3.0);
        });
        in_span(9, false, || {
            orders.inc(["card"]);
            basket.observe([], 4.0);
        });
        let mut index = ExemplarIndex::default();
        c.exemplars(&mut index);
        h.exemplars(&mut index);
        let card = index
            .get("orders_total", [("pay", "card")].into_iter())
            .and_then(|s| s.total)
            .unwrap();
        assert_eq!(card.ids.trace_id, [7; 16]);
        assert_eq!(card.ids.span_id, [8; 8]);
        assert_eq!(card.value, 2.0);
        assert!(index
            .get("orders_total", [("pay", "cash")].into_iter())
            .is_none());
        let b = index.get("basket", std::iter::empty()).unwrap();
        assert_eq!(b.buckets.len(), 1);
        assert_eq!((b.buckets[0].0, b.buckets[0].1.value), (5.0, 3.0));
        assert_eq!(
            orders.get(["card"]),
            3.0,
            "the values are counted as before"
        );
    }
}
