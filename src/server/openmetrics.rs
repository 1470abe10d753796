//! `/metrics` in OpenMetrics 1.0 (the text format Prometheus asks for
//! first), encoded from the `prometheus` crate's gathered families, with
//! telltale's own exemplars ([`ExemplarIndex`]) on counters' `_total` and
//! histograms' buckets.
//!
//! Each family keeps the series names Prometheus stores from the older text
//! format, so switching formats changes no stored series:
//! - a counter `x_total` is the family `x` with the sample `x_total`. A
//!   counter whose name does not end in `_total` (possible only from a
//!   metric source of your own: the manifest requires the suffix), or whose
//!   stem names another family, is exposed as `unknown` under its own name
//!   (OpenMetrics would otherwise make its series `<name>_total`);
//! - `le` and `quantile` values are written as the text format writes them
//!   (`le="1"`, not `"1.0"`; `+Inf`);
//! - a histogram with a negative bucket bound cannot have `_sum` in
//!   OpenMetrics: its `_bucket`, `_count` and `_sum` are exposed as three
//!   `unknown` families of those names;
//! - `untyped` is `unknown`; no `_created` samples are written.
//!
//! HELP and label values are escaped as the spec says (`\\`, `\"`, `\n`);
//! the answer ends in `# EOF`.

use crate::model::exemplars::{Exemplar, ExemplarIndex, SeriesExemplars};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use std::collections::HashSet;
use std::fmt::Write as _;

/// The `Content-Type` of an OpenMetrics answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics: one of its media ranges
/// is `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) with a
/// quality above zero. Prometheus sends that first by default.
pub fn wanted(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/openmetrics-text") {
            return false;
        }
        parts.all(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k.eq_ignore_ascii_case("q") {
                v.parse::<f64>().is_ok_and(|q| q > 0.0)
            } else if k.eq_ignore_ascii_case("version") {
                matches!(v, "1.0.0" | "0.0.1")
            } else {
                true
            }
        })
    })
}

/// Encodes `families` (sorted by name, as gathered) in OpenMetrics 1.0,
/// with the exemplars of `index`.
pub fn encode(families: &[MetricFamily], index: &ExemplarIndex) -> String {
    let names: HashSet<&str> = families.iter().map(|f| f.name()).collect();
    let mut out = String::with_capacity(16 * 1024);
    for f in families {
        let name = f.name();
        let ex = index.has(name).then_some((index, name));
        match f.get_field_type() {
            MetricType::COUNTER => {
                let stem = name.strip_suffix("_total").filter(|s| {
                    !s.is_empty() && !names.contains(s) && !names.contains(&*format!("{s}_created"))
                });
                match stem {
                    Some(stem) => {
                        header(&mut out, stem, f.help(), "counter");
                        for m in f.get_metric() {
                            let e = exemplars(ex, m).and_then(|e| e.total);
                            sample(&mut out, name, m, None, m.get_counter().value(), e);
                        }
                    }
                    None => {
                        header(&mut out, name, f.help(), "unknown");
                        for m in f.get_metric() {
                            sample(&mut out, name, m, None, m.get_counter().value(), None);
                        }
                    }
                }
            }
            MetricType::GAUGE => {
                header(&mut out, name, f.help(), "gauge");
                for m in f.get_metric() {
                    sample(&mut out, name, m, None, m.get_gauge().value(), None);
                }
            }
            MetricType::UNTYPED => {
                header(&mut out, name, f.help(), "unknown");
                for m in f.get_metric() {
                    sample(&mut out, name, m, None, m.untyped.value(), None);
                }
            }
            MetricType::SUMMARY => {
                header(&mut out, name, f.help(), "summary");
                for m in f.get_metric() {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let at = fmt_label_float(q.quantile());
                        sample(&mut out, name, m, Some(("quantile", &at)), q.value(), None);
                    }
                    sample(
                        &mut out,
                        &suffixed(name, "_sum"),
                        m,
                        None,
                        s.sample_sum(),
                        None,
                    );
                    let count = s.sample_count() as f64;
                    sample(&mut out, &suffixed(name, "_count"), m, None, count, None);
                }
            }
            MetricType::HISTOGRAM => histogram(&mut out, f, ex),
        }
    }
    out.push_str("# EOF\n");
    out
}

fn exemplars<'a>(ex: Option<(&'a ExemplarIndex, &str)>, m: &Metric) -> Option<&'a SeriesExemplars> {
    let (index, family) = ex?;
    index.get(family, m.get_label().iter().map(|l| (l.name(), l.value())))
}

fn suffixed(name: &str, suffix: &str) -> String {
    format!("{name}{suffix}")
}

