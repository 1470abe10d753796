//! The one middleware: request id, request log context, metrics, the
//! request line (`logging::RequestLine`) and JSON errors for everything the routes did not answer.

use super::error::json_error;
use super::http_metrics::method_index;
use super::routes::error_response;
use super::Runtime;
use crate::logging::request::{self, Context, RequestFields, RequestId};
use crate::logging::RequestLine;
use crate::traces::span::{self, SpanRecord};
use crate::traces::{SpanContext, TraceParent};
use poem::http::{header, HeaderName, HeaderValue, StatusCode};
use poem::{Endpoint, Request, Response, Result};
use std::sync::Arc;
use std::time::Instant;

/// A constant name: inserting a `&str` name parses and allocates it per request.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// What a recorded server span needs of its request, copied before the
/// request moves into the handler.
struct Traced {
    start_ns: u64,
    method: poem::http::Method,
    path: Box<str>,
    scheme: &'static str,
    host: Option<Box<str>>,
    port: u16,
    user_agent: Option<Box<str>>,
    trace_state: Option<HeaderValue>,
}

impl Traced {
    fn of(req: &Request) -> Traced {
        let headers = req.headers();
        let text = |name| headers.get(name).and_then(span::header_text);
        Traced {
            start_ns: crate::traces::span::now_ns(),
            method: req.method().clone(),
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
            trace_state: headers
                .get(TRACESTATE)
                .filter(|v| v.to_str().is_ok_and(crate::traces::ids::valid_tracestate))
                .cloned(),
        }
    }

    fn finish(
        self,
        s: SpanContext,
        route: Option<&'static str>,
        status: u16,
        events: span::Events,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent: s.parent,
            trace_state: self.trace_state,
            start_ns: self.start_ns,
            // The wall clock, as its child spans' ends are read: a child
            // that ended before the response never ends after its parent.
            end_ns: crate::traces::span::now_ns().max(self.start_ns),
            body: span::Body::Server(Box::new(span::Http {
                method: Some(self.method),
                route,
                status,
                path: self.path,
                scheme: self.scheme,
                host: self.host,
                port: self.port,
                user_agent: self.user_agent,
            })),
            events,
            error: (status >= 500).then(|| format!("HTTP {status}").into()),
        }
    }
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
        let ctx = Context::with_id(rid, fields);
        // The request's span, continuing the caller's trace; what only a
        // recorded span needs is copied out of the request only when it is.
        // Only a box lives across the handler's await (poem copies this
        // future into a box per request: see the future-size test).
        let mut traced: Option<Box<Traced>> = None;
        let ctx = match crate::traces::tracer() {
            Some(t) => {
                let incoming = req
                    .headers()
                    .get(TRACEPARENT)
                    .and_then(|v| v.to_str().ok())
                    .and_then(TraceParent::parse);
                let span = t.start(incoming.as_ref());
                if span.sampled {
                    traced = Some(Box::new(Traced::of(&req)));
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
        if let (Some(t), Some(s), Some(traced)) = (crate::traces::tracer(), span, traced) {
            let template = ctx.route().map(|r| self.rt.http.template(r));
            t.submit(traced.finish(s, template, status, ctx.take_events()));
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
