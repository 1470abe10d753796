//! The manifest's own checks, field by field: the service, its routes,
//! metrics, logging and objectives. Each pushes every error it finds, so one
//! run reports them all (see [`super::validate_after`]).

use super::*;

/// The longest graceful drain `service.shutdown_timeout_seconds` may ask for.
const MAX_SHUTDOWN_SECS: u64 = 600;
/// The largest `service.data_limit_bytes`.
const MAX_DATA_LIMIT: u64 = 256 << 20;

/// Fields that would make unbounded Loki streams if used as labels.
const UNBOUNDED_LOG_FIELDS: &[&str] = &[
    "timestamp",
    "message",
    "request_id",
    "path",
    "duration_ms",
    "caller",
    "trace_id",
    "span_id",
];

pub(super) fn check_port(src: &Source, path: &str, port: i64, errs: &mut Diagnostics) {
    if !(1..=65535).contains(&port) {
        errs.push(src.error(path, format!("port {port} is out of range (1-65535)")));
    }
}

pub(super) fn check_service(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    check_port(src, "service.port", m.service.port, errs);
    if m.service.name.trim().is_empty() {
        errs.push(src.error("service.name", "must not be empty"));
    }
    if m.service.host.parse::<std::net::IpAddr>().is_err() && m.service.host != "localhost" {
        errs.push(src.error(
            "service.host",
            format!("{:?} is not an IP address", m.service.host),
        ));
    }
    if m.service.body_limit_bytes == 0 {
        errs.push(src.error("service.body_limit_bytes", "must be greater than 0"));
    }
    if !(1..=MAX_SHUTDOWN_SECS).contains(&m.service.shutdown_timeout_seconds) {
        errs.push(src.error(
            "service.shutdown_timeout_seconds",
            format!(
                "{} must be from 1 to {MAX_SHUTDOWN_SECS} seconds",
                m.service.shutdown_timeout_seconds
            ),
        ));
    }
    let l = &m.service.limits;
    for (field, v) in [
        ("header_timeout_seconds", l.header_timeout_seconds),
        ("body_timeout_seconds", l.body_timeout_seconds),
        ("idle_timeout_seconds", l.idle_timeout_seconds),
    ] {
        if !(1..=3600).contains(&v) {
            errs.push(src.error(
                &format!("service.limits.{field}"),
                format!("{v} must be from 1 to 3600 seconds"),
            ));
        }
    }
    if !(1..=1_000_000).contains(&l.max_connections) {
        errs.push(src.error(
            "service.limits.max_connections",
            format!("{} must be from 1 to 1000000", l.max_connections),
        ));
    }
    if !(1..=MAX_DATA_LIMIT).contains(&m.service.data_limit_bytes) {
        errs.push(src.error(
            "service.data_limit_bytes",
            format!(
                "{} must be from 1 to {MAX_DATA_LIMIT} bytes",
                m.service.data_limit_bytes
            ),
        ));
    }
}

pub(super) fn check_routes(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let mut seen: HashMap<(HttpMethod, String), usize> = HashMap::new();
    for (i, ep) in m.endpoints.iter().enumerate() {
        let method = ep.method;
        if let Err(why) = check_route_template(&ep.path) {
            errs.push(src.error(&format!("endpoints[{i}].path"), why));
        }
        if ep.path.starts_with("/docs") || ep.path == "/openapi.json" {
            errs.push(src.error(
                &format!("endpoints[{i}].path"),
                format!("{:?} is reserved for the built-in OpenAPI docs", ep.path),
            ));
        }
        if let Some(first) = seen.insert((method, normalize_template(&ep.path)), i) {
            errs.push(src.error(
                &format!("endpoints[{i}].path"),
                format!(
                    "duplicate route {method} {} (already declared at endpoints[{first}])",
                    ep.path
                ),
            ));
        }
    }
}

