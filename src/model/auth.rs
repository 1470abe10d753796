//! Checks of `auth:` and of every requirement that names its schemes
//! (`auth.default`, `auth.docs`, `endpoints[].auth`). Keys are not read
//! here: `validate` and `render` never need a secret, only its reference.

use crate::manifest::auth::{is_env_name, Requirement, SchemeKind, SecretRef};
use crate::manifest::{Diagnostics, Manifest, Source};

/// Whether `s` may name a security scheme (OpenAPI's component key pattern).
fn is_scheme_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Whether `s` is an HTTP header name (RFC 9110 token).
fn is_header_name(s: &str) -> bool {
    poem::http::HeaderName::from_bytes(s.as_bytes()).is_ok() && !s.is_empty()
}

pub(super) fn check_ref(src: &Source, at: &str, r: &SecretRef, errs: &mut Diagnostics) {
    match r {
        SecretRef::Env(name) if !is_env_name(name) => errs.push(src.error(
            &format!("{at}.env"),
            format!("{name:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
        )),
        SecretRef::File(path) if path.trim().is_empty() => {
            errs.push(src.error(&format!("{at}.file"), "the file path is empty"))
        }
        _ => {}
    }
}

/// Every `auth` error, located.
pub fn check(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    for (name, s) in &m.auth.schemes {
        let at = format!("auth.schemes.{name}");
        if !is_scheme_name(name) {
            errs.push(src.key_error(
                &at,
                format!("scheme name {name:?} may hold only letters, digits, `.`, `-` and `_`"),
            ));
        }
        let only = |field: &str, set: bool, kinds: &str, errs: &mut Diagnostics| {
            if set {
                errs.push(src.error(
                    &format!("{at}.{field}"),
                    format!("`{field}` is only for type {kinds}"),
                ));
            }
        };
        let need = |field: &str, set: bool, errs: &mut Diagnostics| {
            if !set {
                errs.push(src.error(
                    &at,
                    format!("a scheme of type {:?} needs `{field}`", kind_name(s.kind)),
                ));
            }
        };
        let jwt = s.kind == SchemeKind::Jwt;
        only(
            "header",
            s.header.is_some() && s.kind != SchemeKind::ApiKey,
            "api_key",
            errs,
        );
        only("keys", s.keys.is_some() && jwt, "api_key or bearer", errs);
        for (field, set) in [
            ("algorithm", s.algorithm.is_some()),
            ("key", s.key.is_some()),
            ("issuer", s.issuer.is_some()),
            ("audience", s.audience.is_some()),
            ("leeway_seconds", s.leeway_seconds.is_some()),
        ] {
            only(field, set && !jwt, "jwt", errs);
        }
        if jwt {
            need("algorithm", s.algorithm.is_some(), errs);
            need("key", s.key.is_some(), errs);
        } else {
            need("keys", s.keys.is_some(), errs);
        }
        if let Some(h) = &s.header {
            if !is_header_name(h) {
                errs.push(src.error(
                    &format!("{at}.header"),
                    format!("{h:?} is not an HTTP header name"),
                ));
            } else if h.eq_ignore_ascii_case("authorization") {
                errs.push(src.error(
                    &format!("{at}.header"),
                    "an api_key in `Authorization` is a bearer token: use type bearer",
                ));
            }
        }
        if let Some(r) = &s.keys {
            check_ref(src, &format!("{at}.keys"), r, errs);
        }
        if let Some(r) = &s.key {
            check_ref(src, &format!("{at}.key"), r, errs);
        }
        if s.leeway_seconds.is_some_and(|l| l > 3600) {
            errs.push(src.error(
                &format!("{at}.leeway_seconds"),
                "a leeway over an hour (3600) accepts long-expired tokens",
            ));
        }
    }
    check_requirement(src, m, "auth.default", &m.auth.default, errs);
    check_requirement(src, m, "auth.docs", &m.auth.docs, errs);
    for (i, ep) in m.endpoints.iter().enumerate() {
        if let Some(r) = &ep.auth {
            check_requirement(src, m, &format!("endpoints[{i}].auth"), r, errs);
        }
    }
}

fn kind_name(k: SchemeKind) -> &'static str {
    match k {
        SchemeKind::ApiKey => "api_key",
        SchemeKind::Bearer => "bearer",
        SchemeKind::Jwt => "jwt",
    }
}

fn check_requirement(
    src: &Source,
    m: &Manifest,
    at: &str,
    r: &Requirement,
    errs: &mut Diagnostics,
) {
    let names: Vec<&str> = m.auth.schemes.keys().map(String::as_str).collect();
    for (j, name) in r.schemes.iter().enumerate() {
        if !m.auth.schemes.contains_key(name) {
            errs.push(src.error(
                &format!("{at}.schemes[{j}]"),
                super::lint::unknown_name("auth scheme", name, &names, "declared in auth.schemes"),
            ));
        } else if r.schemes[..j].contains(name) {
            errs.push(src.error(
                &format!("{at}.schemes[{j}]"),
                format!("scheme {name:?} is listed twice"),
            ));
        }
    }
    if (!r.scopes.is_empty() || !r.claims.is_empty()) && !r.schemes.is_empty() {
        let not_jwt: Vec<&str> = (r.schemes.iter())
            .filter(|n| {
                m.auth
                    .schemes
                    .get(*n)
                    .is_some_and(|s| s.kind != SchemeKind::Jwt)
            })
            .map(String::as_str)
            .collect();
        if !not_jwt.is_empty() {
            let field = if r.scopes.is_empty() {
                "claims"
            } else {
                "scopes"
            };
            errs.push(src.error(
                &format!("{at}.{field}"),
                format!(
                    "only a jwt carries scopes and claims; {} would always be refused (403): \
                     require them on jwt schemes only",
                    not_jwt.join(", ")
                ),
            ));
        }
    }
    if r.schemes.is_empty() && (!r.scopes.is_empty() || !r.claims.is_empty()) {
        errs.push(src.error(
            &format!("{at}.schemes"),
            "scopes and claims need a jwt scheme to check them",
        ));
    }
    for (k, scope) in r.scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            errs.push(src.error(
                &format!("{at}.scopes[{k}]"),
                "a scope is one word (OAuth scopes are separated by spaces)",
            ));
        }
    }
}
