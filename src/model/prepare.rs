//! The plugins' part of validation: each dependency, metric source and
//! handler prepared by its registered kind, then the series budget over
//! them and what the dependencies contribute to the dashboard and alerts.
//! Called in that order by [`super::validate_after`].

use super::kinds::{self, HandlerCtx, MetricCtx, PreparedHandler, PreparedSource};
use super::{app_metrics, budget, contrib, datasource, dependencies, lint, KindRegistry, Model};
use crate::manifest::{Diagnostics, Manifest, Source};
use std::sync::Arc;

/// One slot per `dependencies[i]`: `None` where it failed (still declared).
pub(super) type DependencySlots = Vec<Option<Arc<dyn dependencies::PreparedDependency>>>;

/// What the handlers' setup may ask for, prepared before them.
pub(super) struct Prepared<'a> {
    pub apps: &'a app_metrics::AppFamilies,
    pub datasource: &'a datasource::Spec,
    pub dependencies: &'a DependencySlots,
}

/// Each dependency prepared by its kind.
pub(super) fn dependencies(
    src: &Source,
    m: &Manifest,
    registry: &KindRegistry,
    errs: &mut Diagnostics,
) -> DependencySlots {
    let mut deps_out: DependencySlots = Vec::new();
    for (i, d) in m.dependencies.iter().enumerate() {
        let ctx = dependencies::DependencyCtx {
            index: i,
            dependency: d,
            manifest: m,
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
    deps_out
}

/// Each metric prepared by its source kind: one slot per metric, `None`
/// when its source is unknown or refused it.
pub(super) fn sources(
    src: &Source,
    m: &Manifest,
    registry: &KindRegistry,
    previous: Option<&Model>,
    errs: &mut Diagnostics,
) -> Vec<Option<Arc<dyn PreparedSource>>> {
    let mut slots: Vec<Option<Arc<dyn PreparedSource>>> = Vec::new();
    for (i, metric) in m.metrics.iter().enumerate() {
        let ctx = MetricCtx {
            index: i,
            metric,
            manifest: m,
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
                Ok(s) => Some(super::carried(previous, metric, s)),
                Err(e) => {
                    errs.extend(e);
                    None
                }
            },
        });
    }
    slots
}

/// Each endpoint prepared by its handler kind, with its roles (none when
/// its kind is unknown or refused it).
pub(super) fn handlers(
    src: &Source,
    m: &Manifest,
    registry: &KindRegistry,
    prepared: &Prepared<'_>,
    errs: &mut Diagnostics,
) -> (Vec<Arc<dyn PreparedHandler>>, Vec<Vec<contrib::Role>>) {
    let cache = kinds::Cache::default();
    let mut handlers_out = Vec::new();
    // Each endpoint's roles (none when its kind is unknown or refused it).
    let mut endpoint_roles: Vec<Vec<contrib::Role>> = Vec::new();
    for (i, ep) in m.endpoints.iter().enumerate() {
        let ctx = HandlerCtx {
            index: i,
            endpoint: ep,
            manifest: m,
            source: src,
            apps: prepared.apps,
            cache: &cache,
            datasource: prepared.datasource,
            registry,
            dependencies: prepared.dependencies,
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
    (handlers_out, endpoint_roles)
}

/// The series budget over every prepared handler and source (left empty
/// when one failed), checked against `service.series_limit`.
pub(super) fn series_budget(
    src: &Source,
    m: &Manifest,
    handlers_out: &[Arc<dyn PreparedHandler>],
    sources_out: &[Arc<dyn PreparedSource>],
    errs: &mut Diagnostics,
) -> (budget::Budget, budget::Statuses) {
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
        let (shape, s) = budget::http_shape(m, documented);
        statuses = s;
        for (metric, src) in m.metrics.iter().zip(sources_out) {
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
    (budget, statuses)
}

/// `m` with each dependency's dashboard row and derived alerts added; a
/// derived alert named like a declared one is an error.
pub(super) fn with_dependency_contributions(
    src: &Source,
    m: Manifest,
    deps_out: &DependencySlots,
    errs: &mut Diagnostics,
) -> Manifest {
    let mut m = m;
    let declared: std::collections::HashSet<String> =
        m.alerts.iter().map(|a| a.name.clone()).collect();
    for (i, (d, p)) in m.dependencies.clone().iter().zip(deps_out).enumerate() {
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
    m
}
