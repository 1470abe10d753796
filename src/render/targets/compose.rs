//! `docker-compose.yml`: Prometheus, Loki, the chosen log shipper, Tempo
//! and Grafana.
//!
//! The service, on the host, exports its spans straight to Tempo's
//! published OTLP/HTTP port rather than through Alloy: one hop less, and
//! the same with either shipper (Promtail has no OTLP receiver).
//!
//! Paths are relative to the output directory (compose resolves them against
//! the file's own directory). Grafana's admin password is never written here:
//! it comes from the git-ignored env file `render` creates beside it.

use crate::manifest::{SecretRef, Shipper, Stack};
use crate::render::{stack, Ctx, ADMIN_ENV_FILE};
use serde_json::json;

pub struct ComposeTarget;

const PATH: &str = "docker-compose.yml";

impl super::RenderTarget for ComposeTarget {
    fn name(&self) -> &'static str {
        "docker-compose"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/compose/docker-compose.yml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        let s = &m.stack;
        let shipper = shipper(s);
        // What the dependencies' kinds add: a database to develop against.
        let mut volumes = Vec::new();
        let dependencies = dependencies(ctx, &mut volumes);
        volumes.extend([
            "grafana-data".to_string(),
            "loki-data".into(),
            "prometheus-data".into(),
            "tempo-data".into(),
            shipper["volume"].as_str().unwrap_or_default().to_string(),
        ]);
        volumes.sort();
        let (bind, bind_grafana) = (s.publish.address(), s.publish_grafana.address());
        let publish = |port: i64, bind: &str| format!("{bind}:{port}:{port}");
        let mut shipper = shipper;
        let shipper_port = shipper["port"].as_i64().unwrap_or_default();
        shipper["publish"] = json!(publish(shipper_port, bind));
        // The secrets the stack presents to the service, by reference:
        // compose reads each from a variable or a file where it runs.
        let creds = stack::credentials(ctx.model)?;
        let secrets = secrets(ctx, &creds);
        let mounted =
            |c: &Option<stack::Credential>| c.iter().map(|c| c.secret.clone()).collect::<Vec<_>>();
        let text = ctx.render(
            PATH,
            json!({
                "project": format!("{}-monitoring", m.service.name),
                "network": s.network,
                "prometheus": { "name": stack::PROMETHEUS, "image": s.prometheus.image, "port": s.prometheus.port,
                    "publish": publish(s.prometheus.port, bind), "secrets": mounted(&creds.scrape) },
                "loki": { "name": stack::LOKI, "image": s.loki.image, "port": s.loki.port,
                    "publish": publish(s.loki.port, bind) },
                "tempo": { "name": stack::TEMPO, "image": s.tempo.image,
                    "otlp_http": s.otlp.http,
                    "publish": publish(s.tempo.port, bind),
                    "publish_otlp": publish(s.otlp.http, bind),
                    "data": format!("tempo-data:{}", stack::TEMPO_DATA) },
                "grafana": { "name": stack::GRAFANA, "image": s.grafana.image, "port": s.grafana.port,
                    "publish": publish(s.grafana.port, bind_grafana), "secrets": mounted(&creds.grafana) },
                "secrets": secrets,
                "shipper": shipper,
                "log_volume": format!("{}:{}:ro", ctx.log_dir_from_out, stack::LOG_MOUNT),
                "dashboards_volume": format!("./grafana/dashboards:{}:ro", stack::DASHBOARDS_MOUNT),
                "admin_env": ADMIN_ENV_FILE,
                "volumes": volumes,
                "dependencies": dependencies,
            }),
        )?;
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}

/// The log shipper's service: Alloy or Promtail.
fn shipper(s: &Stack) -> serde_json::Value {
    match s.shipper {
        Shipper::Alloy => json!({
            "name": "alloy",
            "image": s.alloy.image,
            "port": s.alloy.port,
            "command": [
                "run",
                format!("--server.http.listen-addr=0.0.0.0:{}", s.alloy.port),
                "--storage.path=/var/lib/alloy/data",
                "/etc/alloy/config.alloy",
            ],
            "config": "./alloy/config.alloy:/etc/alloy/config.alloy:ro",
            "data": "alloy-data:/var/lib/alloy/data",
            "volume": "alloy-data",
        }),
        Shipper::Promtail => json!({
            "name": "promtail",
            "image": s.promtail.image,
            "port": s.promtail.port,
            "command": ["-config.file=/etc/promtail/promtail.yml"],
            "config": "./promtail/promtail.yml:/etc/promtail/promtail.yml:ro",
            "data": "promtail-positions:/var/lib/promtail",
            "volume": "promtail-positions",
        }),
    }
}

/// What the dependencies' kinds add: a database to develop against. Their
/// named volumes go to `volumes`.
fn dependencies(ctx: &Ctx, volumes: &mut Vec<String>) -> Vec<serde_json::Value> {
    let s = &ctx.model.manifest.stack;
    let mut dependencies = Vec::new();
    for (d, c) in crate::render::compose_services(ctx.model) {
        let mut mounts = Vec::new();
        if let Some((volume, path)) = &c.volume {
            volumes.push(volume.clone());
            mounts.push(format!("{volume}:{path}"));
        }
        let environment: serde_json::Map<String, serde_json::Value> = c
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        dependencies.push(json!({
            "dependency": d.name, "kind": d.kind, "name": c.name, "image": c.image,
            "secret_file": c.secret_file.as_ref().map(|(f, _)| f),
            "environment": environment,
            "ports": c.ports.iter().map(|p| format!("{}:{p}:{p}", s.publish.address())).collect::<Vec<_>>(),
            "volumes": mounts,
            "healthcheck": c.healthcheck.as_ref().map(|h| json!(["CMD-SHELL", h])),
        }));
    }
    dependencies
}

/// The secrets the stack presents to the service, by reference: compose
/// reads each from a variable or a file where it runs.
fn secrets(ctx: &Ctx, creds: &stack::Credentials) -> Vec<serde_json::Value> {
    let mut secrets: Vec<serde_json::Value> = Vec::new();
    for c in [&creds.scrape, &creds.grafana].into_iter().flatten() {
        if secrets.iter().any(|s| s["name"] == c.secret.as_str()) {
            continue;
        }
        let (environment, file) = match c.presented.keys {
            SecretRef::Env(var) => (Some(var.clone()), None),
            SecretRef::File(f) if std::path::Path::new(f).is_absolute() => (None, Some(f.clone())),
            SecretRef::File(f) => (None, Some(format!("{}/{f}", ctx.manifest_dir_from_out))),
        };
        secrets.push(json!({
            "name": c.secret, "scheme": c.presented.scheme,
            "environment": environment, "file": file,
        }));
    }
    secrets
}
