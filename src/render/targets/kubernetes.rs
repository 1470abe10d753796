//! `kubernetes/`: the service and its monitoring for a cluster with the
//! Prometheus Operator, Grafana's sidecar and Alloy.
//!
//! - `deployment.yaml`, `service.yaml`, `manifest-configmap.yaml`: the
//!   service, its probes from the manifest's `probe` endpoints, and the
//!   manifest with its data files mounted from a ConfigMap;
//! - `servicemonitor.yaml`, `prometheusrule.yaml`: the scrape (with the
//!   pod name as `instance`, as on the log lines) and the same rule groups
//!   as `prometheus/alerts.yml`;
//! - `grafana-dashboard.yaml`, `grafana-datasources.yaml`: ConfigMaps the
//!   Grafana sidecar loads (`grafana_dashboard: "1"`, `grafana_datasource: "1"`);
//! - `alloy.yaml`: Alloy's pipeline for pods, with the same stages as
//!   `alloy/config.alloy`, and its OTLP receiver, which sends the pods'
//!   spans on to Tempo (the Deployment's `OTEL_EXPORTER_OTLP_ENDPOINT`).

use super::{grafana_dashboard, grafana_datasources, prometheus_rules};
use crate::manifest::{KeyRef, SecretRef};
use crate::model::k8s_env;
use crate::model::kinds::ProbeRole;
use crate::model::Model;
use crate::render::{escape, stack, Ctx};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

pub struct KubernetesTarget;

/// Where the container mounts the manifest ConfigMap.
pub const CONFIG_DIR: &str = "/etc/telltale";
/// The container's working directory (an emptyDir, writable).
pub const WORK_DIR: &str = "/var/lib/telltale";
/// The largest ConfigMap the API server stores.
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;

const FILES: &[(&str, &str)] = &[
    (
        "kubernetes/deployment.yaml",
        include_str!("../../../templates/kubernetes/deployment.yaml.hbs"),
    ),
    (
        "kubernetes/service.yaml",
        include_str!("../../../templates/kubernetes/service.yaml.hbs"),
    ),
    (
        "kubernetes/manifest-configmap.yaml",
        include_str!("../../../templates/kubernetes/manifest-configmap.yaml.hbs"),
    ),
    (
        "kubernetes/servicemonitor.yaml",
        include_str!("../../../templates/kubernetes/servicemonitor.yaml.hbs"),
    ),
    (
        "kubernetes/prometheusrule.yaml",
        include_str!("../../../templates/kubernetes/prometheusrule.yaml.hbs"),
    ),
    (
        "kubernetes/grafana-dashboard.yaml",
        include_str!("../../../templates/kubernetes/grafana-dashboard.yaml.hbs"),
    ),
    (
        "kubernetes/grafana-datasources.yaml",
        include_str!("../../../templates/kubernetes/grafana-datasources.yaml.hbs"),
    ),
    (
        "kubernetes/alloy.yaml",
        include_str!("../../../templates/kubernetes/alloy.yaml.hbs"),
    ),
    (
        "kubernetes/config.alloy",
        include_str!("../../../templates/kubernetes/config.alloy.hbs"),
    ),
];
/// Only a template: its output goes inside `alloy.yaml`.
const ALLOY_CONFIG: &str = "kubernetes/config.alloy";

impl super::RenderTarget for KubernetesTarget {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        FILES
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let data = data(ctx)?;
        let mut out = Vec::new();
        for (path, _) in FILES.iter().filter(|(p, _)| *p != ALLOY_CONFIG) {
            let text = ctx.render(path, data.clone())?;
            super::check_yaml(path, &text)?;
            out.push((path.to_string(), text));
        }
        Ok(out)
    }
}

/// The labels every object of the service carries; `selector` is the subset
/// the Deployment and Service select pods by.
fn labels(m: &crate::manifest::Manifest) -> (Json, Json) {
    let name = &m.service.name;
    let selector = json!({ "app.kubernetes.io/name": name });
    let mut all = json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": "telltale",
    });
    // A version that is not a label value (`1.0+build`) is left out.
    if crate::model::is_label_part(&m.service.version, false) {
        all["app.kubernetes.io/version"] = json!(m.service.version);
    }
    (all, selector)
}

