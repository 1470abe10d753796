//! Who writes the log: `"service"` and `"instance"` on every JSON line, so
//! that the lines of many replicas can be told apart (and become the Loki
//! labels `service_name` and `instance`, which the replica count bounds).
//!
//! The instance is `TELLTALE_INSTANCE` when set (e.g. the address
//! Prometheus scrapes, so that one dashboard filter selects both), else
//! `POD_NAME` (the rendered Kubernetes Deployment sets it from the pod's
//! name), else the one scrape target the manifest declares with the bound
//! port (what Prometheus calls this instance), else `<host name>:<port>`.

use arc_swap::ArcSwap;
use std::sync::{Arc, LazyLock};

/// The rendered `,"service":…,"instance":…` pair (empty until `set`).
static FIELDS: LazyLock<ArcSwap<String>> = LazyLock::new(|| ArcSwap::from_pointee(String::new()));

/// Appends the identity fields to a JSON line.
pub(super) fn push(line: &mut String) {
    line.push_str(&FIELDS.load());
}

/// The instance name for a server listening on `port`, given the scrape
/// targets (`host:port`) the manifest declares.
pub fn instance(port: u16, declared: &[String]) -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    env("TELLTALE_INSTANCE")
        .or_else(|| env("POD_NAME"))
        .or_else(|| declared_with_port(port, declared))
        .unwrap_or_else(|| format!("{}:{port}", host_name()))
}

/// The one declared target on `port`; none when no target or several have it.
fn declared_with_port(port: u16, declared: &[String]) -> Option<String> {
    let port = port.to_string();
    let mut on_port = declared
        .iter()
        .filter(|t| t.rsplit_once(':').is_some_and(|(_, p)| p == port));
    match (on_port.next(), on_port.next()) {
        (Some(t), None) => Some(t.clone()),
        _ => None,
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Names the service and instance of every line from now on.
pub fn set(service: &str, instance: &str) {
    let mut s = String::with_capacity(32 + service.len() + instance.len());
    s.push_str(",\"service\":");
    super::layer::push_json_str(&mut s, service);
    s.push_str(",\"instance\":");
    super::layer::push_json_str(&mut s, instance);
    FIELDS.store(Arc::new(s));
}

#[cfg(test)]
mod tests {
    use super::declared_with_port;

    #[test]
    fn the_declared_target_is_the_instance_only_when_its_port_is_unique() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one = t(&["host.docker.internal:8001", "host.docker.internal:8002"]);
        assert_eq!(
            declared_with_port(8002, &one).as_deref(),
            Some("host.docker.internal:8002")
        );
        assert_eq!(declared_with_port(18002, &one), None);
        assert_eq!(declared_with_port(8001, &t(&["a:8001", "b:8001"])), None);
        assert_eq!(declared_with_port(8001, &[]), None);
    }
}
