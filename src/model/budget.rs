//! The series budget: every label of every metric comes from a closed set,
//! so the most series `/metrics` can expose is known before the server
//! starts. `validate` prints it, `service.series_limit` caps it, and the
//! rendered scrape config sets Prometheus's `sample_limit` from it.
//!
//! The HTTP families' sets: `path` is one of the route templates, plus
//! `/openapi.json`, `/docs` and `unmatched`; `method` one of eight values;
//! `status` one of [`Statuses`]: the statuses the handlers document and the
//! ones telltale itself answers, plus `1xx` … `5xx` for any other (so that
//! `status=~"5.."` still matches it).

use crate::manifest::{Manifest, Metric, MetricType};
use std::collections::BTreeSet;

/// Statuses telltale's own layers answer, whatever the handlers document.
pub const FRAMEWORK_STATUSES: &[u16] =
    &[200, 400, 404, 405, 408, 413, 414, 415, 422, 431, 500, 503];
/// The `status` values of statuses outside the closed set, by class.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Methods the HTTP families distinguish (`OTHER` for the rest).
pub const METHOD_VALUES: usize = crate::manifest::HttpMethod::ALL.len() + 1;
/// Route values besides the templates: `/openapi.json`, `/docs`, `unmatched`.
pub const EXTRA_ROUTES: usize = 3;
/// Series of telltale's own families (`process_*`, `telltale_log_*`,
/// `telltale_accept_errors_total`, `telltale_connections_timed_out_total`,
/// `telltale_config_*`).
pub const OWN_SERIES: usize = 18;
/// `sample_limit` is the budget plus this share, for series a future
/// version adds before the manifest is rendered again.
pub const HEADROOM: f64 = 0.25;

/// The closed set of `status` label values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statuses(pub BTreeSet<u16>);

impl Statuses {
    /// The label value of `code`: itself if declared, else its class.
    pub fn label(&self, code: u16) -> std::borrow::Cow<'static, str> {
        if self.0.contains(&code) {
            code.to_string().into()
        } else {
            STATUS_CLASSES[usize::from(code.clamp(100, 599) / 100 - 1)].into()
        }
    }
    /// How many values the label can take.
    pub fn values(&self) -> usize {
        self.0.len() + STATUS_CLASSES.len()
    }
}

/// What the HTTP families' label sets are made of.
#[derive(Debug, Clone, Copy)]
pub struct HttpShape {
    pub routes: usize,
    pub methods: usize,
    pub statuses: usize,
}

impl HttpShape {
    /// Values of one of the HTTP labels (`path`, `method`, `status`).
    pub fn values(&self, label: &str) -> usize {
        match label {
            "path" => self.routes,
            "method" => self.methods,
            "status" => self.statuses,
            _ => 1,
        }
    }
}

/// Series of one sample of `m` per label set: 1, or the buckets plus
/// `+Inf`, `_sum` and `_count` of a histogram.
pub fn per_label_set(m: &Metric) -> usize {
    match m.kind {
        MetricType::Histogram => m.buckets.as_ref().map_or(11, Vec::len) + 3,
        _ => 1,
    }
}

/// The budget: each metric's most series, and telltale's own.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// (metric name, most series), in manifest order.
    pub metrics: Vec<(String, usize)>,
}

impl Budget {
    pub fn total(&self) -> usize {
        self.metrics
            .iter()
            .map(|(_, n)| *n)
            .fold(OWN_SERIES, usize::saturating_add)
    }
    /// Prometheus's `sample_limit` for the service's own job.
    pub fn sample_limit(&self) -> usize {
        let t = self.total() as f64;
        (t * (1.0 + HEADROOM)).ceil() as usize
    }
    /// The `n` metrics that cost the most, largest first.
    pub fn largest(&self, n: usize) -> Vec<(String, usize)> {
        let mut v = self.metrics.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// The HTTP label sets of `m`, given every status its handlers document.
pub fn http_shape(
    m: &Manifest,
    documented: impl IntoIterator<Item = u16>,
) -> (HttpShape, Statuses) {
    let mut templates = BTreeSet::new();
    for e in &m.endpoints {
        templates.insert(e.path.as_str());
    }
    let statuses = Statuses(
        FRAMEWORK_STATUSES
            .iter()
            .copied()
            .chain(documented)
            .filter(|c| (100..600).contains(c))
            .collect(),
    );
    (
        HttpShape {
            routes: templates.len() + EXTRA_ROUTES,
            methods: METHOD_VALUES,
            statuses: statuses.values(),
        },
        statuses,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_outside_the_set_counts_under_its_class() {
        let m = crate::manifest::load_embedded().unwrap().manifest;
        let (shape, s) = http_shape(&m, [201, 418]);
        assert_eq!(s.label(404), "404");
        assert_eq!(s.label(418), "418", "documented by a handler");
        assert_eq!(s.label(402), "4xx");
        assert_eq!(s.label(599), "5xx");
        assert_eq!(s.label(0), "1xx", "out of range clamps");
        assert_eq!(shape.statuses, FRAMEWORK_STATUSES.len() + 2 + 5);
        let templates: BTreeSet<&str> = m.endpoints.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(shape.routes, templates.len() + EXTRA_ROUTES);
    }

    #[test]
    fn the_sample_limit_has_headroom_over_the_total() {
        let b = Budget {
            metrics: vec![("a".into(), 100), ("b".into(), 8)],
        };
        assert_eq!(b.total(), 108 + OWN_SERIES);
        assert_eq!(
            b.sample_limit(),
            ((108 + OWN_SERIES) as f64 * 1.25).ceil() as usize
        );
        assert_eq!(b.largest(1), [("a".to_string(), 100)]);
    }
}
