//! Per-request metric handles, resolved once and cached lock-free.
//!
//! Labels are bounded by construction: `path` is a route template (or one
//! fixed value for unmatched requests), `method` a closed set of eight (`HttpMethod::ALL` and `OTHER`) and
//! `status` one of the closed set of `manifest::budget::Statuses` (a status
//! outside it counts under its class, `4xx`).
//!
//! Beside each handle sit its exemplar slots (`model::exemplars`): the
//! counter's one, the histogram's one per bucket, allocated with the handle
//! (once per series, never per request). A sampled request records its
//! trace and span ids there with a few atomic stores; an unsampled one
//! touches nothing more than before. `/metrics` in OpenMetrics reads them
//! ([`HttpMetrics::exemplars`]). They belong to one generation: a reload
//! starts with empty slots.

use crate::manifest::HttpMethod;
use crate::model::exemplars::{
    self, BucketSlots, ExemplarIndex, ExemplarSlot, Ids, SeriesExemplars,
};
use crate::traces::SpanContext;
use poem::http::Method;
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

/// The `path` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The method index of `OTHER`: any method not in [`HttpMethod::ALL`].
pub const OTHER_METHOD: usize = HttpMethod::ALL.len();

/// Index of `m` in the closed method set ([`OTHER_METHOD`] for anything else).
pub fn method_index(m: &Method) -> usize {
    HttpMethod::from_token(m.as_str().as_bytes()).map_or(OTHER_METHOD, HttpMethod::index)
}

/// Label value of a method index.
pub fn method_label(i: usize) -> &'static str {
    HttpMethod::ALL.get(i).map_or("OTHER", |m| m.as_str())
}

/// `s` for the rest of the process: each distinct route template is leaked
/// once (a closed set, from the manifest), so that a request line can carry
/// its route to the log writer thread without a reference count.
pub(crate) fn intern(s: String) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = seen.get(s.as_str()) {
        return known;
    }
    let s: &'static str = Box::leak(s.into_boxed_str());
    seen.insert(s);
    s
}

/// A request counter series and its exemplar (boxed: most of the 500
/// status slots of a method stay empty, and each costs only a pointer more).
struct Counted {
    counter: IntCounter,
    exemplar: Box<ExemplarSlot>,
}

struct MethodSlot {
    duration: Option<(Histogram, BucketSlots)>,
    by_status: Box<[OnceLock<Option<Counted>>]>,
}

struct RouteSlot {
    path: &'static str,
    methods: [OnceLock<MethodSlot>; OTHER_METHOD + 1],
}

/// Handles for every (route, method, status) seen so far.
pub struct HttpMetrics {
    requests: Option<IntCounterVec>,
    duration: Option<HistogramVec>,
    requests_labels: Vec<String>,
    duration_labels: Vec<String>,
    routes: Vec<RouteSlot>,
    /// The closed set of `status` values (others count under their class).
    statuses: crate::model::budget::Statuses,
}

impl HttpMetrics {
    /// `paths[i]` is the template of route tag `i`; one more slot is added for unmatched requests.
    pub fn new(
        paths: Vec<String>,
        requests: Option<(IntCounterVec, Vec<String>)>,
        duration: Option<(HistogramVec, Vec<String>)>,
        statuses: crate::model::budget::Statuses,
    ) -> Self {
        let mut routes: Vec<RouteSlot> = paths
            .into_iter()
            .map(|path| RouteSlot {
                path: intern(path),
                methods: Default::default(),
            })
            .collect();
        routes.push(RouteSlot {
            path: UNMATCHED,
            methods: Default::default(),
        });
        let (requests, requests_labels) = requests.map_or((None, vec![]), |(v, l)| (Some(v), l));
        let (duration, duration_labels) = duration.map_or((None, vec![]), |(v, l)| (Some(v), l));
        HttpMetrics {
            requests,
            duration,
            requests_labels,
            duration_labels,
            routes,
            statuses,
        }
    }

