//! The application's own metrics (`source: app`), as validation prepares
//! them: every series of each family created at zero, and the typed handles
//! a handler's `setup` asks for. See `plugins/metrics/app.rs` for the
//! source kind and the rules it checks.
//!
//! Exemplars: a counter's `inc`/`inc_by` and a histogram's `observe` made
//! inside a sampled request record that request's trace and span ids
//! beside the series (the last one per series, per bucket for a
//! histogram), for `/metrics` in OpenMetrics. The request is read through
//! [`CurrentIds`], which the `app` source kind provides (the model is below
//! the layer that sees requests). The slots of a series are allocated at
//! its first sampled observation, once.

use super::exemplars::{
    self, BucketSlots, CurrentIds, ExemplarIndex, ExemplarSlot, Ids, SeriesExemplars,
};
use super::kinds::{label_names, opts};
use crate::manifest::{Label, Metric, MetricType};
use prometheus::core::Collector;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// One label's closed set, as series indices.
struct LabelValueSet {
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

/// One series' exemplar slots.
enum Slots {
    Counter(ExemplarSlot),
    Histogram(BucketSlots),
}

/// An app metric's family and every one of its series.
pub struct AppFamily {
    name: String,
    kind: MetricType,
    labels: Vec<LabelValueSet>,
    series: Series,
    /// The current request's sampled span, if any.
    current: CurrentIds,
    /// A histogram's bucket bounds (for its exemplar slots).
    bounds: Vec<f64>,
    /// Per series, its exemplar slots once it had a sampled observation.
    exemplars: Box<[OnceLock<Box<Slots>>]>,
}

impl AppFamily {
    /// Every series of `m`, created at zero. Observations inside a request
    /// for which `current` gives ids carry them as exemplars
    /// ([`exemplars::no_ids`]: none).
    pub fn new(m: &Metric, current: CurrentIds) -> prometheus::Result<AppFamily> {
        let labels: Vec<LabelValueSet> = m
            .labels
            .iter()
            .map(|l: &Label| {
                let values: Vec<String> = l.series_values().into_iter().map(String::from).collect();
                let fallback = values.iter().position(|v| v == l.fallback()).unwrap_or(0);
                LabelValueSet {
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
        let bounds = match m.kind {
            MetricType::Histogram => {
                (m.buckets.clone()).unwrap_or_else(|| prometheus::DEFAULT_BUCKETS.to_vec())
            }
            _ => Vec::new(),
        };
        Ok(AppFamily {
            name: m.name.clone(),
            kind: m.kind,
            labels,
            series,
            current,
            bounds,
            exemplars: (0..total).map(|_| OnceLock::new()).collect(),
        })
    }

    /// Records `value` in series `i` as an exemplar, if inside a sampled
    /// request (one call through [`CurrentIds`] otherwise).
    #[inline]
    fn exemplar(&self, i: usize, value: f64) {
        if let Some(ids) = (self.current)() {
            self.record(i, ids, value);
        }
    }

    fn record(&self, i: usize, ids: Ids, value: f64) {
        let Some(cell) = self.exemplars.get(i) else {
            return;
        };
        let slots = cell.get_or_init(|| {
            Box::new(match self.kind {
                MetricType::Histogram => Slots::Histogram(BucketSlots::new(&self.bounds)),
                _ => Slots::Counter(ExemplarSlot::default()),
            })
        });
        let at = exemplars::now_ms();
        match &**slots {
            Slots::Counter(s) => s.record(ids, value, at),
            Slots::Histogram(b) => b.record(ids, value, at),
        }
    }

    /// The label values of series `i` (the last label varies fastest).
    fn values_of(&self, mut i: usize) -> Vec<(&str, &str)> {
        let mut v = vec![("", ""); self.labels.len()];
        for (j, l) in self.labels.iter().enumerate().rev() {
            v[j] = (l.name.as_str(), l.values[i % l.values.len()].as_str());
            i /= l.values.len();
        }
        v
    }

    /// Every exemplar of this family, into `index` (for `/metrics` in
    /// OpenMetrics).
    pub fn exemplars(&self, index: &mut ExemplarIndex) {
        for (i, cell) in self.exemplars.iter().enumerate() {
            let Some(slots) = cell.get() else { continue };
            let e = match &**slots {
                Slots::Counter(s) => SeriesExemplars {
                    total: s.read(),
                    buckets: vec![],
                },
                Slots::Histogram(b) => SeriesExemplars {
                    total: None,
                    buckets: b.read(),
                },
            };
            index.add(&self.name, &self.values_of(i), e);
        }
    }

    /// The family, for the server's registry.
    pub fn collector(&self) -> Box<dyn Collector> {
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

/// A handle on an app counter with `N` labels: a `source: app` counter of
/// the manifest, which a handler's `setup` asks for by name and label names
/// ([`crate::Setup::counter`]); a value outside a label's declared `values`
/// counts as its `fallback`.
///
/// ```
/// # use telltale::{AppCounter, Empty, Handler, Input, NoOptions, Setup, SetupError};
/// # #[derive(poem_openapi::ApiResponse)]
/// # enum Done {
/// #     /// Done.
/// #     #[oai(status = 204)]
/// #     Done,
/// # }
/// struct Pay;
///
/// impl Handler for Pay {
/// #   type Options = NoOptions;
/// #   type Path = Empty;
/// #   type Query = Empty;
/// #   type Body = Empty;
/// #   type Response = Done;
///     type State = AppCounter<1>;
/// #   fn name(&self) -> &'static str {
/// #       "pay"
/// #   }
///     fn setup(&self, _: NoOptions, ctx: &mut Setup<'_>) -> Result<AppCounter<1>, SetupError> {
///         let paid = ctx.counter("payments_total", ["outcome"])?;
///         paid.inc(["declined"]); // counted as `other`: not a declared value
///         assert_eq!(paid.get(["other"]), 1.0);
///         Ok(paid)
///     }
///
///     async fn handle(&self, paid: &AppCounter<1>, _: Input<Empty, Empty, Empty>) -> Done {
///         paid.inc(["approved"]);
///         Done::Done
///     }
/// }
/// # let manifest = r#"
/// # service: { name: pay, version: 0.1.0 }
/// # endpoints: [{ path: /pay, method: POST, handler: pay, summary: Pay }]
/// # metrics:
/// #   - name: payments_total
/// #     type: counter
/// #     help: Payments.
/// #     labels: [{ name: outcome, values: [approved], fallback: other }]
/// #     source: app
/// # "#;
/// # let dir = std::env::temp_dir().join(format!("telltale-counter-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("manifest.yaml");
/// # std::fs::write(&path, manifest).unwrap();
/// # let code = telltale::App::new()
/// #     .handler(Pay)
/// #     .run_cli_from(["pay", "validate", "--manifest", path.to_str().unwrap()]);
/// # assert_eq!(code, std::process::ExitCode::SUCCESS);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone)]
pub struct AppCounter<const N: usize>(Arc<AppFamily>, Arc<[prometheus::Counter]>);

impl<const N: usize> AppCounter<N> {
    fn at(&self, i: usize) -> &prometheus::Counter {
        // In range: `index` is built from the same label sets as the series.
        &self.1[i]
    }
    /// Adds 1 to the series of `values` (one per label). Inside a sampled
    /// request, the request becomes the series' exemplar.
    pub fn inc(&self, values: [&str; N]) {
        let i = self.0.index(&values);
        self.at(i).inc();
        self.0.exemplar(i, 1.0);
    }
    /// Adds `v` (not negative) to the series of `values`, with the
    /// exemplar as [`Self::inc`].
    pub fn inc_by(&self, values: [&str; N], v: f64) {
        if v >= 0.0 {
            let i = self.0.index(&values);
            self.at(i).inc_by(v);
            self.0.exemplar(i, v);
        }
    }
    /// The value of the series of `values`.
    pub fn get(&self, values: [&str; N]) -> f64 {
        self.at(self.0.index(&values)).get()
    }
    /// The series of `values`, resolved once: `inc()` on it is one atomic
    /// add, and records no exemplar (the `prometheus` crate's counter).
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
    /// Records `v` in the series of `values`. Inside a sampled request,
    /// the request becomes the exemplar of the bucket `v` falls in.
    pub fn observe(&self, values: [&str; N], v: f64) {
        let i = self.0.index(&values);
        self.at(i).observe(v);
        self.0.exemplar(i, v);
    }
    /// Observations so far in the series of `values`.
    pub fn count(&self, values: [&str; N]) -> u64 {
        self.at(self.0.index(&values)).get_sample_count()
    }
    /// The series of `values`, resolved once (the `prometheus` crate's
    /// histogram: it records no exemplar).
    pub fn series(&self, values: [&str; N]) -> prometheus::Histogram {
        self.at(self.0.index(&values)).clone()
    }
}
