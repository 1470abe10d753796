//! `prometheus/prometheus.yml`: intervals, rule files, Alertmanager, remote
//! write, scrape jobs; and with `discovery.type: file`, the file_sd file
//! `prometheus/targets/<job>/telltale.yml`.

use crate::manifest::{DiscoveryKind, DnsRecord};
use crate::render::{stack, Ctx};
use serde_json::json;

pub struct PrometheusConfigTarget;

const PATH: &str = "prometheus/prometheus.yml";
const TARGETS: &str = "prometheus/targets.yml";

impl super::RenderTarget for PrometheusConfigTarget {
    fn name(&self) -> &'static str {
        "prometheus-config"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                PATH,
                include_str!("../../../templates/prometheus/prometheus.yml.hbs"),
            ),
            (
                TARGETS,
                include_str!("../../../templates/prometheus/targets.yml.hbs"),
            ),
        ]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        let d = &m.stack.discovery;
        let job = stack::service_job(m);
        let targets = m.scrape_targets();
        let mut files = Vec::new();
        let discovery = match d.kind {
            DiscoveryKind::Static => json!({ "static": targets }),
            DiscoveryKind::File => {
                let dir = stack::file_sd_dir(m);
                let file = format!("{dir}/telltale.yml");
                let text = ctx.render(
                    TARGETS,
                    json!({ "job": job, "targets": targets, "refresh_interval": d.refresh_interval }),
                )?;
                super::check_yaml(&file, &text)?;
                files.push((format!("prometheus/{file}"), text));
                json!({
                    "file": format!("{dir}/*.yml"),
                    "refresh_interval": d.refresh_interval,
                })
            }
            DiscoveryKind::Dns => json!({
                "dns": {
                    "names": d.names,
                    "type": d.record.as_str(),
                    "port": (d.record != DnsRecord::Srv)
                        .then(|| d.port.unwrap_or(m.service.port)),
                    "refresh_interval": d.refresh_interval,
                }
            }),
        };
        // The scrape token, from the secret docker-compose mounts (its
        // name only: Prometheus reads the file).
        let authorization = stack::credentials(ctx.model)?
            .scrape
            .map(|c| json!({ "scheme": c.presented.scheme, "credentials_file": c.file() }));
        let mut jobs = vec![json!({
            "job": job,
            "discovery": discovery,
            "sample_limit": ctx.model.budget.sample_limit(),
            "authorization": authorization,
        })];
        for t in &m.stack.extra_targets {
            jobs.push(json!({ "job": t.job, "discovery": { "static": t.targets } }));
        }
        let text = ctx.render(
            PATH,
            json!({
                "scrape_interval": m.stack.scrape_interval,
                "evaluation_interval": m.stack.evaluation_interval,
                "service": m.service.name,
                "rule_files": ["alerts.yml"],
                "alertmanager": m.stack.alertmanager,
                "remote_write": m.stack.remote_write,
                "jobs": jobs,
            }),
        )?;
        super::check_yaml(PATH, &text)?;
        files.insert(0, (PATH.into(), text));
        Ok(files)
    }
}
