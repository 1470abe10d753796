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
use crate::manifest::Label;
use prometheus::core::Collector;
use std::sync::atomic::{AtomicBool, Ordering};

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
            m.buckets.as_ref().map_or(12, |b| b.len() + 3)
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
}

/// One label's closed set, as series indices.
struct LabelSet {
    name: String,
    /// Series values: declared, then the fallback.
    values: Vec<String>,
    fallback: usize,
    /// A value outside the set was reported.
    warned: AtomicBool,
}

enum Series {
    Counter(prometheus::CounterVec, Vec<prometheus::Counter>),
    Gauge(prometheus::GaugeVec, Vec<prometheus::Gauge>),
    Histogram(prometheus::HistogramVec, Vec<prometheus::Histogram>),
}

/// An app metric's family and every one of its series.
pub struct AppFamily {
    name: String,
    kind: MetricType,
    labels: Vec<LabelSet>,
    series: Series,
}

impl AppFamily {
    fn new(m: &Metric) -> prometheus::Result<AppFamily> {
        let labels: Vec<LabelSet> = m
            .labels
            .iter()
            .map(|l: &Label| {
                let values: Vec<String> = l.series_values().into_iter().map(String::from).collect();
                let fallback = values.iter().position(|v| v == l.fallback()).unwrap_or(0);
                LabelSet {
                    name: l.name.clone(),
                    values,
                    fallback,
                    warned: AtomicBool::new(false),
                }
            })
            .collect();
        let names = label_names(m);
        // Every combination, in index order (the last label varies fastest).
        let total: usize = labels.iter().map(|l| l.values.len()).product();
        let combo = |mut i: usize| -> Vec<&str> {
            let mut v = vec![""; labels.len()];
            for (j, l) in labels.iter().enumerate().rev() {
                v[j] = &l.values[i % l.values.len()];
                i /= l.values.len();
            }
            v
        };
        let series = match m.kind {
            MetricType::Counter => {
                let vec = prometheus::CounterVec::new(opts(m), &names)?;
                let s = (0..total)
                    .map(|i| vec.with_label_values(&combo(i)))
                    .collect();
                Series::Counter(vec, s)
            }
            MetricType::Gauge => {
                let vec = prometheus::GaugeVec::new(opts(m), &names)?;
                let s = (0..total)
                    .map(|i| vec.with_label_values(&combo(i)))
                    .collect();
                Series::Gauge(vec, s)
            }
            MetricType::Histogram => {
                let mut o = prometheus::HistogramOpts::new(m.name.clone(), m.help.clone());
                if let Some(b) = &m.buckets {
                    o = o.buckets(b.clone());
                }
                let vec = prometheus::HistogramVec::new(o, &names)?;
                let s = (0..total)
                    .map(|i| vec.with_label_values(&combo(i)))
                    .collect();
                Series::Histogram(vec, s)
            }
        };
        Ok(AppFamily {
            name: m.name.clone(),
            kind: m.kind,
            labels,
            series,
        })
    }

    fn collector(&self) -> Box<dyn Collector> {
        match &self.series {
            Series::Counter(v, _) => Box::new(v.clone()),
            Series::Gauge(v, _) => Box::new(v.clone()),
            Series::Histogram(v, _) => Box::new(v.clone()),
        }
    }

    /// The series index of `values` (one per label, in order); a value
    /// outside a label's set counts as its fallback, reported once.
    fn index(&self, values: &[&str]) -> usize {
        let mut i = 0;
        for (l, v) in self.labels.iter().zip(values) {
            let k = match l.values.iter().position(|x| x == v) {
                Some(k) => k,
                None => {
                    if !l.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            target: "telltale::metrics",
                            metric = %self.name,
                            label = %l.name,
                            value = %truncate(v),
                            fallback = %l.values[l.fallback],
                            "a label value outside the declared set was counted as the fallback \
                             (reported once per label)"
                        );
                    }
                    l.fallback
                }
            };
            i = i * l.values.len() + k;
        }
        i
    }

    fn check(&self, want: MetricType, labels: &[&str]) -> Result<(), String> {
        if self.kind != want {
            return Err(format!(
                "metric {:?} is a {}, not a {}",
                self.name,
                self.kind.as_str(),
                want.as_str()
            ));
        }
        let have: Vec<&str> = self.labels.iter().map(|l| l.name.as_str()).collect();
        if have != labels {
            return Err(format!(
                "metric {:?} has labels [{}], not [{}]",
                self.name,
                have.join(", "),
                labels.join(", ")
            ));
        }
        Ok(())
    }
}

/// A value as it goes into a log line: at most 64 characters.
fn truncate(v: &str) -> &str {
    match v.char_indices().nth(64) {
        Some((at, _)) => &v[..at],
        None => v,
    }
}

/// The manifest's app metrics, by name: what handlers' `setup` asks for.
#[derive(Default)]
pub struct AppFamilies(Vec<Arc<AppFamily>>);

impl AppFamilies {
    pub fn new(families: Vec<Arc<AppFamily>>) -> Self {
        AppFamilies(families)
    }

