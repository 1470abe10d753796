//! Unit tests of the chaos plan.

use super::*;

fn model() -> Model {
    crate::model::validate(
        crate::manifest::load_embedded().unwrap(),
        &crate::plugins::KindRegistry::builtin(),
    )
    .unwrap()
}

/// The plan without the time-dependent query ranges.
fn shape(p: &[Planned]) -> Vec<(HttpMethod, String, Option<BadKind>)> {
    p.iter()
        .map(|x| (x.method, x.path.clone(), x.bad))
        .collect()
}

#[test]
fn same_seed_same_plan_other_seed_other_plan() {
    let m = model();
    let a = plan(&m, 200, 0.3, 7, &[]).unwrap();
    let b = plan(&m, 200, 0.3, 7, &[]).unwrap();
    let c = plan(&m, 200, 0.3, 8, &[]).unwrap();
    assert_eq!(shape(&a), shape(&b));
    assert_ne!(shape(&a), shape(&c));
}

#[test]
fn ratio_and_kinds_are_honoured() {
    let m = model();
    let p = plan(&m, 2000, 0.3, 1, &[]).unwrap();
    let bad = p.iter().filter(|x| x.bad.is_some()).count();
    assert!((500..700).contains(&bad), "{bad} bad of 2000");
    let aim = Aim::new(&m, &[]);
    for k in bad_kinds(&aim) {
        assert!(p.iter().any(|x| x.bad == Some(k)), "{k:?} never drawn");
    }
    assert_eq!(
        bad_kinds(&aim).len(),
        5,
        "the demo manifest allows every bad kind"
    );
    assert!(plan(&m, 50, 0.0, 1, &[])
        .unwrap()
        .iter()
        .all(|x| x.bad.is_none()));
    assert!(plan(&m, 50, 1.0, 1, &[])
        .unwrap()
        .iter()
        .all(|x| x.bad.is_some()));
}

