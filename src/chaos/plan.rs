//! The request mix: good requests from the manifest's endpoints, bad ones
//! of five kinds, each with the status it must get. What an endpoint
//! takes is its handler's to say ([`ChaosTraffic`]); unknown paths, wrong
//! methods and missing credentials are planned here for any endpoint.
//! Same seed, same manifest, same `--header` names → the same sequence.
//!
//! `auth:`: a protected endpoint (its requirement names a scheme) is called
//! with the credential `--header`s; it also gets one request without them,
//! which must be a 401. When no `--header` carries a credential it accepts,
//! its good requests are sent without one and must be 401s too, and bad
//! requests keep to endpoints chaos may call (a 401 would hide their status).
//! Which endpoints those are, and their credential headers, is in
//! `plan/auth.rs`.

mod auth;

use auth::callable;
pub use auth::{credential_headers, protected, unauthenticated, wanted_headers};

use crate::manifest::{Endpoint, HttpMethod};
pub use crate::model::contrib::BadKind;
use crate::model::contrib::{ChaosTraffic, Draw};
use crate::model::Model;

/// SplitMix64: tiny, fast and good enough to pick requests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Draw for Rng {
    fn below(&mut self, n: usize) -> usize {
        Rng::below(self, n)
    }
}

/// What the response must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any 2xx.
    Success,
    Status(u16),
}

impl Expect {
    pub fn met_by(self, status: u16) -> bool {
        match self {
            Expect::Success => (200..300).contains(&status),
            Expect::Status(s) => s == status,
        }
    }
    pub fn describe(self) -> String {
        match self {
            Expect::Success => "2xx".into(),
            Expect::Status(s) => s.to_string(),
        }
    }
}

/// One request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Groups the report: `METHOD template` (`GET <unknown path>` for 404s).
    pub endpoint: String,
    pub method: HttpMethod,
    /// Path and query.
    pub path: String,
    pub body: Option<String>,
    pub expect: Expect,
    /// `None` for a good request.
    pub bad: Option<BadKind>,
    /// Sent with the `--header`s that carry a credential; `false`: only
    /// with the others.
    pub credentials: bool,
}

impl Planned {
    fn good(method: HttpMethod, path: &str, body: Option<String>) -> Self {
        Planned {
            endpoint: format!("{method} {path}"),
            method,
            path: path.into(),
            body,
            expect: Expect::Success,
            bad: None,
            credentials: true,
        }
    }

    /// A request without credentials to a protected endpoint: a 401.
    fn no_credential(method: HttpMethod, path: &str, body: Option<String>) -> Self {
        Planned {
            expect: Expect::Status(401),
            bad: Some(BadKind::NoCredential),
            credentials: false,
            ..Planned::good(method, path, body)
        }
    }
}

/// The good requests this manifest allows: those the endpoints' handlers
/// take (no path parameters), with a body when they need one and one can
/// be drawn. Each is `(method, path, endpoint index, callable)`: whether
/// chaos may call it (else it is sent without credentials and must be a
/// 401).
fn good_candidates(aim: &Aim) -> Vec<(HttpMethod, String, usize, bool)> {
    let mut out = Vec::new();
    for (i, (ep, t)) in aim.endpoints().enumerate() {
        if ep.path.contains('{') || !t.good {
            continue;
        }
        // Probe that a body can be built (the real one is drawn per request).
        if t.body
            .as_ref()
            .is_some_and(|b| b(&mut Rng::new(0)).is_none())
        {
            continue;
        }
        let ok = callable(aim.model, ep, aim.given);
        out.push((ep.method, ep.path.clone(), i, ok));
    }
    out
}

/// The endpoints bad requests may aim at (see [`callable`]); for a wrong
/// method, every endpoint of its path.
struct Aim<'a> {
    model: &'a Model,
    given: &'a [String],
    /// What each endpoint's handler takes, same order.
    traffic: Vec<ChaosTraffic>,
}

impl<'a> Aim<'a> {
    fn new(model: &'a Model, given: &'a [String]) -> Self {
        let traffic = (model.manifest.endpoints.iter())
            .zip(&model.handlers)
            .map(|(e, h)| h.chaos(e, model))
            .collect();
        Aim {
            model,
            given,
            traffic,
        }
    }

    /// Every endpoint with its traffic.
    fn endpoints(&self) -> impl Iterator<Item = (&'a Endpoint, &ChaosTraffic)> {
        self.model.manifest.endpoints.iter().zip(&self.traffic)
    }

    /// A body for a request to endpoint `i`, if it takes one.
    fn body(&self, i: usize, rng: &mut Rng) -> Option<String> {
        self.traffic[i].body.as_ref().and_then(|b| b(rng))
    }

    fn ok(&self, e: &Endpoint) -> bool {
        !e.path.contains('{')
            && callable(self.model, e, self.given)
            && (self.model.manifest.endpoints.iter())
                .filter(|o| o.path == e.path)
                .all(|o| callable(self.model, o, self.given))
    }
}

