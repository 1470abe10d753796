//! `kubernetes.env` and `env_from`, and the credentials the rendered stack
//! presents to the service: Prometheus's scrape token (`/metrics`) and
//! Grafana's header for the JSON datasource's routes. Which endpoints those
//! are their handlers say ([`Role::MetricsEndpoint`],
//! [`Role::DatasourceRoute`]): `roles` holds each endpoint's roles, same
//! order as `endpoints:`.
//!
//! Only names are ever handled here (of variables, files, Secrets and
//! their keys): a secret's value is read by the server, and by Prometheus
//! and Grafana, where they run, never by `validate` or `render`.

use crate::manifest::auth::{is_env_name, KeyRef, Scheme, SchemeKind, SecretRef};
use crate::manifest::{Diagnostics, Manifest, Source};
use crate::model::contrib::Role;
use std::collections::HashMap;

/// Whether endpoint `i` plays `role`.
fn plays(roles: &[&[Role]], i: usize, role: Role) -> bool {
    roles.get(i).is_some_and(|r| r.contains(&role))
}

/// The variable the Deployment sets itself (each pod's name, its instance).
pub const POD_NAME: &str = "POD_NAME";
/// The variables the Deployment sets itself: each pod's name, and where
/// and as what its spans go (`kubernetes.otlp_url`, the pod's resource).
pub const DEPLOYMENT_ENV: [(&str, &str); 3] = [
    (POD_NAME, "each pod's name, its instance"),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "from kubernetes.otlp_url: Alloy's OTLP receiver",
    ),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "the pod's name and namespace; add attributes in tracing.resource",
    ),
];

/// A credential a tool of the stack presents: the scheme it satisfies and
/// where that scheme's keys are (the tool's one key is the whole text).
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub scheme: &'a str,
    pub kind: SchemeKind,
    /// The header it goes in: `Authorization` (as `Bearer <key>`) or the
    /// `api_key` scheme's own header (the key alone).
    pub header: &'a str,
    pub keys: &'a SecretRef,
}

impl Presented<'_> {
    /// The header's value with the key written as `key` (a reference that
    /// the tool expands, such as `$__file{…}`).
    pub fn value(&self, key: &str) -> String {
        match self.kind {
            SchemeKind::ApiKey => key.to_string(),
            SchemeKind::Bearer | SchemeKind::Jwt => format!("Bearer {key}"),
        }
    }

    /// Where the manifest says where its keys are.
    pub fn keys_path(&self) -> String {
        format!("auth.schemes.{}.keys", self.scheme)
    }
}

/// A located problem: (manifest path, message).
pub type Located = (String, String);

fn presented<'a>(name: &'a str, s: &'a Scheme, keys: &'a SecretRef) -> Presented<'a> {
    Presented {
        scheme: name,
        kind: s.kind,
        header: match s.kind {
            SchemeKind::ApiKey => s.header_name(),
            _ => "Authorization",
        },
        keys,
    }
}

/// Where endpoint `i`'s requirement is written: its own `auth`, or `auth.default`.
fn requirement_path(m: &Manifest, i: usize) -> String {
    match m.endpoints[i].auth {
        Some(_) => format!("endpoints[{i}].auth"),
        None => "auth.default".into(),
    }
}

/// What Prometheus presents to scrape `/metrics`: `None` when it is open.
/// Prometheus sends `Authorization: Bearer <the file's text>`, so the
/// requirement must accept a `bearer` scheme, whose keys are then that one
/// token (no `token:principal` pairs).
pub fn scrape_credential<'a>(
    m: &'a Manifest,
    roles: &[&[Role]],
) -> Result<Option<Presented<'a>>, Located> {
    let Some(i) = (0..m.endpoints.len())
        .find(|&i| plays(roles, i, Role::MetricsEndpoint) && m.endpoints[i].path == "/metrics")
    else {
        return Ok(None);
    };
    let req = m.auth.requirement(&m.endpoints[i]);
    if req.is_open() {
        return Ok(None);
    }
    let bearer = req.schemes.iter().find_map(|n| {
        m.auth
            .schemes
            .get_key_value(n)
            .filter(|(_, s)| s.kind == SchemeKind::Bearer)
    });
    let Some((name, scheme)) = bearer else {
        return Err((
            requirement_path(m, i),
            format!(
                "/metrics (endpoints[{i}]) requires {:?}, but Prometheus can only present \
                 `Authorization: Bearer <token>`: add a scheme of `type: bearer` whose keys are \
                 the one scrape token (e.g. `keys: {{env: METRICS_TOKEN}}`)",
                req.schemes
            ),
        ));
    };
    let Some(keys) = &scheme.keys else {
        return Err((
            format!("auth.schemes.{name}"),
            format!(
                "Prometheus scrapes /metrics with scheme {name:?}'s token: give it \
                 `keys: {{env: VAR}}` (the one token, no `token:principal` pairs)"
            ),
        ));
    };
    Ok(Some(presented(name, scheme, keys)))
}

