//! The one middleware: request id, request log context, metrics, the
//! request line (`logging::RequestLine`) and JSON errors for everything the routes did not answer.

use super::error::json_error;
use super::http_metrics::method_index;
use super::routes::error_response;
use super::Runtime;
use crate::logging::request::{self, RequestFields, RequestId, RequestScope};
use crate::logging::RequestLine;
use crate::traces::span::{self, SpanRecord};
use crate::traces::{SpanContext, TraceParent};
use poem::http::{header, HeaderName, StatusCode};
use poem::{Endpoint, Request, Response, Result};
use std::sync::Arc;
use std::time::Instant;

/// A constant name: inserting a `&str` name parses and allocates it per request.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The request's server span, when it is recorded: what it needs of the
/// request, copied before the request moves into the handler (short texts
/// inline: see `span::Text`); the rest is filled in by [`finish`]. This
/// one box is what goes to the exporter.
fn server_span(req: &Request, s: SpanContext) -> Box<SpanRecord> {
    let headers = req.headers();
    let text = |name| headers.get(name).and_then(span::header_text);
    Box::new(SpanRecord {
        trace_id: s.trace_id,
        span_id: s.span_id,
        parent: s.parent,
        trace_state: headers
            .get(TRACESTATE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| crate::traces::ids::valid_tracestate(v))
            .map(Box::from),
        start_ns: span::now_ns(),
        end_ns: 0,
        body: span::Body::Server(span::Http {
            method: Some(req.method().clone()),
            route: None,
            status: 0,
            path: span::cut(req.uri().path(), span::MAX_VALUE).into(),
            scheme: if req.uri().scheme_str() == Some("https") {
                "https"
            } else {
                "http"
            },
            host: text(header::HOST),
            port: req
                .local_addr()
                .as_socket_addr()
                .map_or(0, std::net::SocketAddr::port),
            user_agent: text(header::USER_AGENT),
        }),
        events: span::Events::default(),
        error: None,
    })
}

/// Completes a span [`server_span`] started, once the response is known.
fn finish(
    r: &mut SpanRecord,
    s: SpanContext,
    route: Option<&'static str>,
    status: u16,
    events: span::Events,
) {
    r.trace_id = s.trace_id;
    r.span_id = s.span_id;
    r.parent = s.parent;
    // The wall clock, as its child spans' ends are read: a child that
    // ended before the response never ends after its parent.
    r.end_ns = span::now_ns().max(r.start_ns);
    if let span::Body::Server(h) = &mut r.body {
        h.route = route;
        h.status = status;
    }
    r.events = events;
    r.error = (status >= 500).then(|| format!("HTTP {status}").into());
}

pub struct Observe<E> {
    inner: E,
    rt: Arc<Runtime>,
    body_limit: u64,
}

impl<E> Observe<E> {
    pub fn new(inner: E, rt: Arc<Runtime>, body_limit: u64) -> Self {
        Observe {
            inner,
            rt,
            body_limit,
        }
    }
}

impl<E: Endpoint<Output = Response>> Endpoint for Observe<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let start = Instant::now();
        let rid = req
            .headers()
            .get(REQUEST_ID)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        let method = method_index(req.method());
        let fields = request::wanted()
            .then(|| RequestFields::new(&rid, req.method().clone(), req.uri().path()));
        let ctx = RequestScope::with_id(rid, fields);
        // The request's span, continuing the caller's trace; what only a
        // recorded span needs is copied out of the request only when it is.
        // Only a box lives across the handler's await (poem copies this
        // future into a box per request: see the future-size test).
        let mut traced: Option<Box<SpanRecord>> = None;
        let ctx = match crate::traces::tracer() {
            Some(t) => {
                let incoming = req
                    .headers()
                    .get(TRACEPARENT)
                    .and_then(|v| v.to_str().ok())
                    .and_then(TraceParent::parse);
                let span = t.start(incoming.as_ref());
                if span.sampled {
                    traced = Some(server_span(&req, span));
                }
                ctx.in_span(span)
            }
            None => ctx,
        };
        let too_big = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.body_limit);
        let (mut resp, mut ctx) = if too_big {
            let resp = json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "request body exceeds the limit of {} bytes",
                    self.body_limit
                ),
            );
            (resp, ctx)
        } else {
            // Pinned here, in this future's own state (see `request::scoped`).
            let mut fut = std::pin::pin!(request::scoped(ctx, self.inner.call(req)));
            let result = fut.as_mut().await;
            (
                result.unwrap_or_else(error_response),
                request::take_back(fut),
            )
        };
        let route = ctx.route().unwrap_or_else(|| self.rt.http.unmatched());
        let status = resp.status().as_u16();
        let elapsed = start.elapsed();
        self.rt.http.observe(
            route,
            method,
            status,
            elapsed.as_secs_f64(),
            ctx.span().filter(|s| s.sampled),
        );
        if let Some(rid) = ctx.take_id() {
            resp.headers_mut().insert(REQUEST_ID, rid.into_header());
        }
        let caller = ctx.caller().filter(|_| request::caller_logged());
        let span = ctx.span();
        if let (Some(t), Some(s), Some(mut traced)) = (crate::traces::tracer(), span, traced) {
            let template = ctx.route().map(|r| self.rt.http.template(r));
            finish(&mut traced, s, template, status, ctx.take_events());
            t.submit_boxed(traced);
        }
        if let Some(fields) = ctx.into_fields() {
            RequestLine {
                fields,
                status,
                duration_us: (elapsed.as_secs_f64() * 1e6).round() as u64,
                route: self.rt.http.template(route),
                caller,
                trace: span.map(|s| (s.trace_id, s.span_id)),
            }
            .log();
        }
        Ok(resp)
    }
}
