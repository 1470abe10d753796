//! The exporter's settings: the manifest's `tracing:` section, overridden
//! by the standard OpenTelemetry environment variables, read once when the
//! server starts. A variable that is set but cannot be used is an error
//! that names it (never a silent fall-back to the manifest or a default).

use super::Sampling;
use crate::manifest::traces::{Sampler, Tracing};
use poem::http::{HeaderName, HeaderValue};
use std::path::Path;
use std::time::Duration;

/// The protocol telltale exports with (`OTEL_EXPORTER_OTLP_PROTOCOL`).
pub const PROTOCOL: &str = "http/protobuf";

/// Everything the exporter needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The traces URL (`…/v1/traces`).
    pub url: reqwest::Url,
    /// Sent with every export; values are secrets, never logged.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub sampling: Sampling,
    /// `service.name`, `service.version`, `service.instance.id`, then the
    /// rest, each key once.
    pub resource: Vec<(String, String)>,
    pub queue: usize,
    pub batch: usize,
    pub delay: Duration,
    pub timeout: Duration,
}

/// Who the spans come from.
pub struct TracedService<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub instance: &'a str,
}

/// An `http://` URL for spans (`https://` needs TLS, which this build does
/// not carry: export to a collector on the same host or network, such as
/// Alloy or the OpenTelemetry Collector, which forwards over TLS).
fn parse_url(text: &str, what: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("{what}: {text:?}: {e}"))?;
    match url.scheme() {
        "http" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        "https" => Err(format!(
            "{what}: {text:?}: https is not supported by this build (no TLS); send spans over http to a local collector (Alloy, the OpenTelemetry Collector) that forwards them over TLS"
        )),
        _ => Err(format!("{what}: {text:?} is not an http:// URL with a host")),
    }
}

/// `base` + `v1/traces`, as the spec appends it to
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(mut base: reqwest::Url) -> reqwest::Url {
    let path = base.path().trim_end_matches('/').to_string();
    base.set_path(&format!("{path}/v1/traces"));
    base
}

/// Percent-decodes `s` (W3C Baggage octets, as OTEL_RESOURCE_ATTRIBUTES
/// and OTEL_EXPORTER_OTLP_HEADERS are written).
///
/// `percent_encoding` passes a malformed escape (`%zz`, `100%`) through;
/// the SDKs' decoders refuse it, and so does this.
fn percent_decode(s: &str) -> Option<String> {
    let well_formed = s.split('%').skip(1).all(|p| {
        p.as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    well_formed.then(|| decoded.into_owned())
}

/// `k1=v1,k2=v2` (values percent-encoded), as the `OTEL_*` list variables
/// are written. Empty members are skipped.
fn key_values(var: &str, text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (k, v) = member
            .split_once('=')
            .ok_or_else(|| format!("{var}: {:?} is not key=value", cut(member)))?;
        let (k, v) = (k.trim(), v.trim());
        let v = percent_decode(v)
            .ok_or_else(|| format!("{var}: the value of {k:?} has a bad percent-escape"))?;
        if k.is_empty() {
            return Err(format!("{var}: a member has an empty key"));
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn cut(s: &str) -> &str {
    super::span::cut(s, 80)
}

/// Milliseconds, as the `OTEL_*_TIMEOUT` and `OTEL_BSP_*` variables hold them.
fn millis(var: &str, text: &str, min: u64, max: u64) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Duration::from_millis(n)),
        _ => Err(format!(
            "{var}={:?} must be a whole number of milliseconds from {min} to {max}",
            cut(text)
        )),
    }
}

fn count(var: &str, text: &str, max: usize) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{var}={:?} must be a count from 1 to {max}",
            cut(text)
        )),
    }
}

fn boolean(var: &str, text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(format!("{var}={:?} must be true or false", cut(text))),
    }
}

