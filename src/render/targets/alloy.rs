//! `alloy/config.alloy`: the Promtail pipeline for Grafana Alloy.

use crate::render::{stack, Ctx};
use serde_json::json;

pub struct Target;

const PATH: &str = "alloy/config.alloy";

impl super::RenderTarget for Target {
    fn name(&self) -> &'static str {
        "alloy"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/alloy/config.alloy.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        let text = ctx.render(
            PATH,
            json!({
                "push_url": stack::loki_push_url(m),
                "path": stack::log_path_glob(m),
                "fields": crate::manifest::shipped_fields(&m.logging),
                "labels": m.logging.labels,
                "identity": crate::manifest::LOKI_IDENTITY_LABELS
                    .iter()
                    .map(|(label, field)| json!({ "label": label, "field": field }))
                    .collect::<Vec<_>>(),
                "metadata": crate::manifest::LOKI_METADATA_FIELDS,
            }),
        )?;
        Ok(vec![(PATH.into(), text)])
    }
}
