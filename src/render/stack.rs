//! Names and addresses inside the rendered stack, derived once from the
//! manifest so that every file refers to the same ones.

use crate::manifest::Manifest;
#[cfg(any(test, feature = "internals"))]
use crate::manifest::Shipper;
use crate::model::k8s_env::{self, Located, Presented};
use crate::model::Model;

/// docker-compose service names (also their host names on the network).
pub const PROMETHEUS: &str = "prometheus";
pub const LOKI: &str = "loki";
pub const GRAFANA: &str = "grafana";
pub const TEMPO: &str = "tempo";

/// Where the shipper container sees the service's log directory.
pub const LOG_MOUNT: &str = "/var/log/telltale";
/// Where Grafana reads the provisioned dashboards.
pub const DASHBOARDS_MOUNT: &str = "/var/lib/grafana/dashboards";

/// The compose service name of the chosen log shipper.
#[cfg(any(test, feature = "internals"))]
pub fn shipper_name(m: &Manifest) -> &'static str {
    match m.stack.shipper {
        Shipper::Alloy => "alloy",
        Shipper::Promtail => "promtail",
    }
}

/// The directory of the service's file_sd files, relative to
/// prometheus.yml: render writes `telltale.yml` there; Prometheus reads
/// every `*.yml` in it.
pub fn file_sd_dir(m: &Manifest) -> String {
    let dir: String = service_job(m)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("targets/{dir}")
}

/// Prometheus job name of the service.
pub fn service_job(m: &Manifest) -> &str {
    &m.service.name
}

pub fn prometheus_url(m: &Manifest) -> String {
    format!("http://{PROMETHEUS}:{}", m.stack.prometheus.port)
}

pub fn loki_url(m: &Manifest) -> String {
    format!("http://{LOKI}:{}", m.stack.loki.port)
}

/// Tempo's HTTP API (Grafana's Tempo datasource).
pub fn tempo_url(m: &Manifest) -> String {
    format!("http://{TEMPO}:{}", m.stack.tempo.port)
}

/// Where Tempo's container keeps its WAL and blocks (a named volume; the
/// image creates it owned by Tempo's user).
pub const TEMPO_DATA: &str = "/var/tempo";

/// Loki's push endpoint, for both shippers.
pub fn loki_push_url(m: &Manifest) -> String {
    format!("{}/loki/api/v1/push", loki_url(m))
}

/// The service's JSON-datasource API, as Grafana's container reaches it.
pub fn json_datasource_url(m: &Manifest) -> String {
    format!("http://{}/grafana", m.scrape_target())
}

/// Glob of the rotated log files, as the shipper container sees them.
pub fn log_path_glob(m: &Manifest) -> String {
    format!("{LOG_MOUNT}/{}", m.logging.file_glob())
}

/// Where compose mounts a container's secrets.
pub const SECRETS_MOUNT: &str = "/run/secrets";

/// A credential the stack presents to the service (see
/// [`crate::model::k8s_env`]), and the compose secret that holds it.
#[derive(Debug, Clone)]
pub struct Credential<'a> {
    pub presented: Presented<'a>,
    /// The compose secret's name (`[A-Za-z0-9_.-]`, from the scheme's).
    pub secret: String,
}

impl Credential<'_> {
    /// Where a compose container reads it.
    pub fn file(&self) -> String {
        format!("{SECRETS_MOUNT}/{}", self.secret)
    }
}

/// What the stack presents: Prometheus to scrape `/metrics`, Grafana's
/// JSON datasource to the `grafana_json` endpoints (`None`: open).
#[derive(Debug, Clone, Default)]
pub struct Credentials<'a> {
    pub scrape: Option<Credential<'a>>,
    pub grafana: Option<Credential<'a>>,
}

/// The stack's credentials (validation has made sure they exist).
pub fn credentials(model: &Model) -> Result<Credentials<'_>, String> {
    let m = &model.manifest;
    let roles = model.endpoint_roles();
    let located = |(at, msg): Located| format!("{at}: {msg}");
    let name = |p: &Presented| {
        let safe: String = p
            .scheme
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || "_.-".contains(c) {
                true => c,
                false => '_',
            })
            .collect();
        format!("auth-{safe}")
    };
    let scrape = k8s_env::scrape_credential(m, &roles)
        .map_err(located)?
        .map(|p| Credential {
            secret: name(&p),
            presented: p,
        });
    let grafana = k8s_env::grafana_credential(m, &roles)
        .map_err(located)?
        .map(|p| {
            let mut secret = name(&p);
            // Two schemes whose names differ only where `_` was put.
            if scrape
                .as_ref()
                .is_some_and(|s| s.secret == secret && s.presented.scheme != p.scheme)
            {
                secret.push_str("-grafana");
            }
            Credential {
                secret,
                presented: p,
            }
        });
    Ok(Credentials { scrape, grafana })
}
