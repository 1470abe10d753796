//! Dependency kinds: the clients a service's handlers call other services
//! and databases with, each call timed, counted and traced.
//!
//! - [`http`]: `kind: http`, an HTTP client with a base URL, a timeout,
//!   retries with backoff and a retry budget ([`HttpClient`]).
//! - [`sql`]: `kind: postgres` and `kind: sqlite`, a pool of `sqlx`
//!   connections ([`Sql`]).
//!
//! Every call goes through [`Call`]: one client span (a child of the
//! request's span), the in-flight gauge while it runs, and one observation
//! of `telltale_dependency_request_duration_seconds` under closed labels.

pub mod http;
pub mod sql;

pub use crate::model::dependencies::{DependencyKind, Outcome};
pub use http::{HttpClient, HttpRequest, HttpResponse};
pub use sql::{Sql, SqlOperation};

use crate::model::dependencies::Telemetry;
use crate::traces::span::{now_ns, Body, Events, SpanRecord, Value};
use crate::traces::{SpanContext, SpanId};
use std::sync::Arc;
use std::time::Instant;

/// The built-in kinds: `http`, `postgres`, `sqlite`.
pub fn builtin() -> Vec<Arc<dyn DependencyKind>> {
    vec![
        Arc::new(http::HttpDependency),
        Arc::new(sql::SqlDependency::Postgres),
        Arc::new(sql::SqlDependency::Sqlite),
    ]
}

/// A failed call to a dependency: which one, how it failed, and why
/// (never a secret: no URL with credentials, no statement's values).
#[derive(Debug, Clone)]
pub struct DependencyError {
    dependency: Arc<str>,
    outcome: Outcome,
    message: String,
}

impl DependencyError {
    pub(crate) fn new(dependency: &Arc<str>, outcome: Outcome, message: impl Into<String>) -> Self {
        DependencyError {
            dependency: dependency.clone(),
            outcome,
            message: message.into(),
        }
    }
    /// The dependency's name.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }
    /// How it failed: `error`, `timeout` or `refused`.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// Why.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for DependencyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dependency {} ({}): {}",
            self.dependency,
            self.outcome.as_str(),
            self.message
        )
    }
}

impl std::error::Error for DependencyError {}

/// One call under way: its span, its start, its in-flight count.
pub(crate) struct Call<'a> {
    telemetry: &'a Telemetry,
    op: usize,
    started: Instant,
    span: Option<(SpanContext, SpanId, u64)>,
    attributes: Vec<(&'static str, Value)>,
}

impl<'a> Call<'a> {
    /// Starts a call of operation `op` (an index into the dependency's
    /// operations): a client span when the request is sampled.
    pub fn start(telemetry: &'a Telemetry, op: usize) -> Call<'a> {
        telemetry.in_flight.inc();
        let span = crate::logging::spans::current_parent()
            .map(|parent| (parent, SpanId::random(), now_ns()));
        Call {
            telemetry,
            op,
            started: Instant::now(),
            span,
            attributes: Vec::new(),
        }
    }

    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether the call is recorded as a span: build its attributes only
    /// then.
    pub fn traced(&self) -> bool {
        self.span.as_ref().is_some_and(|(p, _, _)| p.sampled)
    }

    /// Adds a span attribute (a no-op when the call is not traced).
    pub fn attribute(&mut self, key: &'static str, value: Value) {
        if self.traced() {
            self.attributes.push((key, value));
        }
    }

    /// The `traceparent` to send on: the callee's span becomes this call's
    /// child (or, unsampled, the trace goes on unrecorded). `None` with
    /// tracing off or outside a request.
    pub fn traceparent(&self) -> Option<String> {
        let (parent, id, _) = self.span.as_ref()?;
        let span = if parent.sampled { *id } else { parent.span_id };
        Some(crate::traces::ids::traceparent(
            parent.trace_id,
            span,
            parent.sampled,
        ))
    }

    /// Ends the call: the span named `name` (status Error with `error`),
    /// the duration under `outcome`.
    pub fn finish(mut self, name: &str, outcome: Outcome, error: Option<String>) {
        self.telemetry
            .observe(self.op, outcome, self.started.elapsed());
        let Some((parent, span_id, start_ns)) = self.span.take() else {
            return;
        };
        if !parent.sampled {
            return;
        }
        let mut attributes = std::mem::take(&mut self.attributes);
        if error.is_some() && !attributes.iter().any(|(k, _)| *k == "error.type") {
            attributes.push(("error.type", Value::Str(outcome.as_str().into())));
        }
        if let Some(t) = crate::traces::tracer() {
            t.submit(SpanRecord {
                trace_id: parent.trace_id,
                span_id,
                parent: Some(parent.span_id),
                trace_state: None,
                start_ns,
                end_ns: now_ns(),
                body: Body::Client {
                    name: crate::traces::span::cut(name, 256).into(),
                    attributes,
                },
                events: Events::default(),
                error: error.map(|e| crate::traces::span::cut(&e, 1024).into()),
            });
        }
    }
}

/// A call ends (finished, or dropped with its request): no longer in flight.
impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.telemetry.in_flight.dec();
    }
}