    fn find(
        &self,
        name: &str,
        want: MetricType,
        labels: &[&str],
    ) -> Result<Arc<AppFamily>, String> {
        let f = self.0.iter().find(|f| f.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.0.iter().map(|f| f.name.as_str()).collect();
            format!(
                "metric {name:?} is not declared with source: app in metrics[] (app metrics: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })?;
        f.check(want, labels)?;
        Ok(f.clone())
    }

    /// The counter `name` with these label names.
    pub fn counter<const N: usize>(
        &self,
        name: &str,
        labels: [&str; N],
    ) -> Result<AppCounter<N>, String> {
        let f = self.find(name, MetricType::Counter, &labels)?;
        match &f.series {
            Series::Counter(_, s) => Ok(AppCounter(f.clone(), s.clone().into())),
            _ => Err(format!("metric {name:?} is not a counter")),
        }
    }

    /// The gauge `name` with these label names.
    pub fn gauge<const N: usize>(
        &self,
        name: &str,
        labels: [&str; N],
    ) -> Result<AppGauge<N>, String> {
        let f = self.find(name, MetricType::Gauge, &labels)?;
        match &f.series {
            Series::Gauge(_, s) => Ok(AppGauge(f.clone(), s.clone().into())),
            _ => Err(format!("metric {name:?} is not a gauge")),
        }
    }

    /// The histogram `name` with these label names.
    pub fn histogram<const N: usize>(
        &self,
        name: &str,
        labels: [&str; N],
    ) -> Result<AppHistogram<N>, String> {
        let f = self.find(name, MetricType::Histogram, &labels)?;
        match &f.series {
            Series::Histogram(_, s) => Ok(AppHistogram(f.clone(), s.clone().into())),
            _ => Err(format!("metric {name:?} is not a histogram")),
        }
    }
}

/// A handle on an app counter with `N` labels.
#[derive(Clone)]
pub struct AppCounter<const N: usize>(Arc<AppFamily>, Arc<[prometheus::Counter]>);

impl<const N: usize> AppCounter<N> {
    fn at(&self, i: usize) -> &prometheus::Counter {
        // In range: `index` is built from the same label sets as the series.
        &self.1[i]
    }
    /// Adds 1 to the series of `values` (one per label).
    pub fn inc(&self, values: [&str; N]) {
        self.at(self.0.index(&values)).inc();
    }
    /// Adds `v` (not negative) to the series of `values`.
    pub fn inc_by(&self, values: [&str; N], v: f64) {
        if v >= 0.0 {
            self.at(self.0.index(&values)).inc_by(v);
        }
    }
    /// The value of the series of `values`.
    pub fn get(&self, values: [&str; N]) -> f64 {
        self.at(self.0.index(&values)).get()
    }
    /// The series of `values`, resolved once: `inc()` on it is one atomic add.
    pub fn series(&self, values: [&str; N]) -> prometheus::Counter {
        self.at(self.0.index(&values)).clone()
    }
}

/// A handle on an app gauge with `N` labels.
#[derive(Clone)]
pub struct AppGauge<const N: usize>(Arc<AppFamily>, Arc<[prometheus::Gauge]>);

impl<const N: usize> AppGauge<N> {
    fn at(&self, i: usize) -> &prometheus::Gauge {
        // In range: `index` is built from the same label sets as the series.
        &self.1[i]
    }
    /// Sets the series of `values` to `v`.
    pub fn set(&self, values: [&str; N], v: f64) {
        self.at(self.0.index(&values)).set(v);
    }
    /// Adds `v` (may be negative) to the series of `values`.
    pub fn add(&self, values: [&str; N], v: f64) {
        self.at(self.0.index(&values)).add(v);
    }
    /// The value of the series of `values`.
    pub fn get(&self, values: [&str; N]) -> f64 {
        self.at(self.0.index(&values)).get()
    }
    /// The series of `values`, resolved once.
    pub fn series(&self, values: [&str; N]) -> prometheus::Gauge {
        self.at(self.0.index(&values)).clone()
    }
}

/// A handle on an app histogram with `N` labels.
#[derive(Clone)]
pub struct AppHistogram<const N: usize>(Arc<AppFamily>, Arc<[prometheus::Histogram]>);

impl<const N: usize> AppHistogram<N> {
    fn at(&self, i: usize) -> &prometheus::Histogram {
        // In range: `index` is built from the same label sets as the series.
        &self.1[i]
    }
    /// Records `v` in the series of `values`.
    pub fn observe(&self, values: [&str; N], v: f64) {
        self.at(self.0.index(&values)).observe(v);
    }
    /// Observations so far in the series of `values`.
    pub fn count(&self, values: [&str; N]) -> u64 {
        self.at(self.0.index(&values)).get_sample_count()
    }
    /// The series of `values`, resolved once.
    pub fn series(&self, values: [&str; N]) -> prometheus::Histogram {
        self.at(self.0.index(&values)).clone()
    }
}
