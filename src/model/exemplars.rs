//! Exemplars: the last sampled request that a series (or one bucket of a
//! histogram) saw, as its trace and span ids, the observed value and when.
//! The `prometheus` crate has none, so they are kept here, beside the
//! handles that update the series, and joined to the gathered families
//! when `/metrics` answers in OpenMetrics (`server::openmetrics`).
//!
//! A [`ExemplarSlot`] is a seqlock over plain atomics: recording is a few relaxed
//! stores between two sequence updates, with no lock, no allocation and no
//! wait (a writer that finds another one mid-write gives up its exemplar:
//! the other is as recent). A reader retries a torn read a few times.

use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A trace and span id: what an exemplar links to (W3C byte order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// Where the current request's sampled span comes from: set by the layer
/// that sees requests (the model is below it), `None` outside a sampled
/// request.
pub type CurrentIds = fn() -> Option<Ids>;

/// The source that never has a span (exemplars off).
#[cfg(any(test, feature = "internals"))]
pub fn no_ids() -> Option<Ids> {
    None
}

/// One exemplar, read out of a [`ExemplarSlot`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub ids: Ids,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Milliseconds since the Unix epoch, now (at least 1: 0 marks an empty slot).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
        .max(1)
}

/// The last exemplar recorded, or none. 48 bytes.
#[derive(Default)]
pub struct ExemplarSlot {
    /// Even: stable; odd: a write is under way.
    seq: AtomicU32,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    span: AtomicU64,
    value: AtomicU64,
    /// 0: empty.
    at_ms: AtomicU64,
}

impl ExemplarSlot {
    /// Records `value` observed at `at_ms` in the span `ids`. Never waits:
    /// if another thread is writing this slot, this exemplar is dropped.
    pub fn record(&self, ids: Ids, value: f64, at_ms: u64) {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 1
            || self
                .seq
                .compare_exchange(s, s.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The odd sequence is visible before any field changes.
        fence(Ordering::Release);
        let (hi, lo) = ids.trace_id.split_at(8);
        let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
        self.trace_hi.store(word(hi), Ordering::Relaxed);
        self.trace_lo.store(word(lo), Ordering::Relaxed);
        self.span
            .store(u64::from_be_bytes(ids.span_id), Ordering::Relaxed);
        self.value.store(value.to_bits(), Ordering::Relaxed);
        self.at_ms.store(at_ms, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The last exemplar recorded; `None` if none was, or if writes kept
    /// tearing the read (a scrape then goes without this one).
    pub fn read(&self) -> Option<Exemplar> {
        for _ in 0..8 {
            let s = self.seq.load(Ordering::Acquire);
            if s & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let hi = self.trace_hi.load(Ordering::Relaxed);
            let lo = self.trace_lo.load(Ordering::Relaxed);
            let span = self.span.load(Ordering::Relaxed);
            let value = f64::from_bits(self.value.load(Ordering::Relaxed));
            let at_ms = self.at_ms.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) != s {
                continue;
            }
            if at_ms == 0 {
                return None;
            }
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&hi.to_be_bytes());
            trace_id[8..].copy_from_slice(&lo.to_be_bytes());
            return Some(Exemplar {
                ids: Ids {
                    trace_id,
                    span_id: span.to_be_bytes(),
                },
                value,
                at_ms,
            });
        }
        None
    }
}

/// A histogram series' exemplars: one slot per bucket (`le` bounds in
/// order, then `+Inf`), each the last sampled observation that fell in it.
pub struct BucketSlots {
    bounds: Box<[f64]>,
    slots: Box<[ExemplarSlot]>,
}

impl BucketSlots {
    /// Slots for buckets with these upper bounds (`+Inf` is added).
    pub fn new(bounds: &[f64]) -> BucketSlots {
        let bounds: Box<[f64]> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        let slots = (0..=bounds.len())
            .map(|_| ExemplarSlot::default())
            .collect();
        BucketSlots { bounds, slots }
    }

    /// Records `value` in the bucket it counts in (the first `le` ≥ it,
    /// as the `prometheus` crate counts; NaN is not recorded).
    pub fn record(&self, ids: Ids, value: f64, at_ms: u64) {
        if value.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < value);
        self.slots[i].record(ids, value, at_ms);
    }

    /// Each bucket's exemplar, as (upper bound, exemplar); `+Inf` last.
    pub fn read(&self) -> Vec<(f64, Exemplar)> {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        bounds
            .zip(self.slots.iter())
            .filter_map(|(b, s)| s.read().map(|e| (b, e)))
            .collect()
    }
}

/// What one series carries: a counter's exemplar, a histogram's per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesExemplars {
    pub total: Option<Exemplar>,
    pub buckets: Vec<(f64, Exemplar)>,
}

