//! Who writes the log: `"service"` and `"instance"` on every JSON line, so
//! that the lines of many replicas can be told apart (and become the Loki
//! labels `service_name` and `instance`, which the replica count bounds).
//!
//! The instance is `TELLTALE_INSTANCE` when set (e.g. the address
//! Prometheus scrapes, so that one dashboard filter selects both), else
//! `POD_NAME` (the rendered Kubernetes Deployment sets it from the pod's
//! name), else `<host name>:<port>`.

use arc_swap::ArcSwap;
use std::sync::{Arc, LazyLock};

/// The rendered `,"service":…,"instance":…` pair (empty until `set`).
static FIELDS: LazyLock<ArcSwap<String>> = LazyLock::new(|| ArcSwap::from_pointee(String::new()));

/// Appends the identity fields to a JSON line.
pub(super) fn push(line: &mut String) {
    line.push_str(&FIELDS.load());
}

/// The instance name for a server listening on `port`.
pub fn instance(port: u16) -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    env("TELLTALE_INSTANCE")
        .or_else(|| env("POD_NAME"))
        .unwrap_or_else(|| format!("{}:{port}", host_name()))
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