/// What Grafana's JSON datasource presents to its routes: `None` when
/// they are all open. Grafana sends one header to every one of them, so
/// the protected ones must share an `api_key` or `bearer` scheme (Grafana
/// cannot mint a JWT); its keys are that one key.
pub fn grafana_credential<'a>(
    m: &'a Manifest,
    roles: &[&[Role]],
) -> Result<Option<Presented<'a>>, Located> {
    let protected: Vec<usize> = (0..m.endpoints.len())
        .filter(|&i| {
            plays(roles, i, Role::DatasourceRoute) && !m.auth.requirement(&m.endpoints[i]).is_open()
        })
        .collect();
    let Some(&first) = protected.first() else {
        return Ok(None);
    };
    let shared = m
        .auth
        .requirement(&m.endpoints[first])
        .schemes
        .iter()
        .find_map(|n| {
            let (name, s) = m.auth.schemes.get_key_value(n)?;
            let every = protected
                .iter()
                .all(|&i| m.auth.requirement(&m.endpoints[i]).schemes.contains(n));
            (every && s.kind != SchemeKind::Jwt).then_some((name, s))
        });
    let Some((name, scheme)) = shared else {
        return Err((
            requirement_path(m, first),
            format!(
                "Grafana's JSON datasource sends one header to every `grafana_json` \
                 endpoint, and cannot mint a JWT: every protected one (endpoints{protected:?}) \
                 must accept one `api_key` or `bearer` scheme"
            ),
        ));
    };
    let Some(keys) = &scheme.keys else {
        return Err((
            format!("auth.schemes.{name}"),
            format!(
                "Grafana's JSON datasource presents scheme {name:?}'s key: give it \
                 `keys: {{env: VAR}}` (the one key, no `key:principal` pairs)"
            ),
        ));
    };
    Ok(Some(presented(name, scheme, keys)))
}

/// The Secret key a tool's credential comes from in the cluster: `keys:
/// {env: VAR}` with VAR from a Secret in `kubernetes.env`, or from the one
/// Secret of `kubernetes.env_from` (its key VAR).
pub fn token_secret(m: &Manifest, p: &Presented) -> Result<KeyRef, Located> {
    let k = &m.kubernetes;
    let err = |msg: String| Err((p.keys_path(), msg));
    let var = match p.keys {
        SecretRef::File(f) => {
            return err(format!(
                "scheme {:?}'s keys are the file {f:?}, which no pod has: on Kubernetes the \
                 token must come from a Secret: use `keys: {{env: VAR}}` and add \
                 `{{name: VAR, secret: {{name: <Secret>, key: <key>}}}}` to kubernetes.env",
                p.scheme
            ))
        }
        SecretRef::Env(var) => var,
    };
    if let Some((i, e)) = k.env.iter().enumerate().find(|(_, e)| &e.name == var) {
        return match (&e.secret, &e.config_map) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(_)) => err(format!(
                "{var} is set from a ConfigMap (kubernetes.env[{i}]): the token must come from \
                 a Secret (`secret: {{name, key}}`)"
            )),
            (None, None) => err(format!(
                "{var} is set to a plain value (kubernetes.env[{i}]): the token must come from \
                 a Secret (`secret: {{name, key}}`)"
            )),
        };
    }
    let secrets: Vec<&String> = k
        .env_from
        .iter()
        .filter_map(|e| e.secret.as_ref())
        .collect();
    match secrets.as_slice() {
        [one] => Ok(KeyRef {
            name: one.to_string(),
            key: var.clone(),
        }),
        [] => err(format!(
            "on Kubernetes the token in {var} must come from a Secret: add \
             `{{name: {var}, secret: {{name: <Secret>, key: <key>}}}}` to kubernetes.env"
        )),
        many => err(format!(
            "{var} may come from any of the env_from Secrets {many:?}: say which in \
             kubernetes.env (`{{name: {var}, secret: {{name: <Secret>, key: <key>}}}}`)"
        )),
    }
}

