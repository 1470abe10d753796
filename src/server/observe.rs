//! The one middleware: request id, request log context, metrics, the
//! request line (`logging::RequestLine`) and JSON errors for everything the routes did not answer.

use super::error::json_error;
use super::http_metrics::method_index;
use super::routes::error_response;
use super::Runtime;
use crate::logging::request::{self, Context, RequestFields, RequestId};
use crate::logging::RequestLine;
use poem::http::{header, HeaderName, StatusCode};
use poem::{Endpoint, Request, Response, Result};
use std::sync::Arc;
use std::time::Instant;

/// A constant name: inserting a `&str` name parses and allocates it per request.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        if let Some(fields) = ctx.into_fields() {
            RequestLine {
                fields,
                status,
                duration_us: (elapsed.as_secs_f64() * 1e6).round() as u64,
                route: self.rt.http.template(route),
                caller,
            }
            .log();
        }
        Ok(resp)
    }
}
