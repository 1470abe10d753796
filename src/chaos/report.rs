//! What a chaos run found: per-endpoint counts and statuses, latency
//! percentiles, the good-request success rate and every surprise, as a
//! table for people or JSON for scripts (same content).

use super::plan::{Expect, Planned};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What happened to one planned request.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    pub status: Option<u16>,
    /// Transport error (no status), or with a status: the body was over
    /// the cap or cut off.
    pub error: Option<String>,
    pub latency: Duration,
}

impl RequestOutcome {
    /// The request got what `expect` asks, and its whole body within the cap.
    pub fn meets(&self, expect: Expect) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| expect.met_by(s))
    }
}

/// Run parameters echoed in the report.
#[derive(Debug, Clone)]
pub struct Meta {
    pub target: String,
    pub seed: u64,
    pub concurrency: usize,
    pub bad_ratio: f64,
    pub planned: usize,
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    /// The `--header` names (lowercase; never their values).
    pub headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles of `ms` (milliseconds).
pub fn latency(mut ms: Vec<f64>) -> Option<Latency> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p / 100.0) * ms.len() as f64).ceil() as usize;
        ms[rank.clamp(1, ms.len()) - 1]
    };
    Some(Latency {
        min: ms[0],
        p50: at(50.0),
        p95: at(95.0),
        p99: at(99.0),
        max: ms[ms.len() - 1],
    })
}

#[derive(Debug, Clone)]
struct EndpointRow {
    endpoint: String,
    kind: String,
    expect: String,
    statuses: BTreeMap<String, usize>,
    latencies: Vec<f64>,
}

/// One request that did not get what it should have.
#[derive(Debug, Clone)]
pub struct Surprise {
    pub index: usize,
    pub endpoint: String,
    pub path: String,
    pub kind: String,
    pub expected: String,
    pub got: String,
}

/// The finished report.
#[derive(Debug, Clone)]
pub struct Report {
    meta: Meta,
    rows: Vec<EndpointRow>,
    latency: Option<Latency>,
    sent: usize,
    good_total: usize,
    good_ok: usize,
    bad_total: usize,
    bad_as_expected: usize,
    /// Bad requests with an unexpected status.
    unexpected: Vec<Surprise>,
    /// Good requests that failed.
    failed_good: Vec<Surprise>,
}

fn got(o: &RequestOutcome) -> String {
    match (o.status, &o.error) {
        (Some(s), None) => s.to_string(),
        (Some(s), Some(e)) => format!("{s}, then error: {e}"),
        (None, Some(e)) => format!("error: {e}"),
        (None, None) => "not sent".into(),
    }
}

impl Report {
    /// `outcomes[i]` belongs to `plan[i]`; `None` means not sent (aborted run).
    pub fn build(plan: &[Planned], outcomes: &[Option<RequestOutcome>], meta: Meta) -> Report {
        let mut rows: BTreeMap<(bool, String, String), EndpointRow> = BTreeMap::new();
        let mut all = Vec::new();
        let mut r = Report {
            meta,
            rows: Vec::new(),
            latency: None,
            sent: 0,
            good_total: 0,
            good_ok: 0,
            bad_total: 0,
            bad_as_expected: 0,
            unexpected: Vec::new(),
            failed_good: Vec::new(),
        };
        for (i, (p, o)) in plan.iter().zip(outcomes).enumerate() {
            let Some(o) = o else { continue };
            r.sent += 1;
            let kind = p.bad.map_or("good", |b| b.as_str()).to_string();
            let row = rows
                .entry((p.bad.is_some(), p.endpoint.clone(), kind.clone()))
                .or_insert_with(|| EndpointRow {
                    endpoint: p.endpoint.clone(),
                    kind: kind.clone(),
                    expect: p.expect.describe(),
                    statuses: BTreeMap::new(),
                    latencies: Vec::new(),
                });
            // A status whose body was over the cap or cut off: `200+error`.
            let key = match (o.status, &o.error) {
                (Some(s), None) => s.to_string(),
                (Some(s), Some(_)) => format!("{s}+error"),
                (None, _) => "error".to_string(),
            };
            *row.statuses.entry(key).or_default() += 1;
            let ms = o.latency.as_secs_f64() * 1000.0;
            if o.status.is_some() {
                row.latencies.push(ms);
                all.push(ms);
            }
            let met = o.meets(p.expect);
            let surprise = || Surprise {
                index: i,
                endpoint: p.endpoint.clone(),
                path: p.path.clone(),
                kind: kind.clone(),
                expected: p.expect.describe(),
                got: got(o),
            };
            match (p.bad.is_some(), met) {
                (false, true) => {
                    r.good_total += 1;
                    r.good_ok += 1;
                }
                (false, false) => {
                    r.good_total += 1;
                    r.failed_good.push(surprise());
                }
                (true, true) => {
                    r.bad_total += 1;
                    r.bad_as_expected += 1;
                }
                (true, false) => {
                    r.bad_total += 1;
                    r.unexpected.push(surprise());
                }
            }
        }
        r.rows = rows.into_values().collect();
        r.latency = latency(all);
        r
    }