/// A DNS-1123 subdomain: what a Secret or ConfigMap may be called.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A Secret or ConfigMap key: `[-._a-zA-Z0-9]+`, at most 253, not `.` or `..`.
pub fn is_object_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
}

fn check_object_name(src: &Source, at: &str, what: &str, name: &str, errs: &mut Diagnostics) {
    if !is_dns_subdomain(name) {
        errs.push(src.error(
            at,
            format!("{name:?} is not a {what} name (lower-case letters, digits, '-' and '.', alphanumeric at both ends, at most 253)"),
        ));
    }
}

fn check_key_ref(src: &Source, at: &str, what: &str, r: &KeyRef, errs: &mut Diagnostics) {
    check_object_name(src, &format!("{at}.name"), what, &r.name, errs);
    if !is_object_key(&r.key) {
        errs.push(src.error(
            &format!("{at}.key"),
            format!(
                "{:?} is not a {what} key (letters, digits, '-', '_' and '.')",
                r.key
            ),
        ));
    }
}

/// Checks `kubernetes.env` and `env_from`.
pub(super) fn check(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let k = &m.kubernetes;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, e) in k.env.iter().enumerate() {
        let at = format!("kubernetes.env[{i}]");
        if !is_env_name(&e.name) {
            errs.push(src.error(
                &format!("{at}.name"),
                format!(
                    "{:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                    e.name
                ),
            ));
        } else if let Some((name, why)) = DEPLOYMENT_ENV.iter().find(|(n, _)| *n == e.name) {
            errs.push(src.error(
                &format!("{at}.name"),
                format!("{name} is set by the Deployment ({why})"),
            ));
        } else if let Some(first) = seen.insert(&e.name, i) {
            errs.push(src.error(
                &format!("{at}.name"),
                format!("{} is already set by kubernetes.env[{first}]", e.name),
            ));
        }
        let given: Vec<&str> = [
            ("value", e.value.is_some()),
            ("secret", e.secret.is_some()),
            ("config_map", e.config_map.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| *f)
        .collect();
        if given.len() != 1 {
            errs.push(src.error(
                &at,
                format!(
                    "give exactly one of `value`, `secret` or `config_map` (here: {})",
                    if given.is_empty() {
                        "none".to_string()
                    } else {
                        given.join(", ")
                    }
                ),
            ));
        }
        if let Some(r) = &e.secret {
            check_key_ref(src, &format!("{at}.secret"), "Secret", r, errs);
        }
        if let Some(r) = &e.config_map {
            check_key_ref(src, &format!("{at}.config_map"), "ConfigMap", r, errs);
        }
    }
    for (i, e) in k.env_from.iter().enumerate() {
        let at = format!("kubernetes.env_from[{i}]");
        match (&e.secret, &e.config_map) {
            (Some(s), None) => check_object_name(src, &format!("{at}.secret"), "Secret", s, errs),
            (None, Some(c)) => {
                check_object_name(src, &format!("{at}.config_map"), "ConfigMap", c, errs)
            }
            _ => errs.push(src.error(&at, "give exactly one of `secret` or `config_map`")),
        }
    }
}

/// Checks that Prometheus and Grafana can present what the endpoints they
/// call require (Prometheus's token from a Secret, on Kubernetes).
pub(super) fn check_credentials(
    src: &Source,
    m: &Manifest,
    roles: &[&[Role]],
    errs: &mut Diagnostics,
) {
    // The ServiceMonitor names the Secret the scrape token is in; Grafana
    // runs apart, so its key's source is only named in the datasource file.
    match scrape_credential(m, roles) {
        Err((at, msg)) => errs.push(src.error(&at, msg)),
        Ok(None) => {}
        Ok(Some(p)) => {
            if let Err((at, msg)) = token_secret(m, &p) {
                errs.push(src.error(&at, msg));
            }
        }
    }
    if let Err((at, msg)) = grafana_credential(m, roles) {
        errs.push(src.error(&at, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_and_keys_as_kubernetes_takes_them() {
        for n in ["metrics", "a.b-c", "1x", &"a".repeat(253)] {
            assert!(is_dns_subdomain(n), "{n}");
        }
        for n in ["", "A", "a..b", "-a", "a-", "a_b", ".a", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(n), "{n}");
        }
        for k in ["token", "METRICS_TOKEN", "a.b-c_d", ".hidden"] {
            assert!(is_object_key(k), "{k}");
        }
        for k in ["", ".", "..", "a/b", "a b", "ü"] {
            assert!(!is_object_key(k), "{k}");
        }
    }
}
