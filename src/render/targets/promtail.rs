//! `promtail/promtail.yml`: tail the rotated JSON logs, label them, push to Loki.

use crate::render::{stack, Ctx};
use serde_json::json;

pub struct PromtailTarget;

const PATH: &str = "promtail/promtail.yml";

impl super::RenderTarget for PromtailTarget {
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
        let mut data = super::log_pipeline(ctx, &stack::loki_push_url(m));
        data["port"] = json!(m.stack.promtail.port);
        data["job"] = json!(stack::service_job(m));
        data["path"] = json!(stack::log_path_glob(m));
        let text = ctx.render(PATH, data)?;
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}
