//! The validated model: a deserialized manifest (`crate::manifest`) whose
//! every field has been checked, all errors reported at once, with each
//! endpoint's and metric's plugin prepared by its kind from the
//! [`KindRegistry`] that `App` built. The server, the renderer and chaos only
//! ever see a [`Model`], so anything they rely on is checked here once.
//!
//! Stages import only downward: `manifest` (parse, locate) ← `model`
//! (validate) ← `server`, `render`, `chaos`. The built-in kinds in
//! `plugins/` implement [`kinds`]' traits and sit above every stage.

pub mod annotation;
pub mod app_metrics;
pub mod auth;
pub mod budget;
pub mod contrib;
pub mod data;
pub mod datasource;
pub mod dependencies;
pub mod dependency_row;
pub mod exemplars;
pub mod k8s_env;
pub mod kinds;
pub mod lint;
pub mod logql;
pub mod names;
pub mod promql;
mod registry;
pub mod traces;

pub use registry::{Identity, KindRegistry, Resources};

/// The git commit telltale was built from (`build.rs`), for `build_info`.
pub const COMMIT: &str = env!("TELLTALE_COMMIT");

use crate::manifest::*;
use kinds::{HandlerCtx, MetricCtx, PreparedHandler, PreparedSource};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Loads and validates with the kinds of `registry`.
///
/// With no path, `./manifest.yaml` is used when it exists, else the embedded copy.
#[cfg(any(test, feature = "internals"))]
pub fn open(path: Option<&Path>, registry: &KindRegistry) -> Result<Model, Diagnostics> {
    open_or(path, registry, None)
}

/// Like [`open`], with `embedded` (display name, text) instead of the demo
/// manifest when there is neither a path nor a `./manifest.yaml`.
pub fn open_or(
    path: Option<&Path>,
    registry: &KindRegistry,
    embedded: Option<(&str, &str)>,
) -> Result<Model, Diagnostics> {
    let loaded = match path {
        Some(p) => load_file(p),
        None if Path::new("manifest.yaml").exists() => load_file(Path::new("manifest.yaml")),
        None => match embedded {
            Some((name, text)) => load_str(name, text, None),
            None => load_embedded(),
        },
    };
    match loaded {
        Ok(l) => validate(l, registry),
        Err(failed) => Err(with_semantic_errors(failed, registry)),
    }
}

/// Loads `path` again for a reload and validates it. The metric sources
/// that keep values ([`PreparedSource::keeps_values`]) and are declared
/// as in `previous` (but for their help text) are carried over, so that the server keeps
/// their families and the handlers update the same series.
pub fn reopen(
    path: &Path,
    registry: &KindRegistry,
    previous: &Model,
) -> Result<Model, Diagnostics> {
    match load_file(path) {
        Ok(l) => validate_after(l, registry, Some(previous)),
        Err(failed) => Err(with_semantic_errors(failed, registry)),
    }
}

/// The prepared source to use for `metric`: `fresh`, or the one `previous`
/// prepared for the same declaration when both keep values.
fn carried(
    previous: Option<&Model>,
    metric: &Metric,
    fresh: Arc<dyn PreparedSource>,
) -> Arc<dyn PreparedSource> {
    let Some(prev) = previous else {
        return fresh;
    };
    if !fresh.keeps_values() {
        return fresh;
    }
    let declared = declaration(metric);
    let same =
        |m: &Metric| m.name == metric.name && declared.is_some() && declaration(m) == declared;
    prev.manifest
        .metrics
        .iter()
        .zip(&prev.sources)
        .find(|(m, s)| same(m) && s.keeps_values())
        .map_or(fresh, |(_, s)| s.clone())
}

/// What makes two declarations of a metric the same family for a reload:
/// everything but its help text (the help served is the new one; the
/// series and their values stay).
fn declaration(metric: &Metric) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(metric).ok()?;
    v.as_object_mut()?.remove("help");
    Some(v)
}