/// The manifest ConfigMap's entries: `(key, path under CONFIG_DIR, text)`,
/// the manifest first, then each data file once.
fn config_files(model: &Model) -> Result<Vec<(String, String, String)>, String> {
    let m = &model.manifest;
    let mut files = vec![(
        "manifest.yaml".to_string(),
        "manifest.yaml".to_string(),
        model.source.text.clone(),
    )];
    let mut keys = BTreeMap::from([("manifest.yaml".to_string(), "the manifest".to_string())]);
    for (i, e) in m.endpoints.iter().enumerate() {
        let Some(rel) = &e.data else { continue };
        if files.iter().any(|(_, p, _)| p == rel) {
            continue;
        }
        let at = format!("endpoints[{i}].data");
        let parts: Vec<&str> = rel.split('/').collect();
        if rel.starts_with('/')
            || parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(format!(
                "{at}: {rel:?} cannot be mounted from a ConfigMap beside the manifest: use a relative path without `.` or `..`"
            ));
        }
        let key = parts.join(".");
        let key_ok = key.len() <= 253
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
        if !key_ok {
            return Err(format!(
                "{at}: {rel:?} cannot be a ConfigMap key (letters, digits, '-', '_', '.' and '/' only)"
            ));
        }
        if let Some(other) = keys.insert(key.clone(), rel.clone()) {
            return Err(format!(
                "{at}: {rel:?} and {other:?} would share the ConfigMap key {key:?}; rename one"
            ));
        }
        let (text, _) = model
            .source
            .read_data(rel, m.service.data_limit_bytes)
            .map_err(|e| format!("{at}: {e}"))?;
        files.push((key, rel.clone(), text));
    }
    let size: usize = files.iter().map(|(k, _, t)| k.len() + t.len()).sum();
    if size > CONFIGMAP_LIMIT {
        return Err(format!(
            "the manifest and its data files are {size} bytes, over the {CONFIGMAP_LIMIT} bytes a ConfigMap holds"
        ));
    }
    Ok(files)
}

/// FNV-1a, 64 bits: a change detector for the pod template's
/// `checksum/config` annotation (so `kubectl apply` rolls the pods when the
/// manifest or a data file changes), not a security measure.
fn fnv64(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// One probe of the container, from the endpoint that answers it.
fn probe(model: &Model, role: ProbeRole, period: u32, failures: u32) -> Json {
    model
        .handlers
        .iter()
        .zip(&model.manifest.endpoints)
        .find(|(h, _)| h.probe() == Some(role))
        .map_or(
            Json::Null,
            |(_, e)| json!({ "path": e.path, "period": period, "failures": failures }),
        )
}

/// How Grafana presents its key to the service's `/grafana` data source,
/// and where its pod must have that key.
fn json_auth(
    m: &crate::manifest::Manifest,
    c: &stack::Credential,
) -> grafana_datasources::JsonAuth {
    let (key, note) = match c.presented.keys {
        SecretRef::Env(var) => (
            format!("$__env{{{var}}}"),
            match k8s_env::token_secret(m, &c.presented) {
                Ok(r) => format!(
                    "Grafana's pod needs {var} from the Secret {:?} (key {:?}), as the service's pods have it.",
                    r.name, r.key
                ),
                Err(_) => format!("Grafana's pod needs {var}, the key the service's pods read from {var}."),
            },
        ),
        SecretRef::File(_) => (
            format!("$__file{{{}}}", c.file()),
            format!("Grafana's pod needs the key at {} (mounted from a Secret).", c.file()),
        ),
    };
    grafana_datasources::JsonAuth {
        scheme: c.presented.scheme.to_string(),
        header: c.presented.header.to_string(),
        value: c.presented.value(&key),
        note: Some(note),
    }
}

/// The container's environment, as the Deployment spells it.
fn container_env(ctx: &Ctx) -> Vec<Json> {
    let m = &ctx.model.manifest;
    let k = &m.kubernetes;
    let key_ref = |r: &KeyRef| json!({ "name": r.name, "key": r.key });
    let mut env: Vec<Json> = k
        .env
        .iter()
        .map(|e| match (&e.value, &e.secret, &e.config_map) {
            (_, Some(r), _) => {
                json!({ "name": e.name, "valueFrom": { "secretKeyRef": key_ref(r) } })
            }
            (_, _, Some(r)) => {
                json!({ "name": e.name, "valueFrom": { "configMapKeyRef": key_ref(r) } })
            }
            (v, _, _) => json!({
                "name": e.name,
                "value": escape::kubernetes_env_value(v.as_deref().unwrap_or_default()),
            }),
        })
        .collect();
    // A dependency's URL given by an environment variable that
    // `kubernetes.env` does not set: from the Secret `<service>-dependencies`
    // (key `<dependency>-url`), which holds the DSN with its password.
    // A URL with an inline `url` beside it may be absent (optional).
    for (d, p) in m.dependencies.iter().zip(&ctx.model.dependencies) {
        let url = match &d.url_from {
            Some(SecretRef::Env(var)) => {
                Some((var.clone(), format!("{}-url", d.name), d.url.is_some()))
            }
            _ => None,
        };
        let headers = p
            .secret_env(d)
            .into_iter()
            .map(|(var, key)| (var, key, false));
        for (var, key, optional) in url.into_iter().chain(headers) {
            if k.env.iter().any(|e| e.name == var) {
                continue;
            }
            let mut r = json!({ "name": dependency_secret(m), "key": key });
            if optional {
                r["optional"] = json!(true);
            }
            env.push(json!({ "name": var, "valueFrom": { "secretKeyRef": r } }));
        }
    }
    env
}

/// The groups of `alerts.yml`, indented to sit in the PrometheusRule's
/// `spec`.
fn rule_groups(ctx: &Ctx) -> Result<String, String> {
    let rules = prometheus_rules::render_text(ctx)?;
    let groups_at = rules
        .find("\ngroups:")
        .ok_or("alerts.yml has no `groups:` (template bug)")?;
    Ok(rules[groups_at + 1..]
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("  {l}\n")
            }
        })
        .collect())
}

