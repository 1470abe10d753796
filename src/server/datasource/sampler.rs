//! The timer that feeds the ring and the event store from the server's own
//! metric families: no second set of counters, the datasource reads
//! exactly what `/metrics` exposes.

use super::annotations::AnnotationEvent;
use super::ring::Sample;
use super::spec::{Spec, Stat};
use super::Live;
use crate::manifest::EventKind;
use crate::server::families::Families;
use prometheus::proto::MetricFamily;
use std::collections::HashMap;
use std::sync::Arc;

/// A metric's reading at one instant.
#[derive(Debug, Clone, PartialEq)]
enum RawReading {
    Scalar(f64),
    /// Cumulative `(upper bound, count)` pairs, summed over every series, ending at `+Inf`.
    Buckets(Vec<(f64, f64)>),
    Missing,
}

/// Everything one tick reads.
#[derive(Debug, Clone)]
struct Reading {
    t_ms: i64,
    series: Vec<RawReading>,
    /// 5xx count per route template.
    errors: Vec<(String, f64)>,
    low_stock: Option<f64>,
}

/// DatasourceSampler state between ticks.
pub struct DatasourceSampler {
    live: Arc<Live>,
    families: Arc<Families>,
    prev: Reading,
}

fn families(f: &Families) -> Vec<MetricFamily> {
    f.gather()
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> Option<&'a str> {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

fn read(spec: &Spec, fams: &[MetricFamily], t_ms: i64) -> Reading {
    let by_name: HashMap<&str, &MetricFamily> = fams.iter().map(|f| (f.name(), f)).collect();
    // A vector family with no children yet is absent from `gather()`: for
    // counters and histograms that means "nothing counted" (zero), for
    // gauges "no value".
    let scalar = |name: &str,
                  keep: &dyn Fn(&prometheus::proto::Metric) -> bool,
                  absent: RawReading|
     -> RawReading {
        let Some(f) = by_name.get(name) else {
            return absent;
        };
        RawReading::Scalar(
            f.get_metric()
                .iter()
                .filter(|m| keep(m))
                .map(|m| m.get_counter().value() + m.get_gauge().value())
                .sum(),
        )
    };
    let is_5xx =
        |m: &prometheus::proto::Metric| label(m, "status").is_some_and(|s| s.starts_with('5'));
    let series = spec
        .series()
        .map(|(_, s)| match s.stat {
            Stat::Rate => scalar(&s.metric, &|_| true, RawReading::Scalar(0.0)),
            Stat::ErrorRate => scalar(&s.metric, &is_5xx, RawReading::Scalar(0.0)),
            Stat::Value => scalar(&s.metric, &|_| true, RawReading::Missing),
            Stat::Quantile(_) => match by_name.get(s.metric.as_str()) {
                None => RawReading::Buckets(Vec::new()),
                Some(f) => {
                    let mut sum: Vec<(f64, f64)> = Vec::new();
                    for m in f.get_metric() {
                        let h = m.get_histogram();
                        let buckets = h
                            .get_bucket()
                            .iter()
                            .map(|b| (b.upper_bound(), b.cumulative_count() as f64))
                            .chain(std::iter::once((
                                f64::INFINITY,
                                h.get_sample_count() as f64,
                            )));
                        for (i, (ub, c)) in buckets.enumerate() {
                            match sum.get_mut(i) {
                                Some(slot) => slot.1 += c,
                                None => sum.push((ub, c)),
                            }
                        }
                    }
                    RawReading::Buckets(sum)
                }
            },
        })
        .collect();
    let mut errors: Vec<(String, f64)> = Vec::new();
    if let Some(f) = spec.requests_metric.as_deref().and_then(|n| by_name.get(n)) {
        for m in f.get_metric().iter().filter(|m| is_5xx(m)) {
            let path = label(m, "path").unwrap_or("*").to_string();
            let v = m.get_counter().value();
            match errors.iter_mut().find(|(p, _)| *p == path) {
                Some(e) => e.1 += v,
                None => errors.push((path, v)),
            }
        }
    }
    let low_stock =
        spec.low_stock
            .as_deref()
            .and_then(|n| match scalar(n, &|_| true, RawReading::Missing) {
                RawReading::Scalar(v) => Some(v),
                _ => None,
            });
    Reading {
        t_ms,
        series,
        errors,
        low_stock,
    }
}

/// `histogram_quantile` over bucket deltas (linear interpolation inside a bucket).
fn quantile(q: f64, now: &[(f64, f64)], before: &[(f64, f64)]) -> f64 {
    let delta: Vec<(f64, f64)> = now
        .iter()
        .enumerate()
        .map(|(i, (ub, c))| (*ub, c - before.get(i).map_or(0.0, |b| b.1)))
        .collect();
    let Some(&(_, total)) = delta.last() else {
        return f64::NAN;
    };
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(ub, cum) in &delta {
        if cum >= rank {
            if ub.is_infinite() {
                return lower.0;
            }
            if cum == lower.1 {
                return ub;
            }
            return lower.0 + (ub - lower.0) * (rank - lower.1) / (cum - lower.1);
        }
        lower = (ub, cum);
    }
    f64::NAN
}

fn value(stat: Stat, now: &RawReading, before: &RawReading, dt_s: f64) -> f64 {
    match (stat, now, before) {
        (Stat::Value, RawReading::Scalar(v), _) => *v,
        (Stat::Rate | Stat::ErrorRate, RawReading::Scalar(a), RawReading::Scalar(b))
            if dt_s > 0.0 =>
        {
            ((a - b) / dt_s).max(0.0)
        }
        (Stat::Quantile(q), RawReading::Buckets(a), RawReading::Buckets(b)) => quantile(q, a, b),
        _ => f64::NAN,
    }
}

impl DatasourceSampler {
    /// Takes a first reading now (so that the first tick already has rates).
    pub fn new(live: Arc<Live>, fams: Arc<Families>) -> Self {
        let prev = read(&live.spec, &families(&fams), super::now_ms());
        DatasourceSampler {
            live,
            families: fams,
            prev,
        }
    }

    /// One tick: a ring sample, and events for 5xx bursts and low-stock changes.
    pub fn tick(&mut self) {
        let now = read(&self.live.spec, &families(&self.families), super::now_ms());
        self.record(now);
    }

    fn record(&mut self, now: Reading) {
        let spec = &self.live.spec;
        let dt_s = (now.t_ms - self.prev.t_ms) as f64 / 1000.0;
        let values: Box<[f64]> = spec
            .series()
            .map(|(_, s)| value(s.stat, &now.series[s.slot], &self.prev.series[s.slot], dt_s))
            .collect();
        self.live.push_sample(Sample {
            t_ms: now.t_ms,
            values,
        });
        if let Some(e) = burst(spec.error_burst, &self.prev, &now, spec.every) {
            self.live.push_event(e);
        }
        if let Some(e) = low_stock_change(&self.prev, &now) {
            self.live.push_event(e);
        }
        self.prev = now;
    }
}

fn burst(
    min: u64,
    before: &Reading,
    now: &Reading,
    every: std::time::Duration,
) -> Option<AnnotationEvent> {
    let mut by_path: Vec<(String, f64)> = now
        .errors
        .iter()
        .map(|(p, v)| {
            let b = before
                .errors
                .iter()
                .find(|(q, _)| q == p)
                .map_or(0.0, |x| x.1);
            (p.clone(), v - b)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let total: f64 = by_path.iter().map(|(_, d)| d).sum();
    if total < min as f64 {
        return None;
    }
    by_path.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let detail = by_path
        .iter()
        .take(3)
        .map(|(p, d)| format!("{p}: {d}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut e = AnnotationEvent::new(
        EventKind::ErrorBurst,
        before.t_ms,
        "Burst of 5xx responses",
        format!(
            "{total} responses with a 5xx status within {} ({detail})",
            humantime::format_duration(every)
        ),
    );
    e.time_end_ms = Some(now.t_ms);
    Some(e)
}

fn low_stock_change(before: &Reading, now: &Reading) -> Option<AnnotationEvent> {
    let n = now.low_stock?;
    match before.low_stock {
        Some(b) if b == n => None,
        Some(b) => Some(AnnotationEvent::new(
            EventKind::LowStock,
            now.t_ms,
            "Low stock changed",
            format!("products below their stock threshold: {b} → {n}"),
        )),
        None => None,
    }
}

/// The low-stock state at start-up, as an event (when something is low).
pub fn initial_low_stock(live: &Live, fams: &Families, t_ms: i64) -> Option<AnnotationEvent> {
    let r = read(&live.spec, &families(fams), t_ms);
    let n = r.low_stock.filter(|n| *n > 0.0)?;
    Some(AnnotationEvent::new(
        EventKind::LowStock,
        t_ms,
        "Low stock at start-up",
        format!("{n} products are below their stock threshold"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_within_a_bucket() {
        let before = vec![(0.1, 0.0), (1.0, 0.0), (f64::INFINITY, 0.0)];
        let now = vec![(0.1, 50.0), (1.0, 100.0), (f64::INFINITY, 100.0)];
        // rank 95 of 100: in (0.1, 1.0], 45 of its 50 observations in.
        let q = quantile(0.95, &now, &before);
        assert!((q - (0.1 + 0.9 * 45.0 / 50.0)).abs() < 1e-9, "{q}");
        assert!(quantile(0.5, &before, &before).is_nan());
        // Everything above the last bound: the last finite bound.
        let inf = vec![(0.1, 0.0), (1.0, 0.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(0.5, &inf, &before), 1.0);
    }

    #[test]
    fn rates_are_per_second_and_never_negative() {
        assert_eq!(
            value(
                Stat::Rate,
                &RawReading::Scalar(30.0),
                &RawReading::Scalar(10.0),
                2.0
            ),
            10.0
        );
        assert_eq!(
            value(
                Stat::Rate,
                &RawReading::Scalar(5.0),
                &RawReading::Scalar(10.0),
                2.0
            ),
            0.0
        );
        assert!(value(
            Stat::Rate,
            &RawReading::Missing,
            &RawReading::Scalar(1.0),
            2.0
        )
        .is_nan());
        assert_eq!(
            value(
                Stat::Value,
                &RawReading::Scalar(7.0),
                &RawReading::Missing,
                0.0
            ),
            7.0
        );
    }

    fn reading(t: i64, errors: &[(&str, f64)], low: Option<f64>) -> Reading {
        Reading {
            t_ms: t,
            series: Vec::new(),
            errors: errors.iter().map(|(p, v)| (p.to_string(), *v)).collect(),
            low_stock: low,
        }
    }

    #[test]
    fn bursts_need_the_threshold_within_one_interval() {
        let every = std::time::Duration::from_secs(5);
        let a = reading(0, &[("/error", 10.0)], None);
        let b = reading(5000, &[("/error", 13.0), ("/x", 1.0)], None);
        let c = reading(10000, &[("/error", 19.0), ("/x", 1.0)], None);
        assert!(burst(5, &a, &b, every).is_none());
        let e = burst(5, &b, &c, every).unwrap();
        assert_eq!((e.time_ms, e.time_end_ms), (5000, Some(10000)));
        assert!(e.text.contains("/error: 6"), "{}", e.text);
    }

    #[test]
    fn low_stock_events_on_change_only() {
        let a = reading(0, &[], Some(3.0));
        let b = reading(1, &[], Some(3.0));
        let c = reading(2, &[], Some(4.0));
        assert!(low_stock_change(&a, &b).is_none());
        assert!(low_stock_change(&b, &c).unwrap().text.contains("3 → 4"));
    }
}