/// Every error at once: a manifest with type errors is still validated as
/// far as it was read (bad fields at their defaults, bad list items
/// dropped), and those errors are added, except the ones that only follow
/// from a dropped item (a reference to its name) or repeat a field's
/// type error.
fn with_semantic_errors(failed: crate::manifest::Failed, registry: &KindRegistry) -> Diagnostics {
    let crate::manifest::Failed {
        diagnostics: mut errs,
        partial,
        dropped,
    } = failed;
    if let Some(partial) = partial {
        let typed: Vec<String> = errs.0.iter().map(|d| d.path.clone()).collect();
        let more = with_bad_types_restored(&partial, &typed, registry)
            .unwrap_or_else(|| validate(*partial, registry).err().unwrap_or_default().0);
        for d in more {
            let follows = dropped
                .iter()
                .any(|name| d.message.contains(&format!("{name:?}")))
                || typed
                    .iter()
                    .any(|p| !p.is_empty() && d.path.starts_with(p.as_str()));
            if !follows {
                errs.push(d);
            }
        }
    }
    errs.finish()
}

/// The errors of `partial` with each metric dropped only because its `type`
/// did not parse put back in its place, as a counter, a gauge and a
/// histogram in turn: the errors found whatever its type would have been.
/// A metric that is merely missing would otherwise draw errors from what
/// needs it (the datasource's `error_burst` events need the `http.requests`
/// counter). `None` when the dropped metrics cannot be put back (other
/// items were dropped too, or a metric has other bad fields).
fn with_bad_types_restored(
    partial: &Loaded,
    typed: &[String],
    registry: &KindRegistry,
) -> Option<Vec<Diagnostic>> {
    let raw: serde_yaml::Value = serde_yaml::from_str(&partial.source.text).ok()?;
    let items = raw.get("metrics")?.as_sequence()?;
    let bad: Vec<usize> = (0..items.len())
        .filter(|i| typed.contains(&format!("metrics[{i}].type")))
        .collect();
    let kept = &partial.manifest.metrics;
    if bad.is_empty() || items.len() != kept.len() + bad.len() {
        return None;
    }
    let mut common: Option<Vec<Diagnostic>> = None;
    for kind in [
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
    ] {
        let mut kept = kept.iter();
        let metrics = items
            .iter()
            .enumerate()
            .map(|(i, item)| match bad.contains(&i) {
                true => with_type(item, kind),
                false => kept.next().cloned(),
            })
            .collect::<Option<Vec<Metric>>>()?;
        let mut manifest = partial.manifest.clone();
        manifest.metrics = metrics;
        let loaded = Loaded {
            manifest,
            source: partial.source.clone(),
        };
        let found = validate(loaded, registry).err().unwrap_or_default().0;
        common = Some(match common {
            None => found,
            Some(before) => before.into_iter().filter(|d| found.contains(d)).collect(),
        });
    }
    common
}

/// The metric declared by `item` with its `type` set to `kind`, if the rest
/// of it reads.
fn with_type(item: &serde_yaml::Value, kind: MetricType) -> Option<Metric> {
    let mut item = item.clone();
    *item.as_mapping_mut()?.get_mut("type")? = kind.as_str().into();
    serde_yaml::from_value(item).ok()
}

/// A manifest that passed every check, with its plugins prepared.
pub struct Model {
    pub manifest: Manifest,
    pub source: Source,
    /// One prepared handler per `endpoints[i]`, same order.
    pub handlers: Vec<Arc<dyn PreparedHandler>>,
    /// One prepared source per `metrics[i]`, same order.
    pub sources: Vec<Arc<dyn PreparedSource>>,
    /// The JSON datasource's checked targets.
    pub datasource: datasource::Spec,
    /// The most series each metric can expose (see `manifest::budget`).
    pub budget: budget::Budget,
    /// The closed set of the HTTP families' `status` values.
    pub statuses: budget::Statuses,
    /// Who the service is (`App::identity`).
    pub identity: Identity,
    /// The user's middleware, outermost first.
    pub middleware: Vec<Arc<dyn kinds::Middleware>>,
    /// One prepared dependency per `dependencies[i]`, same order.
    pub dependencies: Vec<Arc<dyn dependencies::PreparedDependency>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Which manifest this is, for people: its absolute path, or that it is
    /// the copy compiled into the binary.
    pub fn origin(&self) -> String {
        match &self.source.base_dir {
            None => format!(
                "the manifest compiled into this binary ({}; no --manifest and no ./manifest.yaml)",
                self.source.name
            ),
            Some(_) => std::fs::canonicalize(&self.source.name)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| self.source.name.clone()),
        }
    }

    /// The files this model was read from: the manifest and its data files
    /// (none for the embedded manifest). Render never replaces them; a
    /// watching server reloads when one changes.
    pub fn inputs(&self) -> Vec<std::path::PathBuf> {
        let Some(base) = &self.source.base_dir else {
            return Vec::new();
        };
        let mut v = vec![std::path::PathBuf::from(&self.source.name)];
        v.extend(
            self.manifest
                .endpoints
                .iter()
                .filter_map(|e| e.data.as_ref())
                .map(|d| base.join(d)),
        );
        v
    }

    /// The declared metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.manifest.metrics.iter().find(|m| m.name == name)
    }

    /// Each endpoint's roles, same order as `endpoints:`.
    pub fn endpoint_roles(&self) -> Vec<&[contrib::Role]> {
        self.handlers.iter().map(|h| h.roles()).collect()
    }

    /// The declared metrics whose source plays `role`, in declaration order.
    pub fn metrics_with(&self, role: contrib::Role) -> impl Iterator<Item = &Metric> {
        self.manifest
            .metrics
            .iter()
            .zip(&self.sources)
            .filter(move |(_, s)| s.roles().contains(&role))
            .map(|(m, _)| m)
    }
}

