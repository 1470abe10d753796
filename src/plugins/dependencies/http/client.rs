//! [`HttpClient`]'s calls (the client of an `http` dependency): building a request
//! ([`HttpRequest`]), sending it with a timeout, retries within a retry
//! budget and a bounded response read, and the call's span and metrics.

use super::super::{Call, DependencyError, Outcome};
use super::{HttpClient, BUDGET_FLOOR};
use crate::model::dependencies::Telemetry;
use crate::traces::span::Value;
use bytes::Bytes;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Retries allowed: each call saves `ratio` of one, each retry spends one;
/// never more than [`BUDGET_FLOOR`] plus what the ratio saved on the last
/// calls (in thousandths).
pub(super) struct RetryBudget {
    milli: AtomicI64,
    per_call: i64,
}

impl RetryBudget {
    pub(super) fn new(ratio: f64) -> RetryBudget {
        RetryBudget {
            milli: AtomicI64::new(BUDGET_FLOOR * 1000),
            per_call: (ratio * 1000.0) as i64,
        }
    }
    fn deposit(&self) {
        let cap = BUDGET_FLOOR * 1000 + self.per_call * 100;
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some((m + self.per_call).min(cap))
            });
    }
    fn withdraw(&self) -> bool {
        self.milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m >= 1000).then_some(m - 1000)
            })
            .is_ok()
    }
}

pub(super) struct HttpClientInner {
    pub(super) name: Arc<str>,
    /// The base URL, without a trailing `/`.
    pub(super) base: String,
    /// The base URL without credentials, for spans and messages.
    pub(super) shown: String,
    pub(super) address: String,
    pub(super) port: u16,
    pub(super) client: reqwest::Client,
    pub(super) headers: HeaderMap,
    pub(super) methods: Vec<Method>,
    pub(super) timeout: Duration,
    pub(super) retries: u32,
    pub(super) backoff: Duration,
    pub(super) budget: RetryBudget,
    pub(super) max_body: u64,
    pub(super) telemetry: Telemetry,
    pub(super) health_path: Option<String>,
}

impl HttpClientInner {
    pub(super) async fn check(&self) -> Result<(), String> {
        match &self.health_path {
            Some(p) => {
                let r = self
                    .client
                    .get(format!("{}{p}", self.base))
                    .timeout(self.timeout)
                    .send()
                    .await
                    .map_err(|e| describe(&e))?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{}{p} answered {}", self.shown, r.status()))
                }
            }
            None => tokio::net::TcpStream::connect((self.address.as_str(), self.port))
                .await
                .map(drop)
                .map_err(|e| format!("cannot connect to {}:{}: {e}", self.address, self.port)),
        }
    }
}

/// A reqwest error in words, without its URL (which may hold credentials).
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_body() || e.is_decode() {
        "the response could not be read".to_string()
    } else {
        "the exchange failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("dependency", &self.0.name)
            .field("base", &self.0.shown)
            .finish()
    }
}

impl HttpClient {
    /// A request of `method` to `path` (from `/`, appended to the base URL;
    /// it may carry a query).
    pub fn request(&self, method: Method, path: &str) -> HttpRequest {
        HttpRequest {
            client: self.clone(),
            method,
            path: path.to_string(),
            headers: HeaderMap::new(),
            body: None,
            error: None,
        }
    }
    /// A GET request.
    pub fn get(&self, path: &str) -> HttpRequest {
        self.request(Method::GET, path)
    }
    /// A POST request.
    pub fn post(&self, path: &str) -> HttpRequest {
        self.request(Method::POST, path)
    }
    /// A PUT request.
    pub fn put(&self, path: &str) -> HttpRequest {
        self.request(Method::PUT, path)
    }
    /// A DELETE request.
    pub fn delete(&self, path: &str) -> HttpRequest {
        self.request(Method::DELETE, path)
    }
    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

/// A request being built (`HttpClient::post`), sent by [`HttpRequest::send`].
pub struct HttpRequest {
    client: HttpClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Option<(Bytes, &'static str)>,
    error: Option<String>,
}

/// An answer (any status; a 5xx counts as outcome `error`), its body read
/// whole within `max_response_bytes`.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    dependency: Arc<str>,
}

impl HttpResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, DependencyError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            DependencyError::new(
                &self.dependency,
                Outcome::Error,
                format!("the response is not the JSON expected: {e}"),
            )
        })
    }
}

