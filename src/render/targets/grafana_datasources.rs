//! `grafana/provisioning/datasources/datasources.yml`: Prometheus, Loki and
//! the service's JSON datasource, with uids pinned from `stack.datasources`.

use crate::render::{stack, Ctx};
use serde_json::json;

pub struct Target;

const PATH: &str = "grafana/provisioning/datasources/datasources.yml";

impl super::RenderTarget for Target {
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
        let ds = &m.stack.datasources;
        let text = ctx.render(
            PATH,
            json!({
                "prometheus": { "uid": ds.prometheus, "url": stack::prometheus_url(m),
                                "time_interval": m.stack.scrape_interval },
                "loki": { "uid": ds.loki, "url": stack::loki_url(m),
                          "derived_fields": [crate::render::links::request_id_field(m)] },
                "json": { "uid": ds.json, "url": stack::json_datasource_url(m),
                          "name": format!("{} JSON", m.service.name) },
            }),
        )?;
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}
