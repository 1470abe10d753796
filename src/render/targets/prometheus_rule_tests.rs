//! `prometheus/alerts.test.yml`: a promtool unit test per alert, firing and quiet.

use crate::render::{rules, Ctx};
use serde_json::json;

pub struct PrometheusRuleTestsTarget;

const PATH: &str = "prometheus/alerts.test.yml";

impl super::RenderTarget for PrometheusRuleTestsTarget {
    fn name(&self) -> &'static str {
        "prometheus-rule-tests"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/prometheus/alerts.test.yml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let set = rules::build(ctx.model)?;
        let text = ctx.render(
            PATH,
            json!({ "rule_files": ["alerts.yml"], "tests": set.tests }),
        )?;
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}