impl HttpRequest {
    /// Adds a header (an invalid one fails the call when it is sent).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.error = Some(format!("header {name:?} is not a valid header")),
        }
        self
    }
    /// A JSON body.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(b) => self.body = Some((b.into(), "application/json")),
            Err(e) => self.error = Some(format!("the body is not JSON: {e}")),
        }
        self
    }
    /// A body of this content type.
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &'static str) -> Self {
        self.body = Some((body.into(), content_type));
        self
    }

    /// Sends it: retried as the options allow, within the dependency's
    /// timeout, the response read whole. `Err` when no response came (or it
    /// could not be read); a 5xx is an `Ok` response counted as `error`.
    pub async fn send(self) -> Result<HttpResponse, DependencyError> {
        let inner = self.client.0.clone();
        let fail = |outcome, msg: String| DependencyError::new(&inner.name, outcome, msg);
        if let Some(e) = self.error {
            return Err(fail(Outcome::Error, e));
        }
        if !self.path.starts_with('/') {
            return Err(fail(
                Outcome::Error,
                format!("path {:?} must start with /", self.path),
            ));
        }
        let Some(op) = inner.methods.iter().position(|m| *m == self.method) else {
            return Err(fail(
                Outcome::Error,
                format!(
                    "method {} is not in options.methods of dependency {}",
                    self.method, inner.name
                ),
            ));
        };
        let url = format!("{}{}", inner.base, self.path);
        let mut call = Call::start(&inner.telemetry, op);
        if call.traced() {
            call.attribute(
                "http.request.method",
                Value::Str(self.method.as_str().into()),
            );
            call.attribute("server.address", Value::text(&inner.address));
            call.attribute("server.port", Value::Int(inner.port.into()));
            call.attribute("url.full", Value::text(&redacted(&inner.shown, &self.path)));
        }
        let mut headers = self.headers;
        for (k, v) in &inner.headers {
            headers.insert(k, v.clone());
        }
        if let Some(tp) = call.traceparent() {
            if let Ok(v) = HeaderValue::from_str(&tp) {
                headers.insert("traceparent", v);
            }
        }
        if let Some((_, ct)) = &self.body {
            headers.insert(
                poem::http::header::CONTENT_TYPE,
                HeaderValue::from_static(ct),
            );
        }
        let idempotent = matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        let deadline = call.started() + inner.timeout;
        inner.budget.deposit();
        let mut attempt: u32 = 0;
        loop {
            // The last attempt takes the headers; earlier ones copy them.
            let h = if attempt < inner.retries {
                headers.clone()
            } else {
                std::mem::take(&mut headers)
            };
            let mut rb = inner.client.request(self.method.clone(), &url).headers(h);
            if let Some((b, _)) = &self.body {
                rb = rb.body(b.clone());
            }
            let result = attempt_within(&inner, rb, deadline, idempotent).await;
            let retry = match &result {
                Ok(r) => r.0.is_server_error() && idempotent,
                Err((_, _, retryable)) => *retryable,
            };
            if retry && attempt < inner.retries {
                let wait = backoff(inner.backoff, attempt);
                if Instant::now() + wait < deadline && inner.budget.withdraw() {
                    attempt += 1;
                    inner.telemetry.retried();
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            if attempt > 0 {
                call.attribute("http.request.resend_count", Value::Int(attempt.into()));
            }
            return finish(call, &inner, self.method.as_str(), result);
        }
    }
}

/// What one attempt came to: the response, or why there was none (with
/// whether it may be retried).
type Attempt = Result<(StatusCode, HeaderMap, Bytes), (Outcome, String, bool)>;

/// One attempt of `rb`, ended at `deadline`.
async fn attempt_within(
    inner: &HttpClientInner,
    rb: reqwest::RequestBuilder,
    deadline: Instant,
    idempotent: bool,
) -> Attempt {
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(remaining, exchange(rb, inner.max_body)).await {
        Err(_) => Err((
            Outcome::Timeout,
            format!("no answer within {:?}", inner.timeout),
            false,
        )),
        Ok(Err(e)) if e.is_connect() => Err((Outcome::Refused, describe(&e), true)),
        Ok(Err(e)) if e.is_timeout() => Err((Outcome::Timeout, describe(&e), false)),
        Ok(Err(e)) => Err((Outcome::Error, describe(&e), idempotent)),
        Ok(Ok(Err(too_long))) => Err((Outcome::Error, too_long, false)),
        Ok(Ok(Ok(r))) => Ok(r),
    }
}

/// Ends `call` (operation `name`) with the last attempt's `result`: the
/// response, or the call's error.
fn finish(
    mut call: Call,
    inner: &HttpClientInner,
    name: &str,
    result: Attempt,
) -> Result<HttpResponse, DependencyError> {
    match result {
        Ok((status, headers, body)) => {
            call.attribute(
                "http.response.status_code",
                Value::Int(status.as_u16().into()),
            );
            if status.is_server_error() {
                call.attribute("error.type", Value::Str(status.as_str().into()));
                call.finish(
                    name,
                    Outcome::Error,
                    Some(format!("{} answered {status}", inner.name)),
                );
            } else {
                call.finish(name, Outcome::Ok, None);
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
                dependency: inner.name.clone(),
            })
        }
        Err((outcome, message, _)) => {
            call.finish(name, outcome, Some(message.clone()));
            Err(DependencyError::new(&inner.name, outcome, message))
        }
    }
}