    /// The `path` label of route tag `route`.
    pub fn template(&self, route: usize) -> &'static str {
        self.routes[route.min(self.routes.len() - 1)].path
    }

    /// The route tag used for requests that matched no route.
    pub fn unmatched(&self) -> usize {
        self.routes.len() - 1
    }

    fn values<'a>(
        labels: &'a [String],
        path: &'a str,
        method: &'a str,
        status: &'a str,
    ) -> HashMap<&'a str, &'a str> {
        labels
            .iter()
            .map(|l| {
                let v = match l.as_str() {
                    "path" => path,
                    "method" => method,
                    _ => status,
                };
                (l.as_str(), v)
            })
            .collect()
    }

    /// Records one request. `route` is a route tag (see [`Self::unmatched`]).
    /// `span`, when given, is the request's sampled span: it becomes the
    /// exemplar of the counter series and of the duration's bucket (pass
    /// `None` for an unsampled request: only a sampled one is exported).
    pub fn observe(
        &self,
        route: usize,
        method: usize,
        status: u16,
        seconds: f64,
        span: Option<SpanContext>,
    ) {
        let (duration, counter) = self.handles(route, method, status);
        let at = span.map(|s| (ids(&s), exemplars::now_ms()));
        if let Some((h, slots)) = duration {
            h.observe(seconds);
            if let Some((ids, at)) = at {
                slots.record(ids, seconds, at);
            }
        }
        if let Some(c) = counter {
            c.counter.inc();
            if let Some((ids, at)) = at {
                c.exemplar.record(ids, 1.0, at);
            }
        }
    }

    /// Counts one request that was refused before it was routed (its
    /// duration is unknown, so the latency histogram does not see it).
    #[cfg(any(test, feature = "internals"))]
    pub fn count_only(&self, route: usize, method: usize, status: u16) {
        self.count_only_in(route, method, status, None);
    }

    /// [`Self::count_only`], with the refused request's sampled span as
    /// the counter's exemplar.
    pub fn count_only_in(
        &self,
        route: usize,
        method: usize,
        status: u16,
        span: Option<SpanContext>,
    ) {
        if let (_, Some(c)) = self.handles(route, method, status) {
            c.counter.inc();
            if let Some(s) = span {
                c.exemplar.record(ids(&s), 1.0, exemplars::now_ms());
            }
        }
    }

    /// Every exemplar recorded in this generation, into `index` under the
    /// families' names and the series' labels (for `/metrics` in
    /// OpenMetrics; a scrape's work, not a request's).
    pub fn exemplars(&self, index: &mut ExemplarIndex) {
        let name = |c: &dyn Collector| c.desc().first().map(|d| d.fq_name.clone());
        let requests = self.requests.as_ref().and_then(|r| name(r));
        let duration = self.duration.as_ref().and_then(|d| name(d));
        for slot in &self.routes {
            for (m, ms) in slot.methods.iter().enumerate() {
                let Some(ms) = ms.get() else { continue };
                let method = method_label(m);
                if let (Some(family), Some((_, slots))) = (&duration, &ms.duration) {
                    let buckets = slots.read();
                    if !buckets.is_empty() {
                        let v = Self::pairs(&self.duration_labels, slot.path, method, "");
                        let e = SeriesExemplars {
                            total: None,
                            buckets,
                        };
                        index.add(family, &v, e);
                    }
                }
                let Some(family) = &requests else { continue };
                for (i, c) in ms.by_status.iter().enumerate() {
                    let Some(Some(c)) = c.get() else { continue };
                    let Some(e) = c.exemplar.read() else { continue };
                    let status = self.statuses.label(i as u16 + 100);
                    let v = Self::pairs(&self.requests_labels, slot.path, method, &status);
                    let e = SeriesExemplars {
                        total: Some(e),
                        buckets: vec![],
                    };
                    index.add(family, &v, e);
                }
            }
        }
    }

    fn pairs<'a>(
        labels: &'a [String],
        path: &'a str,
        method: &'a str,
        status: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        Self::values(labels, path, method, status)
            .into_iter()
            .collect()
    }

    /// Creates the series of a declared route at zero, so every declared
    /// family is exposed before the first request and `rate()` starts at 0.
    pub fn touch(&self, route: usize, method: usize, status: u16) {
        let _ = self.handles(route, method, status);
    }

    fn handles(
        &self,
        route: usize,
        method: usize,
        status: u16,
    ) -> (Option<&(Histogram, BucketSlots)>, Option<&Counted>) {
        let slot = &self.routes[route.min(self.routes.len() - 1)];
        let ms = slot.methods[method].get_or_init(|| MethodSlot {
            duration: self.duration.as_ref().map(|d| {
                let v = Self::values(&self.duration_labels, slot.path, method_label(method), "");
                let h = d.with(&v);
                let bounds: Vec<f64> = (h.collect().first())
                    .and_then(|f| f.get_metric().first())
                    .map(|m| {
                        let b = m.get_histogram().get_bucket();
                        b.iter().map(|b| b.upper_bound()).collect()
                    })
                    .unwrap_or_default();
                (h, BucketSlots::new(&bounds))
            }),
            by_status: (100..600).map(|_| OnceLock::new()).collect(),
        });
        let code = status.clamp(100, 599);
        let counter = ms.by_status[(code - 100) as usize].get_or_init(|| {
            self.requests.as_ref().map(|r| {
                let s = self.statuses.label(code);
                let v = Self::values(&self.requests_labels, slot.path, method_label(method), &s);
                Counted {
                    counter: r.with(&v),
                    exemplar: Box::default(),
                }
            })
        });
        (ms.duration.as_ref(), counter.as_ref())
    }
}

