//! `prometheus/alerts.yml`: SLO recording rules and every alert (see [`crate::render::rules`]).

use crate::render::{rules, Ctx};
use serde_json::json;

pub struct PrometheusRulesTarget;

const PATH: &str = "prometheus/alerts.yml";

impl super::RenderTarget for PrometheusRulesTarget {
    fn name(&self) -> &'static str {
        "prometheus-rules"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/prometheus/alerts.yml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        Ok(vec![(PATH.into(), render_text(ctx)?)])
    }
}

/// alerts.yml as render writes it (the PrometheusRule carries its groups).
pub fn render_text(ctx: &Ctx) -> Result<String, String> {
    let set = rules::build(ctx.model)?;
    let text = ctx.render(PATH, json!({ "groups": set.groups }))?;
    super::check_yaml(PATH, &text)?;
    Ok(text)
}
