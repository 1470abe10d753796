//! Traces: every request is a server span in its W3C trace, and what a
//! handler logs or times inside it becomes its span events and child
//! spans. Spans are exported over OTLP/HTTP (protobuf) by a writer thread
//! from a bounded queue (`export`); a request never waits on it.
//!
//! This module is below the server and the log layer: the ids and the
//! request's [`SpanContext`] (held in the request's context,
//! `logging::request`), the sampler, and the exporter.

pub mod config;
pub mod encode;
pub mod export;
pub mod ids;
pub mod span;

#[cfg(any(test, feature = "internals"))]
pub use export::Tracer;
pub use export::{stats, tracer};
pub use ids::{SpanId, TraceId, TraceParent};

use crate::manifest::traces::Sampler;

/// One request's place in its trace: the trace, this server span, the
/// caller's span (its parent, if the request carried a `traceparent`) and
/// whether it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub sampled: bool,
}

/// A sampler with its ratio, ready to decide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub sampler: Sampler,
    /// `ratio` × 2^63, compared with the trace id's low 63 bits (as
    /// OpenTelemetry's `TraceIdRatioBased` does).
    threshold: u64,
    pub ratio: f64,
}

impl Sampling {
    /// `sampler` with `ratio` (ignored unless it takes one), clamped to 0..1.
    pub fn new(sampler: Sampler, ratio: f64) -> Sampling {
        let ratio = if ratio.is_nan() {
            1.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        let threshold = if ratio >= 1.0 {
            u64::MAX
        } else {
            (ratio * (1u64 << 63) as f64) as u64
        };
        Sampling {
            sampler,
            threshold,
            ratio,
        }
    }

    fn by_ratio(&self, trace_id: TraceId) -> bool {
        self.threshold == u64::MAX || (trace_id.low_u64() >> 1) < self.threshold
    }

    /// Whether a span of `trace_id` is recorded, given the caller's
    /// decision (`parent`: `Some(sampled)` when a `traceparent` came in).
    pub fn decide(&self, trace_id: TraceId, parent: Option<bool>) -> bool {
        match (self.sampler, parent) {
            (Sampler::AlwaysOn, _) => true,
            (Sampler::AlwaysOff, _) => false,
            (Sampler::TraceIdRatio, _) => self.by_ratio(trace_id),
            (_, Some(sampled)) => sampled,
            (Sampler::ParentBasedAlwaysOn, None) => true,
            (Sampler::ParentBasedAlwaysOff, None) => false,
            (Sampler::ParentBasedTraceIdRatio, None) => self.by_ratio(trace_id),
        }
    }

    /// This request's span: the incoming trace continued (its span the
    /// parent), or a new trace.
    pub fn start(&self, incoming: Option<&TraceParent>) -> SpanContext {
        let trace_id = incoming.map_or_else(TraceId::random, |p| p.trace_id);
        SpanContext {
            trace_id,
            span_id: SpanId::random(),
            parent: incoming.map(|p| p.parent_id),
            sampled: self.decide(trace_id, incoming.map(TraceParent::sampled)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_decide_as_opentelemetry_specifies() {
        let t = TraceId::random();
        let on = Sampling::new(Sampler::ParentBasedAlwaysOn, 1.0);
        assert!(on.decide(t, None));
        assert!(!on.decide(t, Some(false)));
        assert!(Sampling::new(Sampler::AlwaysOn, 1.0).decide(t, Some(false)));
        assert!(!Sampling::new(Sampler::AlwaysOff, 1.0).decide(t, Some(true)));
        let none = Sampling::new(Sampler::ParentBasedTraceIdRatio, 0.0);
        assert!(!none.decide(t, None) && none.decide(t, Some(true)));
        let half = Sampling::new(Sampler::TraceIdRatio, 0.5);
        let kept = (0..20_000)
            .filter(|_| half.decide(TraceId::random(), Some(true)))
            .count();
        assert!(
            (9_000..11_000).contains(&kept),
            "{kept} of 20000 kept at 0.5"
        );
    }

    #[test]
    fn an_incoming_trace_is_continued_and_a_missing_one_started() {
        let s = Sampling::new(Sampler::ParentBasedAlwaysOn, 1.0);
        let p =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        let c = s.start(Some(&p));
        assert_eq!(c.trace_id, p.trace_id);
        assert_eq!(c.parent, Some(p.parent_id));
        assert_ne!(c.span_id, p.parent_id);
        assert!(!c.sampled, "the caller did not sample it");
        let n = s.start(None);
        assert!(n.parent.is_none() && n.sampled && n.trace_id != p.trace_id);
    }
}
