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

use super::*;
pub use crate::model::app_metrics::{AppCounter, AppFamilies, AppFamily, AppGauge, AppHistogram};

pub struct Kind;

/// The most series one app metric may declare (its label values multiplied).
pub const MAX_SERIES: usize = 10_000;
/// The most characters of one declared label value.
const MAX_VALUE_LEN: usize = 128;

impl MetricSourceKind for Kind {
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
        AppFamily::new(m)
            .map(|f| Arc::new(Prepared(Arc::new(f))) as Arc<dyn PreparedSource>)
            .map_err(|e| Diagnostics(vec![ctx.source.error(&ctx.at("name"), e.to_string())]))
    }
}

struct Prepared(Arc<AppFamily>);

impl PreparedSource for Prepared {
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
