//! The checks of what the manifest deploys: Kubernetes objects and their
//! names, service discovery, and the monitoring stack (Prometheus, Loki,
//! Grafana, Tempo), each pushing every error it finds.

use super::*;

/// A DNS-1035 label: what a Kubernetes Service (and so every object
/// `render` names after the service) and a namespace may be called.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A Kubernetes quantity as resources take it: `100m`, `0.5`, `64Mi`, `1G`,
/// `1e3`.
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    // A decimal exponent (`1e3`), told from the exa suffix (`1E`, `1Ei`) by
    // the digits after it.
    if let Some(i) = s.find(['e', 'E']) {
        let exp = &s[i + 1..];
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if !exp.is_empty() && exp.bytes().all(|c| c.is_ascii_digit()) {
            return is_quantity(&s[..i]) && s[..i].bytes().all(|c| c.is_ascii_digit() || c == b'.');
        }
    }
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let number = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit());
    number
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

/// A label key or value as Kubernetes takes it (`prefix/` aside): at most
/// 63 characters, alphanumeric at both ends, `-_.` inside; a value may be empty.
pub fn is_label_part(s: &str, empty_ok: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return empty_ok;
    }
    b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

pub(super) fn check_kubernetes(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let k = &m.kubernetes;
    if !m.service.name.trim().is_empty() && !is_dns_label(&m.service.name) {
        errs.push(src.error(
            "service.name",
            format!(
                "{:?} cannot name the Kubernetes objects render writes: use at most 63 lower-case letters, digits and '-', starting with a letter",
                m.service.name
            ),
        ));
    }
    for (field, ns) in [
        ("namespace", &k.namespace),
        ("monitoring_namespace", &k.monitoring_namespace),
    ] {
        if !is_dns_label(ns) {
            errs.push(src.error(
                &format!("kubernetes.{field}"),
                format!("{ns:?} is not a namespace name (at most 63 lower-case letters, digits and '-', starting with a letter)"),
            ));
        }
    }
    if let Some(image) = &k.image {
        if image.is_empty() || image.contains(char::is_whitespace) {
            errs.push(src.error(
                "kubernetes.image",
                format!("{image:?} is not an image reference"),
            ));
        }
    }
    if !["Always", "IfNotPresent", "Never"].contains(&k.image_pull_policy.as_str()) {
        errs.push(src.error(
            "kubernetes.image_pull_policy",
            format!(
                "{:?}: use Always, IfNotPresent or Never",
                k.image_pull_policy
            ),
        ));
    }
    if !(1..=1000).contains(&k.replicas) {
        errs.push(src.error(
            "kubernetes.replicas",
            format!("{} is out of range (1-1000)", k.replicas),
        ));
    }
    let r = &k.resources;
    for (kind, q) in [("requests", &r.requests), ("limits", &r.limits)] {
        for (name, v) in [("cpu", &q.cpu), ("memory", &q.memory)] {
            if let Some(v) = v.as_deref().filter(|v| !is_quantity(v)) {
                errs.push(src.error(
                    &format!("kubernetes.resources.{kind}.{name}"),
                    format!("{v:?} is not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1Gi)"),
                ));
            }
        }
    }
    for (key, value) in &k.selector_labels {
        let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
        let prefix_ok = prefix.is_empty()
            || (prefix.len() <= 253
                && prefix
                    .split('.')
                    .all(|p| is_label_part(p, false) && !p.contains('_')));
        if !prefix_ok || !is_label_part(name, false) || !is_label_part(value, true) {
            errs.push(src.error(
                &format!("kubernetes.selector_labels.{key}"),
                format!("{key:?}: {value:?} is not a Kubernetes label (at most 63 characters each, alphanumeric at both ends, '-', '_' or '.' inside)"),
            ));
        }
    }
    // Alloy's receiver listens on the URL's port, without TLS; the pods'
    // exporter appends `/v1/traces` to it.
    let otlp = k.otlp_url.url();
    let plain = otlp.as_ref().is_some_and(|u| {
        u.scheme() == "http" && u.port().is_some() && u.path() == "/" && u.query().is_none()
    });
    if !plain {
        errs.push(src.error(
            "kubernetes.otlp_url",
            format!(
                "{:?}: Alloy's OTLP receiver is plain HTTP on a port of its own: give \
                 `http://<service>:<port>` with no path (e.g. http://alloy.monitoring.svc:4318)",
                k.otlp_url.as_str()
            ),
        ));
    }
    k8s_env::check(src, m, errs);
}

