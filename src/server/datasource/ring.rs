//! A fixed-capacity ring of samples: one timestamp and one value per series.
//!
//! Memory is `capacity × (8 + 8 × series)` bytes plus a constant, however
//! long the server runs: a full ring drops its oldest sample.

use std::collections::VecDeque;

/// One tick of the sampler. `NaN` means "no value" (JSON `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t_ms: i64,
    pub values: Box<[f64]>,
}

#[derive(Debug)]
pub struct Ring {
    cap: usize,
    samples: VecDeque<Sample>,
}

impl Ring {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Ring {
            cap,
            samples: VecDeque::with_capacity(cap),
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Appends `other`'s samples (oldest first); the capacity still holds.
    pub fn absorb(&mut self, other: &Ring) {
        for s in &other.samples {
            self.push(s.clone());
        }
    }

    /// Appends, dropping the oldest sample when full.
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// `(t, value)` of series `slot` with `from <= t <= to`, oldest first.
    pub fn points(&self, slot: usize, from: i64, to: i64) -> Vec<(i64, f64)> {
        // Samples are in time order: skip to the first one in range.
        let start = self.samples.partition_point(|s| s.t_ms < from);
        self.samples
            .range(start..)
            .take_while(|s| s.t_ms <= to)
            .map(|s| (s.t_ms, s.values.get(slot).copied().unwrap_or(f64::NAN)))
            .collect()
    }

    /// Oldest and newest timestamps.
    #[cfg(any(test, feature = "internals"))]
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.samples.front()?.t_ms, self.samples.back()?.t_ms))
    }
}

/// Reduces `points` (time-ordered, within `[from, to]`) to at most
/// `max_points` points, each bucket at least `min_step_ms` wide: a bucket's
/// value is the mean of its non-null values (null if none), stamped with its
/// last point's time.
pub fn downsample(
    points: Vec<(i64, f64)>,
    from: i64,
    to: i64,
    max_points: usize,
    min_step_ms: i64,
) -> Vec<(i64, f64)> {
    let max_points = max_points.max(1);
    // Unsigned, saturating: any request values, however large, are safe here.
    let span = (to as i128 - from as i128).clamp(0, u64::MAX as i128 - 1) as u64 + 1;
    let step = (min_step_ms.max(1) as u64).max(span.div_ceil(max_points as u64));
    if points.len() <= max_points && step <= 1 {
        return points;
    }
    let buckets = span.div_ceil(step).max(1) as usize;
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(buckets.min(points.len()));
    let mut cur: Option<(usize, i64, f64, u32)> = None; // (bucket, last t, sum, n)
    let flush = |c: (usize, i64, f64, u32), out: &mut Vec<(i64, f64)>| {
        let (_, t, sum, n) = c;
        out.push((t, if n == 0 { f64::NAN } else { sum / n as f64 }));
    };
    for (t, v) in points {
        let b = ((((t as i128 - from as i128).max(0) as u128) / step as u128) as usize)
            .min(buckets - 1);
        match &mut cur {
            Some(c) if c.0 == b => {
                c.1 = t;
                if !v.is_nan() {
                    c.2 += v;
                    c.3 += 1;
                }
            }
            _ => {
                if let Some(c) = cur.take() {
                    flush(c, &mut out);
                }
                cur = Some((
                    b,
                    t,
                    if v.is_nan() { 0.0 } else { v },
                    u32::from(!v.is_nan()),
                ));
            }
        }
    }
    if let Some(c) = cur {
        flush(c, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, v: f64) -> Sample {
        Sample {
            t_ms: t,
            values: vec![v].into(),
        }
    }

    #[test]
    fn ring_drops_oldest_when_full() {
        let mut r = Ring::new(3);
        for t in 0..10 {
            r.push(sample(t, t as f64));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.span(), Some((7, 9)));
        assert_eq!(r.points(0, 0, 100), vec![(7, 7.0), (8, 8.0), (9, 9.0)]);
    }

    #[test]
    fn points_respect_range_bounds() {
        let mut r = Ring::new(100);
        for t in 0..10 {
            r.push(sample(t * 10, t as f64));
        }
        let p = r.points(0, 25, 60);
        assert_eq!(p.first().unwrap().0, 30);
        assert_eq!(p.last().unwrap().0, 60);
        assert!(r.points(0, 1000, 2000).is_empty());
        // A slot that does not exist reads as null.
        assert!(r.points(5, 0, 0)[0].1.is_nan());
    }

    #[test]
    fn downsample_caps_points_and_averages() {
        let pts: Vec<(i64, f64)> = (0..100).map(|t| (t, t as f64)).collect();
        let d = downsample(pts.clone(), 0, 99, 10, 0);
        assert_eq!(d.len(), 10);
        assert_eq!(d[0], (9, 4.5));
        assert_eq!(d[9], (99, 94.5));
        // Fewer points than the cap and no step: unchanged.
        assert_eq!(
            downsample(pts[..5].to_vec(), 0, 4, 10, 0),
            pts[..5].to_vec()
        );
        // A min step wider than span / max merges more.
        assert_eq!(downsample(pts.clone(), 0, 99, 10, 50).len(), 2);
        // Extreme requests neither overflow nor lose the points.
        assert_eq!(
            downsample(pts.clone(), 0, 99, usize::MAX, i64::MAX).len(),
            1
        );
        assert_eq!(
            downsample(pts.clone(), i64::MIN, i64::MAX, usize::MAX, 0).len(),
            100
        );
        assert_eq!(downsample(pts, i64::MIN, i64::MAX, 3, 0).len(), 1);
    }

    #[test]
    fn downsample_keeps_nulls_apart_from_values() {
        let pts = vec![(0, f64::NAN), (1, 2.0), (5, f64::NAN)];
        let d = downsample(pts, 0, 5, 2, 0);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0], (1, 2.0));
        assert!(d[1].1.is_nan());
    }
}