fn histogram(out: &mut String, f: &MetricFamily, ex: Option<(&ExemplarIndex, &str)>) {
    let name = f.name();
    let negative = f
        .get_metric()
        .iter()
        .flat_map(|m| m.get_histogram().get_bucket())
        .any(|b| b.upper_bound() < 0.0);
    let bucket = suffixed(name, "_bucket");
    let (sum, count) = (suffixed(name, "_sum"), suffixed(name, "_count"));
    let buckets = |out: &mut String, m: &Metric, with_exemplars: bool| {
        let h = m.get_histogram();
        let e = if with_exemplars {
            exemplars(ex, m)
        } else {
            None
        };
        let of = |le: f64| e.and_then(|e| e.buckets.iter().find(|(b, _)| *b == le).map(|x| x.1));
        let mut inf = false;
        for b in h.get_bucket() {
            let le = b.upper_bound();
            inf |= le == f64::INFINITY;
            let v = b.cumulative_count() as f64;
            sample(
                out,
                &bucket,
                m,
                Some(("le", &fmt_label_float(le))),
                v,
                of(le),
            );
        }
        if !inf {
            let v = h.get_sample_count() as f64;
            sample(out, &bucket, m, Some(("le", "+Inf")), v, of(f64::INFINITY));
        }
    };
    if negative {
        // OpenMetrics forbids `_sum` beside a negative bucket: three
        // `unknown` families keep every series as the text format has it.
        header(out, &bucket, f.help(), "unknown");
        for m in f.get_metric() {
            buckets(out, m, false);
        }
        header(out, &count, f.help(), "unknown");
        for m in f.get_metric() {
            let c = m.get_histogram().get_sample_count() as f64;
            sample(out, &count, m, None, c, None);
        }
        header(out, &sum, f.help(), "unknown");
        for m in f.get_metric() {
            sample(out, &sum, m, None, m.get_histogram().get_sample_sum(), None);
        }
        return;
    }
    header(out, name, f.help(), "histogram");
    for m in f.get_metric() {
        buckets(out, m, true);
        let h = m.get_histogram();
        sample(out, &count, m, None, h.get_sample_count() as f64, None);
        sample(out, &sum, m, None, h.get_sample_sum(), None);
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    if !help.is_empty() {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape(out, help);
        out.push('\n');
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `\`, `"` and line feeds escaped, as OpenMetrics escapes label values
/// and HELP text.
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn sample(
    out: &mut String,
    name: &str,
    m: &Metric,
    extra: Option<(&str, &str)>,
    value: f64,
    exemplar: Option<Exemplar>,
) {
    out.push_str(name);
    labels(out, m.get_label(), extra);
    out.push(' ');
    fmt_float(out, value);
    let ts = m.timestamp_ms();
    if ts != 0 {
        out.push(' ');
        fmt_ms(out, ts);
    }
    if let Some(e) = exemplar {
        let _ = write!(
            out,
            " # {{trace_id=\"{}\",span_id=\"{}\"}} ",
            HexBytes(&e.ids.trace_id),
            HexBytes(&e.ids.span_id)
        );
        fmt_float(out, e.value);
        out.push(' ');
        fmt_ms(out, e.at_ms as i64);
    }
    out.push('\n');
}

fn labels(out: &mut String, pairs: &[LabelPair], extra: Option<(&str, &str)>) {
    if pairs.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let all = pairs.iter().map(|l| (l.name(), l.value())).chain(extra);
    for (n, v) in all {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape(out, v);
        out.push('"');
    }
    out.push('}');
}

/// A sample value: `+Inf`, `-Inf`, `NaN`, or the shortest decimal that
/// reads back as the same number.
fn fmt_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// An `le` or `quantile` value as the text format writes it.
fn fmt_label_float(v: f64) -> String {
    let mut s = String::new();
    fmt_float(&mut s, v);
    s
}

/// Milliseconds since the epoch as OpenMetrics seconds (`1700000000.123`).
fn fmt_ms(out: &mut String, ms: i64) {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:03}", ms / 1000, ms % 1000);
}

struct HexBytes<'a>(&'a [u8]);

impl std::fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::exemplars::Ids;
    use prometheus::core::Collector;

    fn families(c: &[&dyn Collector]) -> Vec<MetricFamily> {
        let mut all: Vec<MetricFamily> = c.iter().flat_map(|c| c.collect()).collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    #[test]
    fn prometheus_asks_for_it_and_a_plain_scraper_does_not() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wanted(prom));
        assert!(wanted("Application/OpenMetrics-Text"));
        assert!(wanted("text/plain, application/openmetrics-text; q=0.2"));
        for no in [
            "",
            "*/*",
            "text/plain;version=0.0.4",
            "application/openmetrics-text;q=0",
            "application/openmetrics-text; version=2.0.0",
            "application/json",
        ] {
            assert!(!wanted(no), "{no}");
        }
    }

    #[test]
    fn families_keep_their_series_names_and_end_in_eof() {
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("req_total", "Requests \"served\"\nby path \\ method"),
            &["path"],
        )
        .unwrap();
        c.with_label_values(&["/a\"b\\c\nd"]).inc_by(3);
        let bare = prometheus::Counter::new("bare", "No suffix").unwrap();
        bare.inc();
        let g = prometheus::Gauge::new("temp_total", "A gauge named _total").unwrap();
        g.set(-1.5);
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("lat_seconds", "Latency").buckets(vec![0.5, 1.0]),
        )
        .unwrap();
        h.observe(0.7);
        h.observe(9.0);
        let neg = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("delta", "Signed").buckets(vec![-1.0, 1.0]),
        )
        .unwrap();
        neg.observe(-2.0);
        let text = encode(
            &families(&[&c, &bare, &g, &h, &neg]),
            &ExemplarIndex::default(),
        );
        let want = "\
# HELP bare No suffix
# TYPE bare unknown
bare 1
# HELP delta_bucket Signed
# TYPE delta_bucket unknown
delta_bucket{le=\"-1\"} 1
delta_bucket{le=\"1\"} 1
delta_bucket{le=\"+Inf\"} 1
# HELP delta_count Signed
# TYPE delta_count unknown
delta_count 1
# HELP delta_sum Signed
# TYPE delta_sum unknown
delta_sum -2
# HELP lat_seconds Latency
# TYPE lat_seconds histogram
lat_seconds_bucket{le=\"0.5\"} 0
lat_seconds_bucket{le=\"1\"} 1
lat_seconds_bucket{le=\"+Inf\"} 2
lat_seconds_count 2
lat_seconds_sum 9.7
# HELP req Requests \\\"served\\\"\\nby path \\\\ method
# TYPE req counter
req_total{path=\"/a\\\"b\\\\c\\nd\"} 3
# HELP temp_total A gauge named _total
# TYPE temp_total gauge
temp_total -1.5
# EOF
";
        assert_eq!(text, want);
    }

    #[test]
    fn exemplars_go_on_totals_and_the_buckets_they_fell_in() {
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("req_total", "Requests"),
            &["path", "method"],
        )
        .unwrap();
        c.with_label_values(&["/", "GET"]).inc();
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("lat", "Latency").buckets(vec![0.5]),
        )
        .unwrap();
        h.observe(0.25);
        let ids = Ids {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
        };
        let e = |value, at_ms| Exemplar { ids, value, at_ms };
        let mut index = ExemplarIndex::default();
        let total = Some(e(1.0, 1_700_000_000_005));
        let series = SeriesExemplars {
            total,
            buckets: vec![],
        };
        index.add("req_total", &[("method", "GET"), ("path", "/")], series);
        let buckets = vec![(0.5, e(0.25, 1_700_000_000_120))];
        let series = SeriesExemplars {
            total: None,
            buckets,
        };
        index.add("lat", &[], series);
        let text = encode(&families(&[&c, &h]), &index);
        let (t, s) = ("abababababababababababababababab", "0101010101010101");
        assert!(text.contains(&format!(
            "lat_bucket{{le=\"0.5\"}} 1 # {{trace_id=\"{t}\",span_id=\"{s}\"}} 0.25 1700000000.120\n"
        )), "{text}");
        assert!(text.contains("lat_bucket{le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains(&format!(
            "req_total{{method=\"GET\",path=\"/\"}} 1 # {{trace_id=\"{t}\",span_id=\"{s}\"}} 1 1700000000.005\n"
        )), "{text}");
    }

    #[test]
    fn a_counter_whose_stem_is_another_family_stays_unknown() {
        let c = prometheus::Counter::new("jobs_total", "Jobs").unwrap();
        let g = prometheus::Gauge::new("jobs", "Jobs now").unwrap();
        let text = encode(&families(&[&c, &g]), &ExemplarIndex::default());
        assert!(text.contains("# TYPE jobs_total unknown\n"), "{text}");
        assert!(text.contains("# TYPE jobs gauge\n"), "{text}");
    }

    #[test]
    fn special_values_are_spelled_as_the_spec_says() {
        let mut s = String::new();
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.1, 1e-7, 3.0] {
            fmt_float(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "+Inf -Inf NaN 0.1 0.0000001 3 ");
        let mut t = String::new();
        fmt_ms(&mut t, 1_700_000_000_007);
        assert_eq!(t, "1700000000.007");
    }
}
