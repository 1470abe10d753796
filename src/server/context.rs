//! What a handler may know of its request besides its typed input: the
//! headers, the request id, the incoming W3C trace context and the caller
//! that authentication established.

use super::auth::Caller;

/// The current request's caller, from inside the request (middleware, a
/// handler kind of its own): `None` on an open route or outside a request.
pub fn current_caller() -> Option<Caller> {
    crate::logging::request::current_caller()
}
use crate::logging::request::RequestId;
use crate::traces::{SpanContext, TraceParent};
use poem::http::HeaderMap;
use poem::web::headers::{Header, HeaderMapExt};

/// One request's context (`Input::request`).
#[derive(Debug, Default)]
pub struct RequestContext {
    headers: HeaderMap,
    id: Option<RequestId>,
    /// Boxed: most requests have none, and this context is moved into the
    /// handler's future (a caller is about 170 bytes).
    caller: Option<Box<Caller>>,
    /// The incoming `traceparent`, parsed when first asked for (most
    /// handlers never ask).
    trace: std::sync::OnceLock<Option<TraceContext>>,
    span: Option<SpanContext>,
}

impl RequestContext {
    /// The context of a request with these headers, inside the request
    /// (the id and the caller come from where the server put them).
    pub fn new(headers: HeaderMap) -> RequestContext {
        let (id, caller, span) = crate::logging::request::current_parts();
        RequestContext {
            id,
            headers,
            caller,
            trace: std::sync::OnceLock::new(),
            span,
        }
    }

    /// Every header of the request.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The header `name` as text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// A typed header (`poem::web::headers::UserAgent`, ...), `None` if
    /// absent or malformed.
    pub fn typed_header<H: Header>(&self) -> Option<H> {
        self.headers.typed_get::<H>()
    }

    /// The request id (`x-request-id`, the incoming one or a generated one),
    /// as the response header and every log line of the request carry it.
    pub fn request_id(&self) -> &str {
        self.id.as_ref().map_or("", RequestId::as_str)
    }

    /// Who called, when the endpoint requires authentication.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_deref()
    }

    /// The incoming W3C trace context (`traceparent`), if the caller sent a
    /// valid one.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace
            .get_or_init(|| TraceContext::from_headers(&self.headers))
            .as_ref()
    }

    /// This request's own span (`None` while tracing is off): its ids, and
    /// the `traceparent` to send on a call to another service.
    pub fn span(&self) -> Option<RequestSpan> {
        self.span.map(RequestSpan)
    }
}

/// A W3C Trace Context `traceparent`: the trace and the parent span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext(TraceParent);

impl TraceContext {
    /// The `traceparent` of `headers`, if valid (version `00`, or a later
    /// version read as `00` as the spec asks; ids not all zero).
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        TraceContext::parse(headers.get("traceparent")?.to_str().ok()?)
    }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`.
    pub fn parse(s: &str) -> Option<TraceContext> {
        TraceParent::parse(s).map(TraceContext)
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        self.0.trace_id.hex().to_string()
    }

    /// The caller's span id (this request's parent), 16 hex digits.
    pub fn parent_id(&self) -> String {
        self.0.parent_id.hex().to_string()
    }

    /// Whether the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.0.sampled()
    }
}

/// This request's own span, when tracing is on: what a call to another
/// service passes on (`traceparent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpan(SpanContext);

impl RequestSpan {
    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        self.0.trace_id.hex().to_string()
    }

    /// This request's span id, 16 hex digits.
    pub fn span_id(&self) -> String {
        self.0.span_id.hex().to_string()
    }

    /// Whether this span is recorded (exported).
    pub fn sampled(&self) -> bool {
        self.0.sampled
    }

    /// The `traceparent` header value for an outgoing call made on behalf
    /// of this request: the callee's span becomes this span's child.
    pub fn traceparent(&self) -> String {
        crate::traces::ids::traceparent(self.0.trace_id, self.0.span_id, self.0.sampled)
    }
}
