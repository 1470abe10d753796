//! `grafana/provisioning/datasources/datasources.yml`: Prometheus, Loki,
//! Tempo and the service's JSON datasource, with uids pinned from
//! `stack.datasources`, linked to each other (exemplars and logged trace
//! ids to Tempo, spans to their logs and metrics; see [`links`]).

use crate::render::{links, stack, Ctx};
use serde_json::json;

pub struct GrafanaDatasourcesTarget;

const PATH: &str = "grafana/provisioning/datasources/datasources.yml";

impl super::RenderTarget for GrafanaDatasourcesTarget {
    fn name(&self) -> &'static str {
        "grafana-datasources"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/grafana/datasources.yml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        // The key is the secret docker-compose mounts; Grafana expands
        // `$__file{}` when it provisions.
        let json_auth = stack::credentials(ctx.model)?.grafana.map(|c| JsonAuth {
            scheme: c.presented.scheme.to_string(),
            header: c.presented.header.to_string(),
            value: c.presented.value(&format!("$__file{{{}}}", c.file())),
            note: None,
        });
        let urls = Urls {
            prometheus: stack::prometheus_url(m),
            loki: stack::loki_url(m),
            tempo: stack::tempo_url(m),
            json: stack::json_datasource_url(m),
            json_auth,
        };
        Ok(vec![(PATH.into(), render_with(ctx, &urls)?)])
    }
}

/// Where Grafana reaches each datasource.
pub struct Urls {
    pub prometheus: String,
    pub loki: String,
    pub tempo: String,
    pub json: String,
    /// The header the JSON datasource sends, when its endpoints require one.
    pub json_auth: Option<JsonAuth>,
}

/// The JSON datasource's credential: a header whose value Grafana expands
/// (`$__file{…}`, `$__env{…}`) when it provisions; never the key itself.
pub struct JsonAuth {
    /// The scheme it satisfies.
    pub scheme: String,
    pub header: String,
    pub value: String,
    /// What Grafana needs for `value` to expand (a comment in the file).
    pub note: Option<String>,
}

/// The provisioning file with these URLs (compose's, or the cluster's for
/// the Kubernetes ConfigMap).
pub fn render_with(ctx: &Ctx, urls: &Urls) -> Result<String, String> {
    let m = &ctx.model.manifest;
    let ds = &m.stack.datasources;
    let text = ctx.render(
        PATH,
        json!({
            "prometheus": { "uid": ds.prometheus, "url": urls.prometheus,
                            "time_interval": m.stack.scrape_interval,
                            "exemplars": links::exemplar_destinations(m) },
            "loki": { "uid": ds.loki, "url": urls.loki,
                      "derived_fields": [links::request_id_field(m), links::trace_id_field(m)] },
            "tempo": { "uid": ds.tempo, "url": urls.tempo,
                       "traces_to_logs": links::traces_to_logs(m),
                       "traces_to_metrics": links::traces_to_metrics(ctx.model) },
            "json": { "uid": ds.json, "url": urls.json,
                      "name": format!("{} JSON", m.service.name),
                      "auth": urls.json_auth.as_ref().map(|a| json!({
                          "scheme": a.scheme, "header": a.header, "value": a.value, "note": a.note,
                      })) },
        }),
    )?;
    super::check_yaml(PATH, &text)?;
    Ok(text)
}
