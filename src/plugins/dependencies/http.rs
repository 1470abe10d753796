//! `kind: http`: another service, called through [`HttpClient`]: a base
//! URL, a timeout for the whole call, retries with backoff within a retry
//! budget, and a bounded response read. Each call sends the request's
//! `traceparent` (the callee's span becomes the call's child) and is one
//! client span with OpenTelemetry's HTTP client attributes.
//!
//! ```yaml
//! dependencies:
//!   - name: payments
//!     kind: http
//!     url: http://127.0.0.1:8003      # overridden by PAYMENTS_URL when set
//!     url_from: { env: PAYMENTS_URL }
//!     timeout: 2s
//!     options: { retries: 2, backoff: 50ms, retry_budget: 0.1, health_path: /health }
//! ```

use super::{Call, DependencyError, Outcome};
use crate::manifest::{Diagnostics, HttpMethod, PromDuration, SecretRef};
use crate::model::dependencies::{
    CheckFuture, DependencyCtx, PreparedDependency, StartCtx, Started, Telemetry,
};
use crate::traces::span::Value;
use bytes::Bytes;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use std::any::TypeId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The kind.
pub struct HttpDependency;

/// The largest `max_response_bytes`.
const MAX_RESPONSE_LIMIT: u64 = 256 << 20;
/// The most retries one call may make.
const MAX_RETRIES: u32 = 10;
/// Retries the budget allows before any call has been made (and at most
/// what it saves up).
const BUDGET_FLOOR: i64 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Options {
    /// Attempts sent again after a refused connection (any method) or a
    /// 5xx or a failed exchange (idempotent methods only).
    retries: u32,
    /// The first retry's wait; each next one doubles it (with jitter).
    backoff: PromDuration,
    /// The share of calls that may be retried, beyond 10 saved up: a
    /// callee in trouble gets at most that much extra traffic.
    retry_budget: f64,
    /// A path answered 2xx while the callee is healthy (its `/ready`);
    /// unset: the background check only opens a connection.
    health_path: Option<String>,
    /// The largest response body read; a longer one fails the call.
    max_response_bytes: u64,
    /// The methods handlers call it with (the `operation` label's values).
    methods: Vec<HttpMethod>,
    /// Headers sent with every call, by reference (`{env: VAR}`).
    headers: BTreeMap<String, SecretRef>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retries: 2,
            backoff: PromDuration::from_millis(50),
            retry_budget: 0.1,
            health_path: None,
            max_response_bytes: 1 << 20,
            methods: vec![
                HttpMethod::Get,
                HttpMethod::Post,
                HttpMethod::Put,
                HttpMethod::Patch,
                HttpMethod::Delete,
            ],
            headers: BTreeMap::new(),
        }
    }
}

struct PreparedHttpDependency {
    options: Options,
}

