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
mod checks;
pub mod contrib;
pub mod data;
pub mod datasource;
pub mod dependencies;
pub mod dependency_row;
mod dependency_runtime;
mod deploy_checks;
pub mod exemplars;
pub mod k8s_env;
pub mod kinds;
pub mod lint;
pub mod logql;
pub mod names;
mod prepare;
pub mod promql;
mod registry;
pub mod traces;

use checks::*;
use deploy_checks::*;
pub use deploy_checks::{is_label_part, TEMPO_GRPC_PORT};
pub use registry::{Identity, KindRegistry, Resources};

/// The git commit telltale was built from (`build.rs`), for `build_info`.
pub const COMMIT: &str = env!("TELLTALE_COMMIT");

use crate::manifest::*;
use kinds::{PreparedHandler, PreparedSource};
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

    // Plugins: each kind validates its own options and loads its data.
    // Dependencies first (handlers' setup asks for their clients), then the
    // metric sources (handlers' setup asks for the app metrics).
    let deps_out = prepare::dependencies(src, &m, registry, &mut errs);
    let slots = prepare::sources(src, &m, registry, previous, &mut errs);
    let sources_out: Vec<Arc<dyn PreparedSource>> = slots.iter().flatten().cloned().collect();

    // Before the handlers: the datasource's routes document its targets.
    let datasource = datasource::prepare(src, &m, &slots, &mut errs).unwrap_or_default();
    let apps =
        app_metrics::AppFamilies::new(sources_out.iter().filter_map(|s| s.app_family()).collect());
    let plugins = prepare::Prepared {
        apps: &apps,
        datasource: &datasource,
        dependencies: &deps_out,
    };
    let (handlers_out, endpoint_roles) = prepare::handlers(src, &m, registry, &plugins, &mut errs);
    let roles: Vec<&[contrib::Role]> = endpoint_roles.iter().map(Vec::as_slice).collect();
    k8s_env::check_credentials(src, &m, &roles, &mut errs);

    // The series budget, once every handler and source is prepared.
    let (budget, statuses) =
        prepare::series_budget(src, &m, &handlers_out, &sources_out, &mut errs);

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
    let m = prepare::with_dependency_contributions(src, m, &deps_out, &mut errs);
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
