//! `promtail/promtail.yml`: tail the rotated JSON logs, label them, push to Loki.

use crate::render::{stack, Ctx};
use serde_json::json;

pub struct Target;

const PATH: &str = "promtail/promtail.yml";

impl super::RenderTarget for Target {
    fn name(&self) -> &'static str {
        "promtail"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/promtail/promtail.yml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        let text = ctx.render(
            PATH,
            json!({
                "port": m.stack.promtail.port,
                "push_url": stack::loki_push_url(m),
                "job": stack::service_job(m),
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
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}