/// Whether `serve` could create and write log files in `dir` (relative to
/// the working directory, as `serve` takes it): the directory, or the
/// nearest ancestor that exists, must be a writable directory.
fn writable_dir(dir: &Path) -> Result<(), String> {
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(meta) if !meta.is_dir() => {
                return Err(format!("{} exists and is not a directory", p.display()))
            }
            Ok(_) => break,
            Err(_) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => p = parent,
                _ => {
                    p = Path::new(".");
                    break;
                }
            },
        }
    }
    #[cfg(unix)]
    {
        use rustix::fs::{access, Access};
        if let Err(e) = access(p, Access::WRITE_OK | Access::EXEC_OK) {
            let e = std::io::Error::from(e);
            return Err(if p == dir {
                format!("cannot write log files in {}: {e}", dir.display())
            } else {
                format!(
                    "cannot create {}: {} is not writable ({e})",
                    dir.display(),
                    p.display()
                )
            });
        }
    }
    Ok(())
}

/// `/a/{id}` and `/a/{other}` are the same route.
fn normalize_template(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn check_route_template(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("route {path:?} must start with '/'"));
    }
    for seg in path.split('/').skip(1) {
        if seg.starts_with('{') {
            let name = seg
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .ok_or_else(|| format!("malformed parameter segment {seg:?} in {path:?}"))?;
            if !is_label_name(name) {
                return Err(format!("bad parameter name {name:?} in {path:?}"));
            }
        } else if seg.contains(['{', '}', '*', ':', '?', '#', ' ']) {
            return Err(format!(
                "segment {seg:?} of {path:?} has a reserved character"
            ));
        }
    }
    Ok(())
}

pub(super) fn check_metrics(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, metric) in m.metrics.iter().enumerate() {
        let at = |f: &str| format!("metrics[{i}].{f}");
        if !is_metric_name(&metric.name) {
            errs.push(src.error(
                &at("name"),
                format!(
                    "{:?} is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                    metric.name
                ),
            ));
        }
        if let Some(first) = seen.insert(&metric.name, i) {
            errs.push(src.error(
                &at("name"),
                format!(
                    "duplicate metric name {:?} (already declared at metrics[{first}])",
                    metric.name
                ),
            ));
        }
        match metric.kind {
            MetricType::Counter if !metric.name.ends_with("_total") => errs.push(src.error(
                &at("name"),
                format!("counter {:?} must end in \"_total\"", metric.name),
            )),
            MetricType::Histogram => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    if metric.name.ends_with(suffix) {
                        errs.push(src.error(
                            &at("name"),
                            format!("histogram {:?} must not end in {suffix:?}", metric.name),
                        ));
                    }
                }
            }
            _ => {}
        }
        if metric.help.trim().is_empty() {
            errs.push(src.error(&at("help"), "must not be empty"));
        }
        let mut labels = HashSet::new();
        for (j, l) in metric.labels.iter().enumerate() {
            let l = l.name.as_str();
            if !is_label_name(l) {
                errs.push(src.error(
                    &format!("metrics[{i}].labels[{j}]"),
                    format!("{l:?} is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"),
                ));
            } else if l == "le" || l == "quantile" || l == "job" || l == "instance" {
                errs.push(src.error(
                    &format!("metrics[{i}].labels[{j}]"),
                    format!("label {l:?} is reserved (Prometheus sets it)"),
                ));
            }
            if !labels.insert(l) {
                errs.push(src.error(
                    &format!("metrics[{i}].labels[{j}]"),
                    format!("duplicate label {l:?}"),
                ));
            }
        }
        match (&metric.buckets, metric.kind) {
            (Some(_), k) if k != MetricType::Histogram => errs.push(src.error(
                &at("buckets"),
                format!("only histograms have buckets (this is a {})", k.as_str()),
            )),
            (Some(b), _) => {
                if b.is_empty() {
                    errs.push(src.error(&at("buckets"), "must not be empty"));
                }
                if b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|x| !x.is_finite()) {
                    errs.push(src.error(
                        &at("buckets"),
                        "bucket bounds must be finite and strictly increasing",
                    ));
                }
            }
            _ => {}
        }
    }
}