    /// True when every good request succeeded, every bad one got its status, and nothing was skipped.
    pub fn passed(&self) -> bool {
        self.meta.aborted.is_none()
            && self.unexpected.is_empty()
            && self.failed_good.is_empty()
            && self.sent == self.meta.planned
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn sent(&self) -> usize {
        self.sent
    }

    fn success_rate(&self) -> Option<f64> {
        (self.good_total > 0).then(|| self.good_ok as f64 / self.good_total as f64)
    }

    fn statuses(s: &BTreeMap<String, usize>) -> String {
        s.iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let m = &self.meta;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "telltale chaos: {} of {} requests sent to {} (seed {}, concurrency {}, bad ratio {:.2}) in {:.2}s",
            self.sent,
            m.planned,
            m.target,
            m.seed,
            m.concurrency,
            m.bad_ratio,
            m.elapsed.as_secs_f64()
        );
        if !m.headers.is_empty() {
            let _ = writeln!(out, "Headers sent: {}", m.headers.join(", "));
        }
        let _ = writeln!(out);
        let w = self
            .rows
            .iter()
            .map(|r| r.endpoint.chars().count())
            .max()
            .unwrap_or(8)
            .max(8);
        let _ = writeln!(
            out,
            "{:<w$}  {:<15}  {:>5}  {:<8}  {:<18}  {:>8}  {:>8}",
            "ENDPOINT", "KIND", "COUNT", "EXPECTED", "STATUSES", "P50 ms", "MAX ms"
        );
        for r in &self.rows {
            let l = latency(r.latencies.clone());
            let (p50, max) = l.map_or(("-".into(), "-".into()), |l| {
                (format!("{:.2}", l.p50), format!("{:.2}", l.max))
            });
            let _ = writeln!(
                out,
                "{:<w$}  {:<15}  {:>5}  {:<8}  {:<18}  {:>8}  {:>8}",
                r.endpoint,
                r.kind,
                r.statuses.values().sum::<usize>(),
                r.expect,
                Self::statuses(&r.statuses),
                p50,
                max
            );
        }
        let _ = writeln!(out);
        match &self.latency {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "Latency (ms): min {:.2}  p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
                    l.min, l.p50, l.p95, l.p99, l.max
                );
            }
            None => {
                let _ = writeln!(out, "Latency: no response received");
            }
        }
        let _ = writeln!(
            out,
            "Good requests: {}/{} succeeded ({})",
            self.good_ok,
            self.good_total,
            self.success_rate()
                .map_or("n/a".into(), |r| format!("{:.1}%", r * 100.0))
        );
        let _ = writeln!(
            out,
            "Bad requests: {}/{} got their expected status",
            self.bad_as_expected, self.bad_total
        );
        for (title, list) in [
            ("Bad requests with an unexpected status", &self.unexpected),
            ("Good requests that failed", &self.failed_good),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title}:");
            for s in list {
                let _ = writeln!(
                    out,
                    "  #{:<4} {} ({}, path {}): expected {}, got {}",
                    s.index, s.endpoint, s.kind, s.path, s.expected, s.got
                );
            }
        }
        if let Some(why) = &m.aborted {
            let _ = writeln!(out, "Stopped early: {why}");
        }
        let _ = writeln!(out, "{}", if self.passed() { "PASS" } else { "FAIL" });
        out
    }

    /// The same report as JSON.
    pub fn json(&self) -> Json {
        let m = &self.meta;
        // Microsecond precision is plenty.
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        let lat = |l: &Latency| json!({"min": r(l.min), "p50": r(l.p50), "p95": r(l.p95), "p99": r(l.p99), "max": r(l.max)});
        let surprises = |v: &[Surprise]| -> Json {
            v.iter()
                .map(|s| {
                    json!({"index": s.index, "endpoint": s.endpoint, "path": s.path,
                           "kind": s.kind, "expected": s.expected, "got": s.got})
                })
                .collect()
        };
        json!({
            "target": m.target,
            "seed": m.seed,
            "concurrency": m.concurrency,
            "bad_ratio": m.bad_ratio,
            "headers": m.headers,
            "planned": m.planned,
            "sent": self.sent,
            "elapsed_ms": r(m.elapsed.as_secs_f64() * 1000.0),
            "endpoints": self.rows.iter().map(|r| json!({
                "endpoint": r.endpoint,
                "kind": r.kind,
                "expected": r.expect,
                "count": r.statuses.values().sum::<usize>(),
                "statuses": r.statuses,
                "latency_ms": latency(r.latencies.clone()).as_ref().map(lat),
            })).collect::<Vec<_>>(),
            "latency_ms": self.latency.as_ref().map(lat),
            "good": {"total": self.good_total, "succeeded": self.good_ok, "success_rate": self.success_rate()},
            "bad": {"total": self.bad_total, "as_expected": self.bad_as_expected},
            "unexpected": surprises(&self.unexpected),
            "failed_good": surprises(&self.failed_good),
            "aborted": m.aborted,
            "passed": self.passed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::plan::{BadKind, Expect};

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = latency((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!(
            (l.min, l.p50, l.p95, l.p99, l.max),
            (1.0, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(latency(vec![7.0]).unwrap().p99, 7.0);
        assert!(latency(vec![]).is_none());
    }

    #[test]
    fn surprises_fail_the_run() {
        let p = |bad: Option<BadKind>, expect| Planned {
            endpoint: "GET /x".into(),
            method: crate::manifest::HttpMethod::Get,
            path: "/x".into(),
            body: None,
            expect,
            bad,
            credentials: true,
        };
        let o = |s: u16| {
            Some(RequestOutcome {
                status: Some(s),
                error: None,
                latency: Duration::from_millis(1),
            })
        };
        let meta = Meta {
            target: "t".into(),
            seed: 1,
            concurrency: 1,
            bad_ratio: 0.5,
            planned: 2,
            elapsed: Duration::ZERO,
            aborted: None,
            headers: Vec::new(),
        };
        let plan = vec![
            p(None, Expect::Success),
            p(Some(BadKind::WrongMethod), Expect::Status(405)),
        ];
        let good = Report::build(&plan, &[o(200), o(405)], meta.clone());
        assert!(good.passed(), "{}", good.text());
        let bad = Report::build(&plan, &[o(200), o(500)], meta.clone());
        assert!(!bad.passed());
        assert_eq!(bad.json()["unexpected"][0]["got"], "500");
        let failed = Report::build(&plan, &[o(503), o(405)], meta.clone());
        assert!(!failed.passed());
        assert_eq!(failed.json()["good"]["success_rate"], 0.0);
        let short = Report::build(&plan, &[o(200), None], meta);
        assert!(!short.passed());
    }
}