/// The Grafana data sources file: the in-cluster stack's URLs, and the
/// service's `/grafana` with Grafana's key, said where its pod must have it.
fn datasources(ctx: &Ctx, creds: &stack::Credentials) -> Result<String, String> {
    let m = &ctx.model.manifest;
    let k = &m.kubernetes;
    let name = &m.service.name;
    let service_url = format!("http://{name}.{}.svc:{}", k.namespace, m.service.port);
    // Grafana's key: where its pod must have it, said in the file.
    let json_auth = creds.grafana.as_ref().map(|c| json_auth(m, c));
    grafana_datasources::render_with(
        ctx,
        &grafana_datasources::Urls {
            prometheus: k.prometheus_url.to_string(),
            loki: k.loki_url.to_string(),
            tempo: k.tempo_url.to_string(),
            json: format!("{service_url}/grafana"),
            json_auth,
        },
    )
}

/// Alloy's configuration: the pods' logs (CRI) to Loki, spans over OTLP.
fn alloy_config(ctx: &Ctx, otlp: &Json) -> Result<String, String> {
    let m = &ctx.model.manifest;
    let k = &m.kubernetes;
    let name = &m.service.name;
    let loki_push = format!(
        "{}/loki/api/v1/push",
        k.loki_url.as_str().trim_end_matches('/')
    );
    let mut pipeline = super::log_pipeline(ctx, &loki_push);
    pipeline["otlp"] = otlp.clone();
    pipeline["cri"] = json!(true);
    pipeline["namespace"] = json!(k.namespace);
    pipeline["selector"] = json!(format!("app.kubernetes.io/name={name}"));
    pipeline["container"] = json!(name);
    ctx.render(ALLOY_CONFIG, pipeline)
}

/// The container's `envFrom`: whole Secrets and ConfigMaps.
fn env_from(k: &crate::manifest::Kubernetes) -> Vec<Json> {
    k.env_from
        .iter()
        .filter_map(|e| match (&e.secret, &e.config_map) {
            (Some(s), _) => Some(json!({ "secretRef": { "name": s } })),
            (_, Some(c)) => Some(json!({ "configMapRef": { "name": c } })),
            _ => None,
        })
        .collect()
}

/// `labels` with `extra` added.
fn with_labels(labels: &Json, extra: &[(&str, &str)]) -> Json {
    let mut l = labels.clone();
    for (k, v) in extra {
        l[*k] = json!(v);
    }
    l
}