pub(super) fn check_logging(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let l = &m.logging;
    if l.file.is_empty() || l.file.contains(['/', '*', '?', '[']) {
        errs.push(src.error(
            "logging.file",
            "must be a plain file name prefix (no '/', no glob characters)",
        ));
    }
    if l.max_files == 0 {
        errs.push(src.error("logging.max_files", "must keep at least one file"));
    }
    if l.enabled {
        if let Err(why) = writable_dir(Path::new(&l.dir)) {
            errs.push(src.error("logging.dir", why));
        }
    }
    for (i, f) in l.fields.iter().enumerate() {
        if !REQUEST_LOG_FIELDS.contains(&f.as_str()) {
            errs.push(src.error(
                &format!("logging.fields[{i}]"),
                format!(
                    "unknown log field {f:?} (the server writes: {})",
                    REQUEST_LOG_FIELDS.join(", ")
                ),
            ));
        }
    }
    for (i, lab) in l.labels.iter().enumerate() {
        let at = format!("logging.labels[{i}]");
        if !l.fields.contains(lab) {
            errs.push(src.error(&at, format!("label {lab:?} is not one of logging.fields")));
        } else if UNBOUNDED_LOG_FIELDS.contains(&lab.as_str()) {
            errs.push(src.error(
                &at,
                format!("{lab:?} has unbounded values and cannot be a Loki label"),
            ));
        }
    }
}

pub(super) fn check_objectives(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let metrics: BTreeMap<&str, &Metric> = m.metrics.iter().map(|x| (x.name.as_str(), x)).collect();
    for (i, o) in m.objectives.iter().enumerate() {
        let at = |f: &str| format!("objectives[{i}].{f}");
        if !(o.target > 0.0 && o.target < 1.0) {
            errs.push(src.error(
                &at("target"),
                format!("target {} must be between 0 and 1 (exclusive)", o.target),
            ));
        }
        if o.window.is_zero() {
            errs.push(src.error(&at("window"), "an SLO window must be longer than 0s"));
        }
        let Some(metric) = metrics.get(o.metric.as_str()) else {
            errs.push(src.error(
                &at("metric"),
                format!("objective names undeclared metric {:?}", o.metric),
            ));
            continue;
        };
        match o.kind {
            ObjectiveKind::Availability => {
                if metric.kind != MetricType::Counter
                    || !metric.labels.iter().any(|l| l == "status")
                {
                    errs.push(src.error(
                        &at("metric"),
                        format!(
                            "availability needs a counter with a `status` label; {:?} is not one",
                            o.metric
                        ),
                    ));
                }
                if o.threshold_seconds.is_some() {
                    errs.push(src.error(
                        &at("threshold_seconds"),
                        "only latency objectives have a threshold",
                    ));
                }
            }
            ObjectiveKind::Latency => {
                if metric.kind != MetricType::Histogram {
                    errs.push(src.error(
                        &at("metric"),
                        format!(
                            "latency needs a histogram; {:?} is a {}",
                            o.metric,
                            metric.kind.as_str()
                        ),
                    ));
                    continue;
                }
                match o.threshold_seconds {
                    None => errs.push(src.error(
                        &at("threshold_seconds"),
                        "latency objectives need threshold_seconds",
                    )),
                    Some(t) => {
                        let buckets = metric.buckets.clone().unwrap_or_default();
                        if !buckets.iter().any(|b| (b - t).abs() < 1e-12) {
                            errs.push(src.error(
                                &at("threshold_seconds"),
                                format!(
                                    "{t} is not a bucket boundary of {:?} (buckets: {:?}); the SLI could not be computed exactly",
                                    o.metric, buckets
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
}
