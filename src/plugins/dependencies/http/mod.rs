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
//!
//! This file holds the kind: its options and their checks, and the client
//! it starts, and [`HttpClient`]; `client.rs` holds how one call is sent.

mod client;

pub use client::{HttpRequest, HttpResponse};
use client::{HttpClientInner, RetryBudget};

use crate::manifest::{Diagnostics, HttpMethod, PromDuration, SecretRef};
use crate::model::dependencies::{
    CheckFuture, DependencyCtx, PreparedDependency, StartCtx, Started,
};
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use std::any::TypeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
// Defined here, not in client.rs, so that its type name (in `validate`'s
// messages) stays `telltale::plugins::dependencies::http::HttpClient`.
pub struct HttpClient(Arc<HttpClientInner>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_base_urls_are_taken() {
        assert!(check_url("http://payments:8003").is_ok());
        assert!(check_url("https://payments").is_err());
        assert!(check_url("ftp://payments").is_err());
        assert!(check_url("http://payments/?a=1").is_err());
    }
}