/// The exporter's settings, or `None` when tracing is off (no endpoint in
/// the manifest or the environment, or `OTEL_SDK_DISABLED=true`). `env`
/// reads a variable (the process environment in the server; a map in
/// tests); header references are read relative to `base_dir`.
pub fn resolve(
    t: &Tracing,
    service: &TracedService<'_>,
    base_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Config>, String> {
    if let Some(v) = env("OTEL_SDK_DISABLED") {
        if boolean("OTEL_SDK_DISABLED", &v)? {
            return Ok(None);
        }
    }
    let Some(url) = endpoint(t, env)? else {
        return Ok(None);
    };
    let headers = headers(t, base_dir, env)?;
    let (sampler, ratio) = sampler(t, env)?;
    let resource = resource(t, service, env)?;
    let (queue, batch, delay, timeout) = batching(t, env)?;
    Ok(Some(Config {
        url,
        headers,
        sampling: Sampling::new(sampler, ratio),
        resource,
        queue,
        batch,
        delay,
        timeout,
    }))
}

/// Where spans go: the `OTEL_*` endpoint variables, else the manifest's
/// (`None`: no endpoint anywhere). Only OTLP over HTTP/protobuf is spoken.
fn endpoint(
    t: &Tracing,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<reqwest::Url>, String> {
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = env(var) {
            if p.trim() != PROTOCOL {
                return Err(format!(
                    "{var}={:?}: telltale exports OTLP as {PROTOCOL} only",
                    cut(&p)
                ));
            }
            break;
        }
    }
    let url = if let Some(u) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        parse_url(&u, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?
    } else if let Some(u) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
        traces_url(parse_url(&u, "OTEL_EXPORTER_OTLP_ENDPOINT")?)
    } else if let Some(u) = &t.traces_endpoint {
        parse_url(u.as_str(), "tracing.traces_endpoint")?
    } else if let Some(u) = &t.endpoint {
        traces_url(parse_url(u.as_str(), "tracing.endpoint")?)
    } else {
        return Ok(None);
    };
    Ok(Some(url))
}

/// The export's headers: the manifest's references, then the
/// environment's (which win for the same name); every value sensitive.
fn headers(
    t: &Tracing,
    base_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let mut put = |name: &str, value: &str, from: &str| -> Result<(), String> {
        let n = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{from}: {:?} is not a header name", cut(name)))?;
        let mut v = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("{from}: the value of header {n} is not a valid header value"))?;
        v.set_sensitive(true);
        headers.retain(|(have, _)| *have != n);
        headers.push((n, v));
        Ok(())
    };
    for (name, r) in &t.headers {
        let (value, shown) = r
            .read(base_dir)
            .map_err(|e| format!("tracing.headers.{name}: {e}"))?;
        put(name, &value, &format!("tracing.headers.{name} ({shown})"))?;
    }
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(text) = env(var) {
            for (k, v) in key_values(var, &text)? {
                put(&k, &v, var)?;
            }
        }
    }
    Ok(headers)
}

/// The sampler and its ratio: `OTEL_TRACES_SAMPLER[_ARG]`, else the
/// manifest's.
fn sampler(t: &Tracing, env: &dyn Fn(&str) -> Option<String>) -> Result<(Sampler, f64), String> {
    let sampler = match env("OTEL_TRACES_SAMPLER") {
        Some(name) => Sampler::from_name(name.trim()).ok_or_else(|| {
            format!(
                "OTEL_TRACES_SAMPLER={:?} is not a sampler telltale has ({})",
                cut(&name),
                Sampler::ALL.map(Sampler::as_str).join(", ")
            )
        })?,
        None => t.sampler,
    };
    let ratio = match env("OTEL_TRACES_SAMPLER_ARG") {
        Some(arg) if sampler.uses_ratio() => match arg.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG={:?} must be a ratio from 0 to 1",
                    cut(&arg)
                ))
            }
        },
        _ => t.ratio.unwrap_or(1.0),
    };
    Ok((sampler, ratio))
}

/// The resource: service name, version and instance, then the manifest's
/// attributes, `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`.
fn resource(
    t: &Tracing,
    service: &TracedService<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut resource = vec![
        ("service.name".to_string(), service.name.to_string()),
        ("service.version".to_string(), service.version.to_string()),
        (
            "service.instance.id".to_string(),
            service.instance.to_string(),
        ),
    ];
    let mut set = |k: String, v: String| match resource.iter_mut().find(|(have, _)| *have == k) {
        Some(slot) => slot.1 = v,
        None => resource.push((k, v)),
    };
    for (k, v) in &t.resource {
        set(k.clone(), v.clone());
    }
    if let Some(text) = env("OTEL_RESOURCE_ATTRIBUTES") {
        for (k, v) in key_values("OTEL_RESOURCE_ATTRIBUTES", &text)? {
            set(k, v);
        }
    }
    if let Some(name) = env("OTEL_SERVICE_NAME").filter(|n| !n.trim().is_empty()) {
        set("service.name".into(), name.trim().to_string());
    }
    Ok(resource)
}

