//! Checks of `tracing:`. Header values are not read here: `validate` and
//! `render` never need a secret, only its reference. The `OTEL_*`
//! environment variables are read by the server when it starts.

use crate::manifest::{Diagnostics, Manifest, Source};

use crate::manifest::traces::MAX_QUEUE;

/// Every `tracing` error, located.
pub fn check(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let t = &m.tracing;
    match t.ratio {
        Some(r) if !(0.0..=1.0).contains(&r) || r.is_nan() => errs.push(src.error(
            "tracing.ratio",
            format!("{r} is not a share: it must be from 0 to 1"),
        )),
        Some(_) if !t.sampler.uses_ratio() => errs.push(src.error(
            "tracing.ratio",
            format!(
                "sampler {:?} takes no ratio (only traceidratio and parentbased_traceidratio do)",
                t.sampler.as_str()
            ),
        )),
        _ => {}
    }
    if !(1..=MAX_QUEUE).contains(&t.queue) {
        errs.push(src.error(
            "tracing.queue",
            format!("{} spans: the queue holds 1 to {MAX_QUEUE}", t.queue),
        ));
    }
    if !(1..=t.queue.max(1)).contains(&t.batch) {
        errs.push(src.error(
            "tracing.batch",
            format!(
                "{} spans: a batch holds 1 to `queue` ({})",
                t.batch, t.queue
            ),
        ));
    }
    let delay = t.delay.get();
    if delay.is_zero() || delay > std::time::Duration::from_secs(60) {
        errs.push(src.error("tracing.delay", "must be more than 0s and at most 1m"));
    }
    let timeout = t.timeout.get();
    if timeout < std::time::Duration::from_millis(100)
        || timeout > std::time::Duration::from_secs(300)
    {
        errs.push(src.error("tracing.timeout", "must be from 100ms to 5m"));
    }
    for (name, r) in &t.headers {
        let at = format!("tracing.headers.{name}");
        if poem::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errs.push(src.key_error(&at, format!("{name:?} is not an HTTP header name")));
        }
        super::auth::check_ref(src, &at, r, errs);
    }
    for (key, value) in &t.resource {
        let at = format!("tracing.resource.{key}");
        if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
            errs.push(src.key_error(
                &at,
                format!("{key:?} is not an attribute name (1 to 255 printable ASCII characters)"),
            ));
        } else if matches!(
            key.as_str(),
            "service.name" | "service.version" | "service.instance.id"
        ) {
            errs.push(src.key_error(
                &at,
                format!("{key} comes from the service itself (`service`, the instance): it cannot be set here"),
            ));
        }
        if value.len() > 4096 || value.chars().any(char::is_control) {
            errs.push(src.error(
                &at,
                "a value has at most 4096 characters and no control character",
            ));
        }
    }
}