/// Checks that `u` is an http URL without query or fragment.
fn check_url(u: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(u).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" => {}
        "https" => return Err(
            "https is not supported by this build's client (no TLS): use http, or a TLS sidecar"
                .into(),
        ),
        s => {
            return Err(format!(
                "scheme {s:?}: an http dependency's URL is http://host[:port][/base]"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{u:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{u:?}: a base URL has no query or fragment"));
    }
    Ok(url)
}

impl crate::model::dependencies::DependencyKind for HttpDependency {
    fn name(&self) -> &'static str {
        "http"
    }

    fn prepare(&self, ctx: &DependencyCtx<'_>) -> Result<Arc<dyn PreparedDependency>, Diagnostics> {
        let d = ctx.dependency;
        let options: Options = ctx.options()?;
        let mut errs = Diagnostics::default();
        match (&d.url, &d.url_from) {
            (None, None) => {
                errs.extend(ctx.error("url", "an http dependency needs `url` or `url_from`"))
            }
            (Some(u), _) => {
                if let Err(e) = check_url(u) {
                    errs.extend(ctx.error("url", e));
                }
            }
            _ => {}
        }
        if options.retries > MAX_RETRIES {
            errs.extend(ctx.error("options.retries", format!("at most {MAX_RETRIES}")));
        }
        if !(0.0..=1.0).contains(&options.retry_budget) {
            errs.extend(ctx.error("options.retry_budget", "a share from 0 to 1"));
        }
        let backoff = options.backoff.get();
        if backoff.is_zero() || backoff > Duration::from_secs(10) {
            errs.extend(ctx.error("options.backoff", "must be more than 0s and at most 10s"));
        }
        if let Some(p) = &options.health_path {
            if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
                errs.extend(ctx.error("options.health_path", "a path such as /health (no query)"));
            }
        }
        if !(1..=MAX_RESPONSE_LIMIT).contains(&options.max_response_bytes) {
            errs.extend(ctx.error(
                "options.max_response_bytes",
                format!("from 1 to {MAX_RESPONSE_LIMIT}"),
            ));
        }
        if options.methods.is_empty() {
            errs.extend(ctx.error("options.methods", "list at least one method"));
        }
        for (name, r) in &options.headers {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                errs.extend(ctx.error(
                    &format!("options.headers.{name}"),
                    format!("{name:?} is not an HTTP header name"),
                ));
            }
            if let SecretRef::Env(v) = r {
                if !crate::manifest::auth::is_env_name(v) {
                    errs.extend(ctx.error(
                        &format!("options.headers.{name}.env"),
                        format!("{v:?} is not an environment variable name"),
                    ));
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Arc::new(PreparedHttpDependency { options }))
    }
}

impl PreparedDependency for PreparedHttpDependency {
    fn system(&self) -> &'static str {
        "http"
    }

    fn operations(&self) -> Vec<String> {
        self.options
            .methods
            .iter()
            .map(|m| m.as_str().to_string())
            .collect()
    }

    fn client_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<HttpClient>(), "telltale::HttpClient")
    }

    /// Each header given by an environment variable, under the Secret key
    /// `<dependency>-<header>`.
    fn secret_env(&self, d: &crate::manifest::dependencies::Dependency) -> Vec<(String, String)> {
        self.options
            .headers
            .iter()
            .filter_map(|(h, r)| match r {
                SecretRef::Env(var) => {
                    let key: String = h
                        .to_ascii_lowercase()
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '.' {
                                c
                            } else {
                                '-'
                            }
                        })
                        .collect();
                    Some((var.clone(), format!("{}-{key}", d.name)))
                }
                SecretRef::File(_) => None,
            })
            .collect()
    }

    fn start(&self, ctx: StartCtx<'_>) -> Result<Started, String> {
        let d = ctx.dependency;
        let target = ctx.target.ok_or_else(|| {
            format!(
                "{} and there is no `url`",
                crate::model::dependencies::missing(d)
            )
        })?;
        let base = check_url(&target)?;
        let mut headers = HeaderMap::new();
        for (name, r) in &self.options.headers {
            let (value, shown) = r.read(ctx.base_dir)?;
            let mut v = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("{shown} is not a header value"))?;
            v.set_sensitive(true);
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?,
                v,
            );
        }
        let client = reqwest::Client::builder()
            .connect_timeout(d.connect_timeout.get())
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut shown = base.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        let address = base.host_str().unwrap_or_default().to_string();
        let port = base.port_or_known_default().unwrap_or(80);
        let methods: Vec<Method> = self.options.methods.iter().map(|m| m.to_http()).collect();
        let inner = Arc::new(HttpClientInner {
            name: d.name.as_str().into(),
            base: base.as_str().trim_end_matches('/').to_string(),
            shown: shown.as_str().trim_end_matches('/').to_string(),
            address,
            port,
            client,
            headers,
            methods,
            timeout: d.timeout.get(),
            retries: self.options.retries,
            backoff: self.options.backoff.get(),
            budget: RetryBudget::new(self.options.retry_budget),
            max_body: self.options.max_response_bytes,
            telemetry: ctx.telemetry,
            health_path: self.options.health_path.clone(),
        });
        let checked = inner.clone();
        Ok(Started {
            client: Arc::new(HttpClient(inner.clone())),
            check: Arc::new(move || -> CheckFuture {
                let c = checked.clone();
                Box::pin(async move { c.check().await })
            }),
            pool: None,
            shown: inner.shown.clone(),
        })
    }
}

/// Retries allowed: each call saves `ratio` of one, each retry spends one;
/// never more than [`BUDGET_FLOOR`] plus what the ratio saved on the last
/// calls (in thousandths).
struct RetryBudget {
    milli: AtomicI64,
    per_call: i64,
}

impl RetryBudget {
    fn new(ratio: f64) -> RetryBudget {
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

struct HttpClientInner {
    name: Arc<str>,
    /// The base URL, without a trailing `/`.
    base: String,
    /// The base URL without credentials, for spans and messages.
    shown: String,
    address: String,
    port: u16,
    client: reqwest::Client,
    headers: HeaderMap,
    methods: Vec<Method>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    budget: RetryBudget,
    max_body: u64,
    telemetry: Telemetry,
    health_path: Option<String>,
}

impl HttpClientInner {
    async fn check(&self) -> Result<(), String> {
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

/// The client of an `http` dependency (`Setup::http`): cheap to clone.
/// Each call is counted, timed and traced under the dependency's name.
///
/// ```
/// use telltale::{DependencyError, HttpClient};
///
/// /// Asks the payments service to authorize `euros`; its status.
/// async fn authorize(payments: &HttpClient, euros: f64) -> Result<u16, DependencyError> {
///     let answer = payments
///         .post("/payments")
///         .header("x-caller", "shop")
///         .json(&serde_json::json!({ "amount_euros": euros }))
///         .send()
///         .await?;
///     Ok(answer.status().as_u16())
/// }
/// ```
#[derive(Clone)]
pub struct HttpClient(Arc<HttpClientInner>);

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
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(remaining, exchange(rb, inner.max_body)).await {
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
            };
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
            let name = self.method.as_str();
            return match result {
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
                    Err(fail(outcome, message))
                }
            };
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

    #[test]
    fn only_plain_http_base_urls_are_taken() {
        assert!(check_url("http://payments:8003").is_ok());
        assert!(check_url("https://payments").is_err());
        assert!(check_url("ftp://payments").is_err());
        assert!(check_url("http://payments/?a=1").is_err());
    }
}