fn newer(a: Option<Exemplar>, b: Option<Exemplar>) -> Option<Exemplar> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.at_ms >= a.at_ms { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Every exemplar of one scrape, by family name and label set: what the
/// OpenMetrics encoder joins to the gathered families. Built per scrape.
#[derive(Debug, Default)]
pub struct ExemplarIndex {
    map: HashMap<String, HashMap<SortedLabels, SeriesExemplars>>,
}

/// A series' labels, sorted by name.
type SortedLabels = Vec<(String, String)>;

impl ExemplarIndex {
    /// Adds the exemplars of the series `labels` of `family` (the family's
    /// name as gathered, e.g. `http_requests_total`).
    pub fn add(&mut self, family: &str, labels: &[(&str, &str)], e: SeriesExemplars) {
        if e.total.is_none() && e.buckets.is_empty() {
            return;
        }
        let key = Self::key(labels.iter().copied());
        let series = self.map.entry(family.to_string()).or_default();
        let at = series.entry(key).or_default();
        // Several handles may update one series (statuses counted under
        // their class): the newest exemplar wins.
        at.total = newer(at.total, e.total);
        for (le, x) in e.buckets {
            match at.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, have)) => *have = newer(Some(*have), Some(x)).unwrap_or(x),
                None => at.buckets.push((le, x)),
            }
        }
        at.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// Whether any series of `family` has an exemplar.
    pub fn has(&self, family: &str) -> bool {
        self.map.contains_key(family)
    }

    /// The exemplars of the series `labels` of `family`.
    pub fn get<'a>(
        &self,
        family: &str,
        labels: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Option<&SeriesExemplars> {
        self.map.get(family)?.get(&Self::key(labels))
    }

    fn key<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> SortedLabels {
        let mut k: Vec<(String, String)> = labels
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        k.sort();
        k
    }

    /// How many series carry an exemplar.
    pub fn len(&self) -> usize {
        self.map.values().map(|s| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Ids {
        Ids {
            trace_id: [n; 16],
            span_id: [n; 8],
        }
    }

    #[test]
    fn a_slot_keeps_the_last_exemplar_whole() {
        let s = ExemplarSlot::default();
        assert_eq!(s.read(), None);
        s.record(ids(1), 0.5, 10);
        s.record(ids(2), 0.25, 20);
        assert_eq!(
            s.read(),
            Some(Exemplar {
                ids: ids(2),
                value: 0.25,
                at_ms: 20
            })
        );
        assert_eq!(std::mem::size_of::<ExemplarSlot>(), 48);
    }

    #[test]
    fn concurrent_writers_never_tear_a_read() {
        let s = std::sync::Arc::new(ExemplarSlot::default());
        let writers: Vec<_> = (1..=4u8)
            .map(|n| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..200_000u64 {
                        s.record(ids(n), n as f64, i + 1);
                    }
                })
            })
            .collect();
        let mut seen = 0;
        while seen < 100_000 {
            if let Some(e) = s.read() {
                // Every field from the same write: ids, value agree.
                let n = e.ids.trace_id[0];
                assert!(e.ids.trace_id.iter().all(|b| *b == n), "{e:?}");
                assert!(e.ids.span_id.iter().all(|b| *b == n), "{e:?}");
                assert_eq!(e.value, n as f64, "{e:?}");
                seen += 1;
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(s.read().is_some());
    }

    #[test]
    fn an_observation_lands_in_the_bucket_that_counts_it() {
        let b = BucketSlots::new(&[0.1, 1.0]);
        b.record(ids(1), 0.1, 1);
        b.record(ids(2), 0.5, 2);
        b.record(ids(3), 7.0, 3);
        b.record(ids(4), f64::NAN, 4);
        let got: Vec<(f64, u8)> = b
            .read()
            .into_iter()
            .map(|(le, e)| (le, e.ids.trace_id[0]))
            .collect();
        assert_eq!(got, [(0.1, 1), (1.0, 2), (f64::INFINITY, 3)]);
    }

    #[test]
    fn the_index_finds_a_series_whatever_its_label_order() {
        let mut i = ExemplarIndex::default();
        let e = Exemplar {
            ids: ids(9),
            value: 1.0,
            at_ms: 5,
        };
        i.add(
            "x_total",
            &[("path", "/"), ("method", "GET")],
            SeriesExemplars {
                total: Some(e),
                buckets: vec![],
            },
        );
        i.add("y", &[], SeriesExemplars::default());
        assert!(i.has("x_total") && !i.has("y"));
        let got = i.get("x_total", [("method", "GET"), ("path", "/")].into_iter());
        assert_eq!(got.and_then(|s| s.total), Some(e));
        assert!(i.get("x_total", [("method", "PUT")].into_iter()).is_none());
        assert_eq!(i.len(), 1);
    }
}