/// The exemplar ids of a span.
fn ids(s: &SpanContext) -> Ids {
    Ids {
        trace_id: s.trace_id.0,
        span_id: s.span_id.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::{SpanId, TraceId};

    fn metrics() -> HttpMetrics {
        let requests = IntCounterVec::new(
            prometheus::Opts::new("http_requests_total", "Requests"),
            &["method", "path", "status"],
        )
        .unwrap();
        let duration = HistogramVec::new(
            prometheus::HistogramOpts::new("http_request_duration_seconds", "Latency")
                .buckets(vec![0.1, 1.0]),
            &["method", "path"],
        )
        .unwrap();
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        HttpMetrics::new(
            vec!["/a".into()],
            Some((requests, labels(&["method", "path", "status"]))),
            Some((duration, labels(&["method", "path"]))),
            crate::model::budget::Statuses([200].into()),
        )
    }

    fn span(n: u8, sampled: bool) -> SpanContext {
        SpanContext {
            trace_id: TraceId([n; 16]),
            span_id: SpanId([n; 8]),
            parent: None,
            sampled,
        }
    }

    #[test]
    fn a_sampled_request_is_the_exemplar_of_its_counter_and_its_bucket() {
        let m = metrics();
        let get = method_index(&Method::GET);
        m.observe(0, get, 200, 0.5, Some(span(1, true)));
        m.observe(0, get, 200, 0.05, None);
        m.observe(0, get, 418, 3.0, Some(span(2, true)));
        m.count_only_in(m.unmatched(), get, 431, Some(span(3, true)));
        let mut index = ExemplarIndex::default();
        m.exemplars(&mut index);
        let at = |family: &str, path: &str, status: Option<&str>| {
            let mut labels = vec![("method", "GET"), ("path", path)];
            labels.extend(status.map(|s| ("status", s)));
            index.get(family, labels.into_iter()).cloned()
        };
        let trace = |e: &exemplars::Exemplar| e.ids.trace_id[0];
        let ok = at("http_requests_total", "/a", Some("200")).unwrap();
        assert_eq!(ok.total.map(|e| (trace(&e), e.value)), Some((1, 1.0)));
        let teapot = at("http_requests_total", "/a", Some("4xx")).unwrap();
        assert_eq!(teapot.total.map(|e| trace(&e)), Some(2));
        let refused = at("http_requests_total", UNMATCHED, Some("4xx")).unwrap();
        assert_eq!(refused.total.map(|e| trace(&e)), Some(3));
        let lat = at("http_request_duration_seconds", "/a", None).unwrap();
        let buckets: Vec<(f64, u8, f64)> = lat
            .buckets
            .iter()
            .map(|(le, e)| (*le, trace(e), e.value))
            .collect();
        // The unsampled 0.05 left the 0.1 bucket without one.
        assert_eq!(buckets, [(1.0, 1, 0.5), (f64::INFINITY, 2, 3.0)]);
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn without_a_span_nothing_is_recorded() {
        let m = metrics();
        m.observe(0, 0, 200, 0.5, None);
        m.count_only(0, 0, 200);
        let mut index = ExemplarIndex::default();
        m.exemplars(&mut index);
        assert!(index.is_empty());
    }
}
