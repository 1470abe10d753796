//! Names and addresses inside the rendered stack, derived once from the
//! manifest so that every file refers to the same ones.

use crate::manifest::{Manifest, Shipper};

/// docker-compose service names (also their host names on the network).
pub const PROMETHEUS: &str = "prometheus";
pub const LOKI: &str = "loki";
pub const GRAFANA: &str = "grafana";

/// Where the shipper container sees the service's log directory.
pub const LOG_MOUNT: &str = "/var/log/telltale";
/// Where Grafana reads the provisioned dashboards.
pub const DASHBOARDS_MOUNT: &str = "/var/lib/grafana/dashboards";

/// The compose service name of the chosen log shipper.
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