/// The queue, batch size, delay and timeout: the `OTEL_BSP_*` and timeout
/// variables, else the manifest's, each within its bounds.
fn batching(
    t: &Tracing,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(usize, usize, std::time::Duration, std::time::Duration), String> {
    let max_queue = crate::manifest::traces::MAX_QUEUE as usize;
    let queue = match env("OTEL_BSP_MAX_QUEUE_SIZE") {
        Some(v) => count("OTEL_BSP_MAX_QUEUE_SIZE", &v, max_queue)?,
        None => t.queue.clamp(1, max_queue as i64) as usize,
    };
    let batch = match env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        Some(v) => count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v, queue)?,
        None => (t.batch.max(1) as usize).min(queue),
    };
    let delay = match env("OTEL_BSP_SCHEDULE_DELAY") {
        Some(v) => millis("OTEL_BSP_SCHEDULE_DELAY", &v, 1, 60_000)?,
        None => t.delay.get(),
    };
    let timeout = match env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .map(|v| ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", v))
        .or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT").map(|v| ("OTEL_EXPORTER_OTLP_TIMEOUT", v)))
    {
        Some((var, v)) => millis(var, &v, 100, 300_000)?,
        None => t.timeout.get(),
    };
    Ok((queue, batch, delay, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn values_are_percent_decoded_and_bad_escapes_refused() {
        assert_eq!(
            key_values("V", "a=x%20y%3D, b = %C3%A9 ,,c="),
            Ok(vec![
                ("a".into(), "x y=".into()),
                ("b".into(), "é".into()),
                ("c".into(), String::new()),
            ])
        );
        for bad in ["a=%zz", "a=100%", "a=%2", "a=%+f", "a=%FF"] {
            let e = key_values("V", bad).unwrap_err();
            assert!(e.contains("bad percent-escape"), "{bad}: {e}");
        }
    }

    const SVC: TracedService<'static> = TracedService {
        name: "shop",
        version: "1.2.3",
        instance: "host:8001",
    };

    fn with(t: &Tracing, vars: &[(&str, &str)]) -> Result<Option<Config>, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(t, &SVC, None, &|k| map.get(k).cloned())
    }

    fn manifest(endpoint: &str) -> Tracing {
        Tracing {
            endpoint: Some(crate::manifest::values::HttpUrl::parse(endpoint).unwrap()),
            ..Tracing::default()
        }
    }

    #[test]
    fn no_endpoint_anywhere_is_tracing_off() {
        assert!(with(&Tracing::default(), &[]).unwrap().is_none());
        let t = manifest("http://127.0.0.1:4318");
        assert!(with(&t, &[("OTEL_SDK_DISABLED", "true")])
            .unwrap()
            .is_none());
        assert!(with(&t, &[("OTEL_SDK_DISABLED", "maybe")]).is_err());
    }

    #[test]
    fn endpoints_follow_the_spec_and_the_environment_wins() {
        let t = manifest("http://collector:4318/base/");
        let c = with(&t, &[]).unwrap().unwrap();
        assert_eq!(c.url.as_str(), "http://collector:4318/base/v1/traces");
        let c = with(&t, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(c.url.as_str(), "http://other:4318/v1/traces");
        let c = with(
            &t,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://exact:1/x"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.url.as_str(), "http://exact:1/x");
        let e = with(&t, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && e.contains(PROTOCOL),
            "{e}"
        );
        assert!(with(&t, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).is_ok());
        let e = with(&t, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x:4318")]).unwrap_err();
        assert!(e.contains("https"), "{e}");
    }

    #[test]
    fn samplers_come_from_the_environment_first() {
        let t = manifest("http://c:4318");
        let c = with(&t, &[]).unwrap().unwrap();
        assert_eq!(c.sampling.sampler, Sampler::ParentBasedAlwaysOn);
        let c = with(
            &t,
            &[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.sampling.sampler, Sampler::ParentBasedTraceIdRatio);
        assert_eq!(c.sampling.ratio, 0.25);
        assert!(with(&t, &[("OTEL_TRACES_SAMPLER", "sometimes")]).is_err());
        assert!(with(
            &t,
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2")
            ]
        )
        .is_err());
    }

    #[test]
    fn resource_attributes_merge_with_the_service_name_last() {
        let t = manifest("http://c:4318");
        let c = with(
            &t,
            &[
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=prod,team=a%20b,service.name=ignored",
                ),
                ("OTEL_SERVICE_NAME", "shop-eu"),
            ],
        )
        .unwrap()
        .unwrap();
        let get = |k: &str| {
            c.resource
                .iter()
                .find(|(x, _)| x == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("service.name"), Some("shop-eu"));
        assert_eq!(get("service.instance.id"), Some("host:8001"));
        assert_eq!(get("team"), Some("a b"));
        assert_eq!(get("deployment.environment"), Some("prod"));
        assert!(with(&t, &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")]).is_err());
    }

    #[test]
    fn headers_from_the_environment_are_sensitive() {
        let t = manifest("http://c:4318");
        let c = with(&t, &[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret")])
            .unwrap()
            .unwrap();
        assert_eq!(c.headers.len(), 1);
        assert_eq!(c.headers[0].1, "s=cret");
        assert!(c.headers[0].1.is_sensitive());
    }
}
