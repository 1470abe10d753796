//! `prometheus/prometheus.yml`: intervals, rule files, Alertmanager, scrape jobs.

use crate::render::{stack, Ctx};
use serde_json::json;

pub struct Target;

const PATH: &str = "prometheus/prometheus.yml";

impl super::RenderTarget for Target {
    fn name(&self) -> &'static str {
        "prometheus-config"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/prometheus/prometheus.yml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        let mut jobs = vec![json!({
            "job": stack::service_job(m),
            "targets": [stack::service_target(m)],
            "sample_limit": ctx.model.budget.sample_limit(),
        })];
        for t in &m.stack.extra_targets {
            jobs.push(json!({ "job": t.job, "targets": t.targets }));
        }
        let text = ctx.render(
            PATH,
            json!({
                "scrape_interval": m.stack.scrape_interval,
                "evaluation_interval": m.stack.evaluation_interval,
                "service": m.service.name,
                "rule_files": ["alerts.yml"],
                "alertmanager": m.stack.alertmanager,
                "jobs": jobs,
            }),
        )?;
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}