fn data(ctx: &Ctx) -> Result<Json, String> {
    let model = ctx.model;
    let m = &model.manifest;
    let k = &m.kubernetes;
    let name = &m.service.name;
    let (labels, selector) = labels(m);
    let files = config_files(model)?;
    let hashed: Vec<&str> = files
        .iter()
        .flat_map(|(k, _, t)| [k.as_str(), t.as_str()])
        .collect();
    // What the stack presents: Prometheus's token and Grafana's key, from
    // the Secrets the service's pods read them from (validated).
    let creds = stack::credentials(model)?;
    let secret_of = |c: &stack::Credential| {
        k8s_env::token_secret(m, &c.presented).map_err(|(at, msg)| format!("{at}: {msg}"))
    };
    let scrape_secret = creds.scrape.as_ref().map(secret_of).transpose()?;
    let datasources = datasources(ctx, &creds)?;
    let key_ref = |r: &KeyRef| json!({ "name": r.name, "key": r.key });
    let env = container_env(ctx);
    let groups = rule_groups(ctx)?;
    let otlp = otlp(m)?;
    let alloy_config = alloy_config(ctx, &otlp)?;
    let image = k
        .image
        .clone()
        .unwrap_or_else(|| format!("{name}:{}", m.service.version));
    let with = |extra: &[(&str, &str)]| with_labels(&labels, extra);
    let monitor: Vec<(&str, &str)> = k
        .selector_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(json!({
        "name": name,
        "names": {
            "manifest": format!("{name}-manifest"),
            "dashboard": format!("{name}-dashboard"),
            "datasources": format!("{name}-datasources"),
            "datasources_key": format!("{name}-datasources.yaml"),
            "alloy": format!("{name}-alloy"),
        },
        "monitor_labels": with(&monitor),
        "dashboard_labels": with(&[("grafana_dashboard", "1")]),
        "datasource_labels": with(&[("grafana_datasource", "1")]),
        "namespace": k.namespace,
        "monitoring_namespace": k.monitoring_namespace,
        "selector": selector,
        "replicas": k.replicas,
        "image": image,
        "pull_policy": k.image_pull_policy,
        "port": m.service.port,
        "config_dir": CONFIG_DIR,
        // The pod writes no log file, but `validate` checks that logging.dir
        // is writable, and the root filesystem is read-only: an absolute
        // logging.dir gets an emptyDir of its own (a relative one is under
        // the working directory's).
        "log_dir": log_dir_mount(&m.logging.dir)?,
        "work_dir": WORK_DIR,
        "args": [
            "serve",
            "--manifest", format!("{CONFIG_DIR}/manifest.yaml"),
            "--host", "0.0.0.0",
            "--log-format", "json",
            "--no-log-file",
        ],
        "checksum": fnv64(&hashed),
        "files": files.iter().map(|(key, path, text)| json!({
            "key": key, "path": path, "text": text,
        })).collect::<Vec<_>>(),
        "startup": probe(model, ProbeRole::Startup, 2, 30),
        "liveness": probe(model, ProbeRole::Liveness, 10, 3),
        "readiness": probe(model, ProbeRole::Readiness, 5, 2),
        // The quantities that are set (`{}` for none).
        "resources": k.resources,
        // The server's own graceful shutdown, plus time for the endpoints
        // to drop the pod first.
        "grace_seconds": m.service.shutdown_timeout_seconds + 5,
        "env": env,
        "env_from": env_from(k),
        "scrape": creds.scrape.as_ref().zip(scrape_secret.as_ref()).map(|(c, r)| json!({
            "scheme": c.presented.scheme, "secret": key_ref(r),
        })),
        "job": stack::service_job(m),
        "scrape_interval": m.stack.scrape_interval,
        "sample_limit": model.budget.sample_limit(),
        "groups": groups,
        "dashboard_key": format!("{}.json", m.dashboard.uid),
        "dashboard": grafana_dashboard::render_json(ctx)?,
        "datasources": datasources,
        "alloy_config": alloy_config,
        "otlp": otlp,
        "labels": labels,
    }))
}

/// Where the pods' spans go and what they say about the pod: the
/// Deployment's `OTEL_*` values (escaped for the kubelet, which expands
/// `$(VAR)`: only `$(POD_NAME)` is meant), and Alloy's receiver and exporter.
fn otlp(m: &crate::manifest::Manifest) -> Result<Json, String> {
    let k = &m.kubernetes;
    let port = k
        .otlp_url
        .url()
        .and_then(|u| u.port_or_known_default())
        .ok_or_else(|| format!("kubernetes.otlp_url {:?} has no port", k.otlp_url.as_str()))?;
    let resource = format!(
        "k8s.pod.name=$({}),k8s.namespace.name={},k8s.deployment.name={}",
        k8s_env::POD_NAME,
        escape::kubernetes_env_value(&k.namespace),
        escape::kubernetes_env_value(&m.service.name),
    );
    Ok(json!({
        "endpoint": escape::kubernetes_env_value(k.otlp_url.as_str()),
        "resource": resource,
        "port": port,
        "listen": format!("0.0.0.0:{port}"),
        "tempo": k.tempo_otlp.as_str(),
    }))
}

/// Where an absolute `logging.dir` gets an emptyDir of its own in the pod:
/// nowhere if it is the working directory or under it (already writable,
/// and a second mount at the same path is invalid). Under the read-only
/// config mount it could never be written: an error.
fn log_dir_mount(dir: &str) -> Result<Option<String>, String> {
    let path = std::path::Path::new(dir);
    if !path.is_absolute() || path.starts_with(WORK_DIR) {
        return Ok(None);
    }
    if path.starts_with(CONFIG_DIR) {
        return Err(format!(
            "logging.dir {dir:?} is under {CONFIG_DIR}, where the Deployment mounts \
             the manifest read-only: choose another directory"
        ));
    }
    Ok(Some(dir.to_string()))
}

/// The Secret the Deployment reads dependency URLs from, when
/// `kubernetes.env` does not name one: `<service>-dependencies`.
pub fn dependency_secret(m: &crate::manifest::Manifest) -> String {
    format!("{}-dependencies", m.service.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_follow_every_byte_and_the_boundaries() {
        assert_ne!(fnv64(&["a", "bc"]), fnv64(&["ab", "c"]));
        assert_ne!(fnv64(&["x"]), fnv64(&["y"]));
        assert_eq!(fnv64(&["x"]), fnv64(&["x"]));
    }
}