/// Valid Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// Valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !s.starts_with("__")
}

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

/// Checks everything and prepares the plugins, whose kinds come from `registry`.
pub fn validate(loaded: Loaded, registry: &KindRegistry) -> Result<Model, Diagnostics> {
    validate_after(loaded, registry, None)
}

/// [`validate`], carrying over from `previous` (a reload) the prepared
/// sources that keep values (see [`reopen`]).
pub fn validate_after(
    loaded: Loaded,
    registry: &KindRegistry,
    previous: Option<&Model>,
) -> Result<Model, Diagnostics> {
    let Loaded {
        manifest: m,
        source,
    } = loaded;
    let src = &source;
    let mut errs = Diagnostics::default();

    check_service(src, &m, &mut errs);
    check_routes(src, &m, &mut errs);
    check_metrics(src, &m, &mut errs);
    check_logging(src, &m, &mut errs);
    check_objectives(src, &m, &mut errs);
    check_stack(src, &m, &mut errs);
    check_kubernetes(src, &m, &mut errs);
    auth::check(src, &m, &mut errs);
    traces::check(src, &m, &mut errs);
    dependencies::check(src, &m, &mut errs);

    // Dependencies first: handlers' setup asks for their clients. One slot
    // per `dependencies[i]`; `None` where it failed (still declared).
    let mut deps_out: Vec<Option<Arc<dyn dependencies::PreparedDependency>>> = Vec::new();
    for (i, d) in m.dependencies.iter().enumerate() {
        let ctx = dependencies::DependencyCtx {
            index: i,
            dependency: d,
            manifest: &m,
            source: src,
        };
        match registry.dependency_kind(&d.kind) {
            None => {
                errs.push(src.error(
                    &format!("dependencies[{i}].kind"),
                    lint::unknown_name(
                        "dependency kind",
                        &d.kind,
                        &registry.dependency_kind_names(),
                        "registered",
                    ),
                ));
                deps_out.push(None);
            }
            Some(kind) => match kind.prepare(&ctx) {
                Ok(p) => deps_out.push(Some(p)),
                Err(e) => {
                    errs.extend(e);
                    deps_out.push(None);
                }
            },
        }
    }

    // Plugins: each kind validates its own options and loads its data.
    // Metric sources first: handlers' setup asks for the app metrics.
    // One slot per metric: `None` when its source is unknown or refused it.
    let mut slots: Vec<Option<Arc<dyn PreparedSource>>> = Vec::new();
    for (i, metric) in m.metrics.iter().enumerate() {
        let ctx = MetricCtx {
            index: i,
            metric,
            manifest: &m,
            source: src,
            identity: registry.identity(),
        };
        slots.push(match registry.source(&metric.source) {
            None => {
                errs.push(src.error(
                    &format!("metrics[{i}].source"),
                    lint::unknown_name(
                        "metric source",
                        &metric.source,
                        &registry.source_names(),
                        "registered",
                    ),
                ));
                None
            }
            Some(kind) => match kind.prepare(&ctx) {
                Ok(s) => Some(carried(previous, metric, s)),
                Err(e) => {
                    errs.extend(e);
                    None
                }
            },
        });
    }
    let sources_out: Vec<Arc<dyn PreparedSource>> = slots.iter().flatten().cloned().collect();

    // Before the handlers: the datasource's routes document its targets.
    let datasource = datasource::prepare(src, &m, &slots, &mut errs).unwrap_or_default();
    let cache = kinds::Cache::default();
    let apps =
        app_metrics::AppFamilies::new(sources_out.iter().filter_map(|s| s.app_family()).collect());
    let mut handlers_out = Vec::new();
    // Each endpoint's roles (none when its kind is unknown or refused it).
    let mut endpoint_roles: Vec<Vec<contrib::Role>> = Vec::new();
    for (i, ep) in m.endpoints.iter().enumerate() {
        let ctx = HandlerCtx {
            index: i,
            endpoint: ep,
            manifest: &m,
            source: src,
            apps: &apps,
            cache: &cache,
            datasource: &datasource,
            registry,
            dependencies: &deps_out,
        };
        match registry.handler(&ep.handler) {
            None => errs.push(src.error(
                &format!("endpoints[{i}].handler"),
                lint::unknown_name(
                    "handler kind",
                    &ep.handler,
                    &registry.handler_names(),
                    "registered",
                ),
            )),
            Some(kind) => {
                let method = ep.method;
                match kind.methods() {
                    Some(allowed) if !allowed.contains(&method) => errs.push(src.error(
                        &format!("endpoints[{i}].method"),
                        format!(
                            "handler kind {:?} serves {}, not {method}",
                            ep.handler,
                            allowed
                                .iter()
                                .map(|m| m.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                    _ => match kind.prepare(&ctx) {
                        Ok(h) => {
                            endpoint_roles.push(h.roles().to_vec());
                            handlers_out.push(h);
                            continue;
                        }
                        Err(e) => errs.extend(e),
                    },
                }
            }
        }
        endpoint_roles.push(Vec::new());
    }
    let roles: Vec<&[contrib::Role]> = endpoint_roles.iter().map(Vec::as_slice).collect();
    k8s_env::check_credentials(src, &m, &roles, &mut errs);

    // The series budget, once every handler and source is prepared.
    let mut budget = budget::Budget::default();
    let mut statuses = budget::Statuses::default();
    if handlers_out.len() == m.endpoints.len() && sources_out.len() == m.metrics.len() {
        let mut documented: Vec<u16> = handlers_out.iter().flat_map(|h| h.statuses()).collect();
        // A guarded route answers 401 and 403 itself.
        let guarded =
            !m.auth.docs.is_open() || m.endpoints.iter().any(|e| !m.auth.requirement(e).is_open());
        if guarded {
            documented.extend([401, 403]);
        }
        let (shape, s) = budget::http_shape(&m, documented);
        statuses = s;
        for (metric, src) in m.metrics.iter().zip(&sources_out) {
            budget
                .metrics
                .push((metric.name.clone(), src.max_series(metric, &shape)));
        }
        if let Some(limit) = m.service.series_limit {
            let total = budget.total();
            if total as u64 > limit {
                let top: Vec<String> = budget
                    .largest(3)
                    .iter()
                    .map(|(n, c)| format!("{n} {c}"))
                    .collect();
                errs.push(src.error(
                    "service.series_limit",
                    format!(
                        "the metrics can expose up to {total} series, over the limit of {limit} \
                         (largest: {}; plus {} of telltale's own)",
                        top.join(", "),
                        budget::OWN_SERIES
                    ),
                ));
            }
        }
    }

    let derivers: Vec<&str> = registry
        .source_kinds()
        .filter_map(|k| k.derives_alert())
        .collect();
    lint::check(src, &m, &slots, &derivers, &mut errs);
    names::check(src, &m, &mut errs);

    if !errs.is_empty() {
        return Err(errs.finish());
    }
    // What each dependency's kind contributes: its dashboard row and its
    // alerts, from here on like declared ones.
    let mut m = m;
    let declared: std::collections::HashSet<String> =
        m.alerts.iter().map(|a| a.name.clone()).collect();
    for (i, (d, p)) in m.dependencies.clone().iter().zip(&deps_out).enumerate() {
        let Some(p) = p else { continue };
        m.dashboard.panels.extend(p.panels(d));
        for a in p.alerts(d, &m) {
            if declared.contains(&a.name) {
                errs.push(src.error(
                    &format!("dependencies[{i}].name"),
                    format!(
                        "its derived alert {} has the name of an alert in `alerts:`",
                        a.name
                    ),
                ));
            }
            m.alerts.push(a);
        }
    }
    if !errs.is_empty() {
        return Err(errs.finish());
    }
    Ok(Model {
        manifest: m,
        source,
        handlers: handlers_out,
        sources: sources_out,
        datasource,
        budget,
        statuses,
        identity: registry.identity().clone(),
        middleware: registry.middleware().to_vec(),
        dependencies: deps_out.into_iter().flatten().collect(),
    })
}

fn check_port(src: &Source, path: &str, port: i64, errs: &mut Diagnostics) {
    if !(1..=65535).contains(&port) {
        errs.push(src.error(path, format!("port {port} is out of range (1-65535)")));
    }
}

fn check_service(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
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

fn check_routes(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
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
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| format!("{} is not a valid path", p.display()))?;
        // SAFETY: a valid NUL-terminated path; access(2) reads nothing else.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let e = std::io::Error::last_os_error();
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

fn check_metrics(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
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

fn check_logging(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
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

fn check_objectives(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
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

/// A DNS-1035 label: what a Kubernetes Service (and so every object
/// `render` names after the service) and a namespace may be called.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A Kubernetes quantity as resources take it: `100m`, `0.5`, `64Mi`, `1G`,
/// `1e3`.
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    // A decimal exponent (`1e3`), told from the exa suffix (`1E`, `1Ei`) by
    // the digits after it.
    if let Some(i) = s.find(['e', 'E']) {
        let exp = &s[i + 1..];
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if !exp.is_empty() && exp.bytes().all(|c| c.is_ascii_digit()) {
            return is_quantity(&s[..i]) && s[..i].bytes().all(|c| c.is_ascii_digit() || c == b'.');
        }
    }
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let number = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit());
    number
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

/// A label key or value as Kubernetes takes it (`prefix/` aside): at most
/// 63 characters, alphanumeric at both ends, `-_.` inside; a value may be empty.
pub fn is_label_part(s: &str, empty_ok: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return empty_ok;
    }
    b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

fn check_kubernetes(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let k = &m.kubernetes;
    if !m.service.name.trim().is_empty() && !is_dns_label(&m.service.name) {
        errs.push(src.error(
            "service.name",
            format!(
                "{:?} cannot name the Kubernetes objects render writes: use at most 63 lower-case letters, digits and '-', starting with a letter",
                m.service.name
            ),
        ));
    }
    for (field, ns) in [
        ("namespace", &k.namespace),
        ("monitoring_namespace", &k.monitoring_namespace),
    ] {
        if !is_dns_label(ns) {
            errs.push(src.error(
                &format!("kubernetes.{field}"),
                format!("{ns:?} is not a namespace name (at most 63 lower-case letters, digits and '-', starting with a letter)"),
            ));
        }
    }
    if let Some(image) = &k.image {
        if image.is_empty() || image.contains(char::is_whitespace) {
            errs.push(src.error(
                "kubernetes.image",
                format!("{image:?} is not an image reference"),
            ));
        }
    }
    if !["Always", "IfNotPresent", "Never"].contains(&k.image_pull_policy.as_str()) {
        errs.push(src.error(
            "kubernetes.image_pull_policy",
            format!(
                "{:?}: use Always, IfNotPresent or Never",
                k.image_pull_policy
            ),
        ));
    }
    if !(1..=1000).contains(&k.replicas) {
        errs.push(src.error(
            "kubernetes.replicas",
            format!("{} is out of range (1-1000)", k.replicas),
        ));
    }
    let r = &k.resources;
    for (kind, q) in [("requests", &r.requests), ("limits", &r.limits)] {
        for (name, v) in [("cpu", &q.cpu), ("memory", &q.memory)] {
            if let Some(v) = v.as_deref().filter(|v| !is_quantity(v)) {
                errs.push(src.error(
                    &format!("kubernetes.resources.{kind}.{name}"),
                    format!("{v:?} is not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1Gi)"),
                ));
            }
        }
    }
    for (key, value) in &k.selector_labels {
        let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
        let prefix_ok = prefix.is_empty()
            || (prefix.len() <= 253
                && prefix
                    .split('.')
                    .all(|p| is_label_part(p, false) && !p.contains('_')));
        if !prefix_ok || !is_label_part(name, false) || !is_label_part(value, true) {
            errs.push(src.error(
                &format!("kubernetes.selector_labels.{key}"),
                format!("{key:?}: {value:?} is not a Kubernetes label (at most 63 characters each, alphanumeric at both ends, '-', '_' or '.' inside)"),
            ));
        }
    }
    // Alloy's receiver listens on the URL's port, without TLS; the pods'
    // exporter appends `/v1/traces` to it.
    let otlp = k.otlp_url.url();
    let plain = otlp.as_ref().is_some_and(|u| {
        u.scheme() == "http" && u.port().is_some() && u.path() == "/" && u.query().is_none()
    });
    if !plain {
        errs.push(src.error(
            "kubernetes.otlp_url",
            format!(
                "{:?}: Alloy's OTLP receiver is plain HTTP on a port of its own: give \
                 `http://<service>:<port>` with no path (e.g. http://alloy.monitoring.svc:4318)",
                k.otlp_url.as_str()
            ),
        ));
    }
    k8s_env::check(src, m, errs);
}

fn check_discovery(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let d = &m.stack.discovery;
    let at = |f: &str| format!("stack.discovery.{f}");
    let dns = d.kind == DiscoveryKind::Dns;
    if dns {
        if d.names.is_empty() {
            errs.push(src.error(&at("type"), "dns discovery needs `names` to query"));
        }
        if !d.targets.is_empty() {
            errs.push(src.error(&at("targets"), "dns discovery takes `names`, not `targets`"));
        }
        if d.record == DnsRecord::Srv && d.port.is_some() {
            errs.push(src.error(
                &at("port"),
                "an SRV record carries its port; `port` is for A and AAAA",
            ));
        }
    } else {
        if !d.names.is_empty() {
            errs.push(src.error(&at("names"), "`names` is for dns discovery"));
        }
        if d.port.is_some() {
            errs.push(src.error(
                &at("port"),
                "`port` is for dns discovery (A and AAAA records)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in d.targets.iter().enumerate() {
            let p = format!("stack.discovery.targets[{i}]");
            if !seen.insert(t.as_str()) {
                errs.push(src.error(
                    &p,
                    format!("{t:?} is listed twice (one instance, one target)"),
                ));
            }
        }
    }
    if let Some(p) = d.port {
        check_port(src, &at("port"), p, errs);
    }
    if d.refresh_interval.is_zero() {
        errs.push(src.error(&at("refresh_interval"), "must be longer than 0s"));
    }
}

fn check_stack(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let s = &m.stack;
    for (name, c) in [
        ("prometheus", &s.prometheus),
        ("loki", &s.loki),
        ("promtail", &s.promtail),
        ("alloy", &s.alloy),
        ("grafana", &s.grafana),
        ("tempo", &s.tempo),
    ] {
        check_port(src, &format!("stack.{name}.port"), c.port, errs);
        if !c.image.contains(':') || c.image.ends_with(":latest") {
            errs.push(src.error(
                &format!("stack.{name}.image"),
                format!("image {:?} must be pinned to a tag (not :latest)", c.image),
            ));
        }
    }
    for (f, v) in [
        ("scrape_interval", &s.scrape_interval),
        ("evaluation_interval", &s.evaluation_interval),
    ] {
        if v.is_zero() {
            errs.push(src.error(&format!("stack.{f}"), "must be longer than 0s"));
        }
    }
    // Prometheus refuses two scrape configs with one job_name.
    let mut jobs: std::collections::HashMap<&str, String> =
        std::collections::HashMap::from([(m.service.name.as_str(), "service.name".to_string())]);
    for (i, t) in s.extra_targets.iter().enumerate() {
        let at = format!("stack.extra_targets[{i}].job");
        if t.job.trim().is_empty() {
            errs.push(src.error(&at, "a job name is required"));
        } else if let Some(first) = jobs.get(t.job.as_str()) {
            errs.push(src.error(
                &at,
                format!(
                    "job {:?} is already the job of {first}: Prometheus refuses two scrape configs with one job_name",
                    t.job
                ),
            ));
        } else {
            jobs.insert(&t.job, format!("stack.extra_targets[{i}]"));
        }
    }
    check_discovery(src, m, errs);
    let mut names = HashSet::new();
    for (i, w) in s.remote_write.iter().enumerate() {
        if let Some(n) = &w.name {
            if n.trim().is_empty() || !names.insert(n.as_str()) {
                errs.push(src.error(
                    &format!("stack.remote_write[{i}].name"),
                    format!("remote_write names must be unique and not empty ({n:?})"),
                ));
            }
        }
    }
    let uids = [
        &s.datasources.prometheus,
        &s.datasources.loki,
        &s.datasources.json,
        &s.datasources.tempo,
    ];
    if uids.iter().collect::<HashSet<_>>().len() != uids.len() {
        errs.push(src.error("stack.datasources", "datasource uids must be distinct"));
    }
    check_traces_stack(src, m, errs);
}

/// Tempo's ports and retention, and the host ports compose publishes.
fn check_traces_stack(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let s = &m.stack;
    check_port(src, "stack.otlp.http", s.otlp.http, errs);
    check_port(src, "stack.otlp.grpc", s.otlp.grpc, errs);
    // One Tempo container listens on all of these, and on its own gRPC
    // server's port.
    let mut tempo: Vec<(&str, i64)> = vec![("Tempo's internal gRPC server", TEMPO_GRPC_PORT)];
    for (at, port) in [
        ("stack.tempo.port", s.tempo.port),
        ("stack.otlp.http", s.otlp.http),
        ("stack.otlp.grpc", s.otlp.grpc),
    ] {
        if let Some((other, _)) = tempo.iter().find(|(_, p)| *p == port) {
            errs.push(src.error(
                at,
                format!("port {port} is already {other}'s in the Tempo container"),
            ));
        }
        tempo.push((at, port));
    }
    // The ports compose publishes on the host, and the service's own.
    let shipper = match s.shipper {
        Shipper::Alloy => ("stack.alloy.port", s.alloy.port),
        Shipper::Promtail => ("stack.promtail.port", s.promtail.port),
    };
    let mut host: Vec<(&str, i64)> = vec![("service.port", m.service.port)];
    for (at, port) in [
        ("stack.prometheus.port", s.prometheus.port),
        ("stack.loki.port", s.loki.port),
        shipper,
        ("stack.grafana.port", s.grafana.port),
        ("stack.tempo.port", s.tempo.port),
        ("stack.otlp.http", s.otlp.http),
    ] {
        if let Some((other, _)) = host.iter().find(|(_, p)| *p == port) {
            errs.push(src.error(
                at,
                format!(
                    "port {port} is already {other}: docker-compose publishes both on the host"
                ),
            ));
        }
        host.push((at, port));
    }
    let retention = s.traces_retention.get();
    if retention < std::time::Duration::from_secs(3600) || retention.subsec_nanos() != 0 {
        errs.push(src.error(
            "stack.traces_retention",
            "must be at least 1h, in whole seconds",
        ));
    }
}

/// The port of Tempo's own gRPC server (`server.grpc_listen_port`, its
/// default), which the rendered config keeps.
pub const TEMPO_GRPC_PORT: i64 = 9095;

#[cfg(test)]
mod kubernetes_names {
    use super::{is_dns_label, is_label_part, is_quantity};

    #[test]
    fn quantities_and_names_as_kubernetes_takes_them() {
        for q in [
            "100m", "0.5", "1", "64Mi", "1Gi", "1G", "1E", "2Ei", "1e3", "1.5E+2", "+1",
        ] {
            assert!(is_quantity(q), "{q}");
        }
        for q in [
            "", "256 MB", "1MB", "m", ".", "1..2", "1e", "1e3Mi", "-1", "ten",
        ] {
            assert!(!is_quantity(q), "{q}");
        }
        for n in ["shop", "ecommerce-api", "a1"] {
            assert!(is_dns_label(n), "{n}");
        }
        for n in [
            "",
            "Shop",
            "1shop",
            "shop-",
            "shop_api",
            "shop.api",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_label(n), "{n}");
        }
        assert!(is_label_part("1.0.0", false) && is_label_part("", true));
        assert!(!is_label_part("1.0+b", false) && !is_label_part("", false));
    }
}