/// Bad kinds this manifest can exercise.
fn bad_kinds(aim: &Aim) -> Vec<BadKind> {
    let model = aim.model;
    let mut k = vec![BadKind::UnknownPath];
    let eps = || aim.endpoints().filter(|(e, _)| aim.ok(e));
    if eps().any(|(e, _)| !free_methods(model, &e.path).is_empty()) {
        k.push(BadKind::WrongMethod);
    }
    k.extend(eps().flat_map(|(_, t)| t.bad.iter().map(|b| b.kind)));
    k.sort();
    k.dedup();
    k
}

/// Methods `path` does not declare (a request with one is a 405).
fn free_methods(model: &Model, path: &str) -> Vec<HttpMethod> {
    [HttpMethod::Delete, HttpMethod::Put, HttpMethod::Patch]
        .into_iter()
        .filter(|m| {
            !model
                .manifest
                .endpoints
                .iter()
                .any(|o| o.path == path && o.method == *m)
        })
        .collect()
}

fn bad_request(aim: &Aim, kind: BadKind, rng: &mut Rng) -> Planned {
    let model = aim.model;
    let eps = &model.manifest.endpoints;
    let pick = |rng: &mut Rng, f: &dyn Fn(&Endpoint) -> bool| {
        let c: Vec<usize> = (0..eps.len())
            .filter(|&i| aim.ok(&eps[i]) && f(&eps[i]))
            .collect();
        c[rng.below(c.len())]
    };
    let mk = |endpoint: String, method: HttpMethod, path: String, body, status| Planned {
        endpoint,
        method,
        path,
        body,
        expect: Expect::Status(status),
        bad: Some(kind),
        credentials: true,
    };
    match kind {
        BadKind::UnknownPath => {
            let path = format!("/chaos-{:08x}", rng.next_u64() as u32);
            mk(
                "GET <unknown path>".into(),
                HttpMethod::Get,
                path,
                None,
                404,
            )
        }
        BadKind::WrongMethod => {
            let e = &eps[pick(rng, &|e| !free_methods(model, &e.path).is_empty())];
            let choices = free_methods(model, &e.path);
            let m = choices[rng.below(choices.len())];
            mk(format!("{m} {}", e.path), m, e.path.clone(), None, 405)
        }
        BadKind::NoCredential => {
            let i = pick(rng, &|e| protected(model, e));
            let e = &eps[i];
            let body = aim.body(i, rng);
            Planned::no_credential(e.method, &e.path, body)
        }
        // What the endpoints' handlers refuse: malformed bodies go to the
        // first endpoint that refuses them, the others to one drawn.
        _ => {
            let offers = |i: usize| {
                aim.ok(&eps[i])
                    .then(|| aim.traffic[i].bad.iter().find(|b| b.kind == kind))
                    .flatten()
            };
            let c: Vec<usize> = (0..eps.len()).filter(|&i| offers(i).is_some()).collect();
            let i = match kind {
                BadKind::MalformedJson => c[0],
                _ => c[rng.below(c.len())],
            };
            let (e, bad) = (&eps[i], offers(i).expect("a candidate offers it"));
            let variant = match bad.variants.len() {
                0 | 1 => bad.variants.first().cloned().unwrap_or_default(),
                n => bad.variants[rng.below(n)].clone(),
            };
            let path = match variant.query {
                Some(q) => format!("{}?{q}", e.path),
                None => e.path.clone(),
            };
            let m = e.method;
            let body = variant.body.map(str::to_string);
            mk(format!("{m} {}", e.path), m, path, body, bad.status)
        }
    }
}

/// `n` requests, about `bad_ratio` of them bad, drawn from `seed`, plus
/// one without credentials per protected endpoint (no path parameter) at
/// a drawn place. `given`: the `--header` names, lowercase.
pub fn plan(
    model: &Model,
    n: usize,
    bad_ratio: f64,
    seed: u64,
    given: &[String],
) -> Result<Vec<Planned>, String> {
    let aim = Aim::new(model, given);
    let good = good_candidates(&aim);
    let bad = bad_kinds(&aim);
    if good.is_empty() && bad_ratio < 1.0 {
        return Err("the manifest declares no endpoint chaos can send good requests to".into());
    }
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if rng.unit() < bad_ratio || good.is_empty() {
            let kind = bad[rng.below(bad.len())];
            out.push(bad_request(&aim, kind, &mut rng));
        } else {
            let (method, path, i, ok) = &good[rng.below(good.len())];
            let body = aim.body(*i, &mut rng);
            out.push(match ok {
                true => Planned::good(*method, path, body),
                false => Planned::no_credential(*method, path, body),
            });
        }
    }
    for (i, e) in model.manifest.endpoints.iter().enumerate() {
        if e.path.contains('{') || !protected(model, e) {
            continue;
        }
        let body = aim.body(i, &mut rng);
        let at = rng.below(out.len() + 1);
        out.insert(at, Planned::no_credential(e.method, &e.path, body));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SchemeKind;

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
}