/// The demo with `auth`: `key` (api_key in X-Shop-Key) by default,
/// `/grafana/*` also or only `tok` (bearer); the probes and `/` open.
fn protected_model() -> Model {
    use crate::manifest::{Auth, Requirement, Scheme};
    let mut m = model();
    let scheme = |kind, header: Option<&str>| Scheme {
        kind,
        description: String::new(),
        header: header.map(str::to_string),
        keys: None,
        algorithm: None,
        key: None,
        issuer: None,
        audience: None,
        leeway_seconds: None,
    };
    let req = |s: &[&str]| Requirement {
        schemes: s.iter().map(|x| x.to_string()).collect(),
        ..Requirement::default()
    };
    m.manifest.auth = Auth {
        schemes: [
            (
                "key".to_string(),
                scheme(SchemeKind::ApiKey, Some("X-Shop-Key")),
            ),
            ("tok".to_string(), scheme(SchemeKind::Bearer, None)),
        ]
        .into(),
        default: req(&["key"]),
        docs: Requirement::default(),
    };
    for e in &mut m.manifest.endpoints {
        if ["/", "/health", "/ready", "/startup", "/metrics"].contains(&e.path.as_str()) {
            e.auth = Some(req(&[]));
        } else if e.path == "/grafana/query" {
            e.auth = Some(req(&["tok"]));
        } else if e.path.starts_with("/grafana") {
            e.auth = Some(req(&["key", "tok"]));
        }
    }
    m
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn without_auth_nothing_changes() {
    let m = model();
    let p = plan(&m, 300, 0.3, 9, &[]).unwrap();
    assert_eq!(p.len(), 300);
    assert!(p
        .iter()
        .all(|x| x.credentials && x.bad != Some(BadKind::NoCredential)));
    assert!(unauthenticated(&m, &[]).is_empty());
    // Header names change nothing either.
    let q = plan(&m, 300, 0.3, 9, &names(&["x-tenant"])).unwrap();
    assert_eq!(shape(&p), shape(&q));
}

#[test]
fn with_credentials_good_requests_carry_them_and_each_protected_endpoint_gets_one_401() {
    let m = protected_model();
    assert_eq!(
        credential_headers(&m),
        names(&["authorization", "x-shop-key"])
    );
    let given = names(&["x-shop-key", "authorization"]);
    assert!(unauthenticated(&m, &given).is_empty());
    let p = plan(&m, 400, 0.3, 5, &given).unwrap();
    let protected_eps: Vec<String> = (m.manifest.endpoints.iter())
        .filter(|e| protected(&m, e) && !e.path.contains('{'))
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert!(protected_eps.contains(&"GET /products".to_string()));
    assert!(!protected_eps.contains(&"GET /health".to_string()));
    let none: Vec<&Planned> = (p.iter())
        .filter(|x| x.bad == Some(BadKind::NoCredential))
        .collect();
    assert_eq!(p.len(), 400 + protected_eps.len());
    assert_eq!(
        none.iter()
            .map(|x| x.endpoint.clone())
            .collect::<Vec<_>>()
            .len(),
        protected_eps.len()
    );
    for ep in &protected_eps {
        assert_eq!(none.iter().filter(|x| &x.endpoint == ep).count(), 1, "{ep}");
    }
    for x in &none {
        assert_eq!((x.expect, x.credentials), (Expect::Status(401), false));
    }
    // Not all at the end: drawn places.
    assert!(p[..400]
        .iter()
        .any(|x| x.bad == Some(BadKind::NoCredential)));
    for x in p.iter().filter(|x| x.bad != Some(BadKind::NoCredential)) {
        assert!(x.credentials, "{x:?}");
    }
    // Every bad kind is still drawn (with credentials, the 400s and the
    // 500 are the endpoints' own).
    for k in [
        BadKind::ServerError,
        BadKind::WrongMethod,
        BadKind::BadQueryParam,
        BadKind::MalformedJson,
    ] {
        assert!(p.iter().any(|x| x.bad == Some(k)), "{k:?}");
    }
    assert!(p.iter().any(|x| x.bad.is_none() && x.path == "/products"));
    // Same seed, same names: same plan.
    assert_eq!(shape(&p), shape(&plan(&m, 400, 0.3, 5, &given).unwrap()));
}

#[test]
fn without_credentials_protected_endpoints_must_answer_401() {
    let m = protected_model();
    let p = plan(&m, 600, 0.3, 2, &names(&["x-tenant"])).unwrap();
    let open = ["/", "/health", "/ready", "/startup", "/metrics"];
    for x in &p {
        let path = x.path.split('?').next().unwrap();
        match x.bad {
            None => {
                assert!(open.contains(&path), "good request to a protected {path}");
                assert!(x.credentials);
            }
            Some(BadKind::NoCredential) => {
                assert!(!open.contains(&path));
                assert_eq!((x.expect, x.credentials), (Expect::Status(401), false));
            }
            Some(BadKind::UnknownPath) | Some(BadKind::WrongMethod) => {
                assert!(
                    x.path.starts_with("/chaos-") || open.contains(&path),
                    "{x:?}"
                )
            }
            Some(k) => panic!("{k:?} needs a credential here: {x:?}"),
        }
    }
    assert!(p.iter().any(|x| x.bad.is_none()));
    assert!(p
        .iter()
        .any(|x| x.path == "/products" && x.bad == Some(BadKind::NoCredential)));
    assert!(unauthenticated(&m, &[]).contains(&"GET /products".to_string()));

    // Only the api key: /grafana/query (bearer only) stays a 401.
    let p = plan(&m, 600, 0.3, 2, &names(&["x-shop-key"])).unwrap();
    assert_eq!(
        unauthenticated(&m, &names(&["x-shop-key"])),
        vec!["POST /grafana/query".to_string()]
    );
    for x in p.iter().filter(|x| x.path.starts_with("/grafana/query")) {
        assert_eq!(x.bad, Some(BadKind::NoCredential), "{x:?}");
    }
    assert!(p
        .iter()
        .any(|x| x.bad.is_none() && x.path == "/grafana/search"));
    assert!(p.iter().any(|x| x.bad == Some(BadKind::ServerError)));
    assert!(!p.iter().any(|x| x.bad == Some(BadKind::MalformedJson)));
}

#[test]
fn good_requests_never_hit_the_fault_endpoint() {
    let m = model();
    for x in plan(&m, 500, 0.0, 3, &[]).unwrap() {
        assert_ne!(x.path, "/error");
        assert_eq!(x.expect, Expect::Success);
        assert_eq!(x.body.is_some(), x.method == HttpMethod::Post);
    }
}
