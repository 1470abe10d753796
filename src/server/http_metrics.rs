//! Per-request metric handles, resolved once and cached lock-free.
//!
//! Labels are bounded by construction: `path` is a route template (or one
//! fixed value for unmatched requests), `method` a closed set of eight (`HttpMethod::ALL` and `OTHER`) and
//! `status` one of the closed set of `manifest::budget::Statuses` (a status
//! outside it counts under its class, `4xx`).

use crate::manifest::HttpMethod;
use poem::http::Method;
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

struct MethodSlot {
    duration: Option<Histogram>,
    by_status: Box<[OnceLock<Option<IntCounter>>]>,
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
    pub fn observe(&self, route: usize, method: usize, status: u16, seconds: f64) {
        let (duration, counter) = self.handles(route, method, status);
        if let Some(h) = duration {
            h.observe(seconds);
        }
        if let Some(c) = counter {
            c.inc();
        }
    }

    /// Counts one request that was refused before it was routed (its
    /// duration is unknown, so the latency histogram does not see it).
    pub fn count_only(&self, route: usize, method: usize, status: u16) {
        if let (_, Some(c)) = self.handles(route, method, status) {
            c.inc();
        }
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
    ) -> (Option<&Histogram>, Option<&IntCounter>) {
        let slot = &self.routes[route.min(self.routes.len() - 1)];
        let ms = slot.methods[method].get_or_init(|| MethodSlot {
            duration: self.duration.as_ref().map(|d| {
                let v = Self::values(&self.duration_labels, slot.path, method_label(method), "");
                d.with(&v)
            }),
            by_status: (100..600).map(|_| OnceLock::new()).collect(),
        });
        let code = status.clamp(100, 599);
        let counter = ms.by_status[(code - 100) as usize].get_or_init(|| {
            self.requests.as_ref().map(|r| {
                let s = self.statuses.label(code);
                let v = Self::values(&self.requests_labels, slot.path, method_label(method), &s);
                r.with(&v)
            })
        });
        (ms.duration.as_ref(), counter.as_ref())
    }
}