fn check_discovery(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let d = &m.stack.discovery;
    let at = |f: &str| format!("stack.discovery.{f}");
    let dns = d.kind == DiscoveryKind::Dns;
    if dns {
        if d.names.is_empty() {
            errs.push(src.error(&at("type"), "dns discovery needs `names` to query"));
        }
        if !d.targets.is_empty() {
            errs.push(src.error(&at("targets"), "dns discovery takes `names`, not `targets`"));
        }
        if d.record == DnsRecord::Srv && d.port.is_some() {
            errs.push(src.error(
                &at("port"),
                "an SRV record carries its port; `port` is for A and AAAA",
            ));
        }
    } else {
        if !d.names.is_empty() {
            errs.push(src.error(&at("names"), "`names` is for dns discovery"));
        }
        if d.port.is_some() {
            errs.push(src.error(
                &at("port"),
                "`port` is for dns discovery (A and AAAA records)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in d.targets.iter().enumerate() {
            let p = format!("stack.discovery.targets[{i}]");
            if !seen.insert(t.as_str()) {
                errs.push(src.error(
                    &p,
                    format!("{t:?} is listed twice (one instance, one target)"),
                ));
            }
        }
    }
    if let Some(p) = d.port {
        check_port(src, &at("port"), p, errs);
    }
    if d.refresh_interval.is_zero() {
        errs.push(src.error(&at("refresh_interval"), "must be longer than 0s"));
    }
}

pub(super) fn check_stack(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let s = &m.stack;
    for (name, c) in [
        ("prometheus", &s.prometheus),
        ("loki", &s.loki),
        ("promtail", &s.promtail),
        ("alloy", &s.alloy),
        ("grafana", &s.grafana),
        ("tempo", &s.tempo),
    ] {
        check_port(src, &format!("stack.{name}.port"), c.port, errs);
        if !c.image.contains(':') || c.image.ends_with(":latest") {
            errs.push(src.error(
                &format!("stack.{name}.image"),
                format!("image {:?} must be pinned to a tag (not :latest)", c.image),
            ));
        }
    }
    for (f, v) in [
        ("scrape_interval", &s.scrape_interval),
        ("evaluation_interval", &s.evaluation_interval),
    ] {
        if v.is_zero() {
            errs.push(src.error(&format!("stack.{f}"), "must be longer than 0s"));
        }
    }
    // Prometheus refuses two scrape configs with one job_name.
    let mut jobs: std::collections::HashMap<&str, String> =
        std::collections::HashMap::from([(m.service.name.as_str(), "service.name".to_string())]);
    for (i, t) in s.extra_targets.iter().enumerate() {
        let at = format!("stack.extra_targets[{i}].job");
        if t.job.trim().is_empty() {
            errs.push(src.error(&at, "a job name is required"));
        } else if let Some(first) = jobs.get(t.job.as_str()) {
            errs.push(src.error(
                &at,
                format!(
                    "job {:?} is already the job of {first}: Prometheus refuses two scrape configs with one job_name",
                    t.job
                ),
            ));
        } else {
            jobs.insert(&t.job, format!("stack.extra_targets[{i}]"));
        }
    }
    check_discovery(src, m, errs);
    let mut names = HashSet::new();
    for (i, w) in s.remote_write.iter().enumerate() {
        if let Some(n) = &w.name {
            if n.trim().is_empty() || !names.insert(n.as_str()) {
                errs.push(src.error(
                    &format!("stack.remote_write[{i}].name"),
                    format!("remote_write names must be unique and not empty ({n:?})"),
                ));
            }
        }
    }
    let uids = [
        &s.datasources.prometheus,
        &s.datasources.loki,
        &s.datasources.json,
        &s.datasources.tempo,
    ];
    if uids.iter().collect::<HashSet<_>>().len() != uids.len() {
        errs.push(src.error("stack.datasources", "datasource uids must be distinct"));
    }
    check_traces_stack(src, m, errs);
}

/// Tempo's ports and retention, and the host ports compose publishes.
fn check_traces_stack(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let s = &m.stack;
    check_port(src, "stack.otlp.http", s.otlp.http, errs);
    check_port(src, "stack.otlp.grpc", s.otlp.grpc, errs);
    // One Tempo container listens on all of these, and on its own gRPC
    // server's port.
    let mut tempo: Vec<(&str, i64)> = vec![("Tempo's internal gRPC server", TEMPO_GRPC_PORT)];
    for (at, port) in [
        ("stack.tempo.port", s.tempo.port),
        ("stack.otlp.http", s.otlp.http),
        ("stack.otlp.grpc", s.otlp.grpc),
    ] {
        if let Some((other, _)) = tempo.iter().find(|(_, p)| *p == port) {
            errs.push(src.error(
                at,
                format!("port {port} is already {other}'s in the Tempo container"),
            ));
        }
        tempo.push((at, port));
    }
    // The ports compose publishes on the host, and the service's own.
    let shipper = match s.shipper {
        Shipper::Alloy => ("stack.alloy.port", s.alloy.port),
        Shipper::Promtail => ("stack.promtail.port", s.promtail.port),
    };
    let mut host: Vec<(&str, i64)> = vec![("service.port", m.service.port)];
    for (at, port) in [
        ("stack.prometheus.port", s.prometheus.port),
        ("stack.loki.port", s.loki.port),
        shipper,
        ("stack.grafana.port", s.grafana.port),
        ("stack.tempo.port", s.tempo.port),
        ("stack.otlp.http", s.otlp.http),
    ] {
        if let Some((other, _)) = host.iter().find(|(_, p)| *p == port) {
            errs.push(src.error(
                at,
                format!(
                    "port {port} is already {other}: docker-compose publishes both on the host"
                ),
            ));
        }
        host.push((at, port));
    }
    let retention = s.traces_retention.get();
    if retention < std::time::Duration::from_secs(3600) || retention.subsec_nanos() != 0 {
        errs.push(src.error(
            "stack.traces_retention",
            "must be at least 1h, in whole seconds",
        ));
    }
}

/// The port of Tempo's own gRPC server (`server.grpc_listen_port`, its
/// default), which the rendered config keeps.
pub const TEMPO_GRPC_PORT: i64 = 9095;

#[cfg(test)]
mod kubernetes_names {
    use super::{is_dns_label, is_label_part, is_quantity};

    #[test]
    fn quantities_and_names_as_kubernetes_takes_them() {
        for q in [
            "100m", "0.5", "1", "64Mi", "1Gi", "1G", "1E", "2Ei", "1e3", "1.5E+2", "+1",
        ] {
            assert!(is_quantity(q), "{q}");
        }
        for q in [
            "", "256 MB", "1MB", "m", ".", "1..2", "1e", "1e3Mi", "-1", "ten",
        ] {
            assert!(!is_quantity(q), "{q}");
        }
        for n in ["shop", "ecommerce-api", "a1"] {
            assert!(is_dns_label(n), "{n}");
        }
        for n in [
            "",
            "Shop",
            "1shop",
            "shop-",
            "shop_api",
            "shop.api",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_label(n), "{n}");
        }
        assert!(is_label_part("1.0.0", false) && is_label_part("", true));
        assert!(!is_label_part("1.0+b", false) && !is_label_part("", false));
    }
}
