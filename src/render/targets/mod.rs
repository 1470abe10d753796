//! Render targets: one output (or a family of outputs) each.
//!
//! A target names its Handlebars templates (compiled in with `include_str!`)
//! and turns the [`Ctx`] into files. Adding one is a file here plus a line in
//! [`TARGETS`].

use super::Ctx;

mod alloy;
mod compose;
pub(crate) mod grafana_dashboard;
mod grafana_dashboard_provider;
mod grafana_datasources;
mod kubernetes;
mod manifest_schema;
mod prometheus_config;
mod prometheus_rule_tests;
mod prometheus_rules;
mod promtail;
pub(crate) mod tempo;

/// The registry: one line per target, in output order.
pub static TARGETS: &[&dyn RenderTarget] = &[
    &prometheus_config::PrometheusConfigTarget,
    &prometheus_rules::PrometheusRulesTarget,
    &prometheus_rule_tests::PrometheusRuleTestsTarget,
    &promtail::PromtailTarget,
    &alloy::AlloyTarget,
    &tempo::TempoTarget,
    &grafana_datasources::GrafanaDatasourcesTarget,
    &grafana_dashboard_provider::GrafanaDashboardProviderTarget,
    &grafana_dashboard::GrafanaDashboardTarget,
    &compose::ComposeTarget,
    &kubernetes::KubernetesTarget,
    &manifest_schema::ManifestSchemaTarget,
];

/// One kind of output file.
pub trait RenderTarget: Sync {
    /// Short name, used in error messages.
    fn name(&self) -> &'static str;
    /// `(template name, template text)` pairs this target renders.
    fn templates(&self) -> &'static [(&'static str, &'static str)];
    /// Relative path (with `/`) → contents.
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String>;
}

/// Parses rendered YAML back, so that a template bug is a render error
/// rather than a broken file on disk.
pub(crate) fn check_yaml(path: &str, text: &str) -> Result<(), String> {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .map(|_| ())
        .map_err(|e| format!("{path} is not valid YAML (template bug): {e}"))
}

/// What every log shipper's pipeline needs: the fields to extract, the
/// labels (declared, then identity), the structured metadata, and where
/// Loki is.
pub(crate) fn log_pipeline(ctx: &Ctx, push_url: &str) -> serde_json::Value {
    let l = &ctx.model.manifest.logging;
    serde_json::json!({
        "push_url": push_url,
        "fields": crate::manifest::shipped_fields(l),
        "labels": l.labels,
        "identity": crate::manifest::LOKI_IDENTITY_LABELS
            .iter()
            .map(|(label, field)| serde_json::json!({ "label": label, "field": field }))
            .collect::<Vec<_>>(),
        "metadata": crate::manifest::LOKI_METADATA_FIELDS,
        "cri": false,
    })
}

/// Lookup by name (for tests and tools).
#[cfg(any(test, feature = "internals"))]
pub fn lookup(name: &str) -> Option<&'static dyn RenderTarget> {
    TARGETS.iter().copied().find(|t| t.name() == name)
}