/// One attempt: the status, headers and body (read within `max` bytes;
/// the inner `Err` when it is longer).
async fn exchange(
    rb: reqwest::RequestBuilder,
    max: u64,
) -> Result<Result<(StatusCode, HeaderMap, Bytes), String>, reqwest::Error> {
    let mut r = rb.send().await?;
    let status = r.status();
    let headers = std::mem::take(r.headers_mut());
    match r.content_length() {
        Some(n) if n > max => return Ok(Err(format!("the response is over {max} bytes"))),
        // HTTP/1.1 framing reads exactly Content-Length bytes: the bound holds.
        Some(_) => return Ok(Ok((status, headers, r.bytes().await?))),
        None => {}
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = r.chunk().await? {
        if (body.len() + chunk.len()) as u64 > max {
            return Ok(Err(format!("the response is over {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok((status, headers, body.freeze())))
}

/// The wait before retry `attempt` (0-based): `base` × 2^attempt, capped
/// at 10 s, with equal jitter (half fixed, half random).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(10));
    let half = full / 2;
    let jitter = crate::traces::ids::next() % (half.as_micros() as u64 + 1);
    half + Duration::from_micros(jitter)
}

/// `url.full` as a span may show it: the base without credentials, the
/// path, and each query value replaced by `REDACTED`.
fn redacted(base: &str, path: &str) -> String {
    let (p, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut out = format!("{base}{p}");
    if let Some(q) = query {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) => format!("{k}=REDACTED"),
                None => kv.to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_never_reach_a_span() {
        assert_eq!(
            redacted("http://pay:8003", "/payments?token=s3cret&x"),
            "http://pay:8003/payments?token=REDACTED&x"
        );
        assert_eq!(redacted("http://pay:8003", "/a"), "http://pay:8003/a");
    }

    #[test]
    fn the_budget_allows_ten_retries_then_its_share() {
        let b = RetryBudget::new(0.1);
        assert!((0..10).all(|_| b.withdraw()));
        assert!(!b.withdraw());
        for _ in 0..10 {
            b.deposit();
        }
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 0..4 {
            let w = backoff(base, attempt);
            let full = base * (1 << attempt);
            assert!(w >= full / 2 && w <= full, "{w:?} for attempt {attempt}");
        }
        assert!(backoff(base, 30) <= Duration::from_secs(10));
    }
}
