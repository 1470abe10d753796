//! `grafana/provisioning/dashboards/dashboards.yml`: a file provider for the rendered dashboards.

use crate::render::{stack, Ctx};
use serde_json::json;

pub struct GrafanaDashboardProviderTarget;

const PATH: &str = "grafana/provisioning/dashboards/dashboards.yml";

impl super::RenderTarget for GrafanaDashboardProviderTarget {
    fn name(&self) -> &'static str {
        "grafana-dashboard-provider"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/grafana/dashboards.yml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        let text = ctx.render(
            PATH,
            json!({ "name": m.service.name, "path": stack::DASHBOARDS_MOUNT }),
        )?;
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}
