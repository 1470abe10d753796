//! The request mix: good requests from the manifest's endpoints, bad ones
//! of five kinds, each with the status it must get. Same seed, same
//! manifest → the same sequence.

use crate::manifest::HttpMethod;
use crate::model::datasource::Body as TargetBody;
use crate::model::Model;
use serde_yaml::Value as Yaml;

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

/// What a bad request tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    /// The fault endpoint (`/error`).
    ServerError,
    UnknownPath,
    WrongMethod,
    BadQueryParam,
    MalformedJson,
}

impl BadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::ServerError => "server_error",
            BadKind::UnknownPath => "unknown_path",
            BadKind::WrongMethod => "wrong_method",
            BadKind::BadQueryParam => "bad_query_param",
            BadKind::MalformedJson => "malformed_json",
        }
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
        }
    }
}

fn op_of(options: &Yaml) -> Option<&str> {
    options.get("op").and_then(Yaml::as_str)
}

/// A valid body for a datasource op, or `None` when the manifest gives it nothing to ask.
fn datasource_body(model: &Model, op: &str, rng: &mut Rng) -> Option<String> {
    let spec = &model.datasource;
    let first_table = spec.targets.iter().find_map(|t| match &t.body {
        TargetBody::Table(tb) => Some((t, tb)),
        _ => None,
    });
    let v = match op {
        "search" => serde_json::json!({"target": ""}),
        "metrics" => serde_json::json!({}),
        "tag_keys" => serde_json::json!({}),
        "variable" => serde_json::json!({"payload": {"target": ""}}),
        "annotations" => serde_json::json!({"annotation": {"name": "chaos", "query": ""}}),
        "metric_payload_options" => {
            let (t, _) = first_table?;
            serde_json::json!({"metric": t.name, "name": "columns", "payload": {}})
        }
        "tag_values" => {
            let (_, tb) = first_table?;
            serde_json::json!({"key": tb.columns.first()?.name})
        }
        "query" => {
            if spec.targets.is_empty() {
                return None;
            }
            let t = &spec.targets[rng.below(spec.targets.len())];
            let to = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            serde_json::json!({
                "range": {"from": to - 5 * 60_000, "to": to},
                "interval": "5s", "intervalMs": 5000, "maxDataPoints": 300,
                "targets": [{"target": t.name, "refId": "A"}]
            })
        }
        _ => return None,
    };
    Some(v.to_string())
}

/// The good requests this manifest allows: safe GETs (no path parameters,
/// not the fault endpoint) and the datasource POSTs with valid bodies.
fn good_candidates(model: &Model) -> Vec<(HttpMethod, String, Option<String>)> {
    let mut out = Vec::new();
    for ep in &model.manifest.endpoints {
        let method = ep.method;
        if ep.path.contains('{') || ep.handler == "fault" {
            continue;
        }
        match (method, ep.handler.as_str()) {
            (HttpMethod::Get, _) => out.push((method, ep.path.clone(), None)),
            (HttpMethod::Post, "grafana_json") => {
                if let Some(op) = op_of(&ep.options) {
                    // Probe that a body can be built (the real one is drawn per request).
                    if datasource_body(model, op, &mut Rng::new(0)).is_some() {
                        out.push((method, ep.path.clone(), Some(op.to_string())));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Bad kinds this manifest can exercise.
fn bad_kinds(model: &Model) -> Vec<BadKind> {
    let eps = &model.manifest.endpoints;
    let mut k = vec![BadKind::UnknownPath];
    if eps
        .iter()
        .any(|e| e.handler == "fault" && !e.path.contains('{'))
    {
        k.push(BadKind::ServerError);
    }
    if eps
        .iter()
        .any(|e| !e.path.contains('{') && !free_methods(model, &e.path).is_empty())
    {
        k.push(BadKind::WrongMethod);
    }
    if eps
        .iter()
        .any(|e| e.handler == "collection" && !e.path.contains('{'))
    {
        k.push(BadKind::BadQueryParam);
    }
    if query_endpoint(model).is_some() {
        k.push(BadKind::MalformedJson);
    }
    k.sort();
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

fn query_endpoint(model: &Model) -> Option<&str> {
    model
        .manifest
        .endpoints
        .iter()
        .find(|e| e.handler == "grafana_json" && op_of(&e.options) == Some("query"))
        .map(|e| e.path.as_str())
}

const MALFORMED: &[&str] = &[
    "{\"targets\": [",
    "{\"targets\": {\"target\": \"x\"}}",
    "{\"targets\": [{\"target\": 42}]}",
    "not json at all",
    "{\"range\": {\"from\": \"yesterday\", \"to\": \"now\"}, \"targets\": []}",
    "{}",
];

const BAD_QUERIES: &[&str] = &["limit=0", "limit=abc", "offset=-1", "bogus=1"];

fn bad_request(model: &Model, kind: BadKind, rng: &mut Rng) -> Planned {
    let eps = &model.manifest.endpoints;
    let pick = |rng: &mut Rng, f: &dyn Fn(&crate::manifest::Endpoint) -> bool| {
        let c: Vec<_> = eps
            .iter()
            .filter(|e| !e.path.contains('{') && f(e))
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
    };
    match kind {
        BadKind::ServerError => {
            let e = pick(rng, &|e| e.handler == "fault");
            let status = e
                .options
                .get("status")
                .and_then(Yaml::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(500);
            let m = e.method;
            mk(format!("{m} {}", e.path), m, e.path.clone(), None, status)
        }
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
            let e = pick(rng, &|e| !free_methods(model, &e.path).is_empty());
            let choices = free_methods(model, &e.path);
            let m = choices[rng.below(choices.len())];
            mk(format!("{m} {}", e.path), m, e.path.clone(), None, 405)
        }
        BadKind::BadQueryParam => {
            let e = pick(rng, &|e| {
                e.handler == "collection" && e.method == HttpMethod::Get
            });
            let q = BAD_QUERIES[rng.below(BAD_QUERIES.len())];
            mk(
                format!("GET {}", e.path),
                HttpMethod::Get,
                format!("{}?{q}", e.path),
                None,
                400,
            )
        }
        BadKind::MalformedJson => {
            let path = query_endpoint(model)
                .unwrap_or("/grafana/query")
                .to_string();
            let body = MALFORMED[rng.below(MALFORMED.len())].to_string();
            mk(
                format!("POST {path}"),
                HttpMethod::Post,
                path,
                Some(body),
                400,
            )
        }
    }
}

/// `n` requests, about `bad_ratio` of them bad, drawn from `seed`.
pub fn plan(model: &Model, n: usize, bad_ratio: f64, seed: u64) -> Result<Vec<Planned>, String> {
    let good = good_candidates(model);
    let bad = bad_kinds(model);
    if good.is_empty() && bad_ratio < 1.0 {
        return Err("the manifest declares no endpoint chaos can send good requests to".into());
    }
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if rng.unit() < bad_ratio || good.is_empty() {
            let kind = bad[rng.below(bad.len())];
            out.push(bad_request(model, kind, &mut rng));
        } else {
            let (method, path, op) = &good[rng.below(good.len())];
            let body = op
                .as_deref()
                .and_then(|op| datasource_body(model, op, &mut rng));
            out.push(Planned::good(*method, path, body));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        crate::model::validate(
            crate::manifest::load_embedded().unwrap(),
            &crate::plugins::Registry::builtin(),
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
        let a = plan(&m, 200, 0.3, 7).unwrap();
        let b = plan(&m, 200, 0.3, 7).unwrap();
        let c = plan(&m, 200, 0.3, 8).unwrap();
        assert_eq!(shape(&a), shape(&b));
        assert_ne!(shape(&a), shape(&c));
    }

    #[test]
    fn ratio_and_kinds_are_honoured() {
        let m = model();
        let p = plan(&m, 2000, 0.3, 1).unwrap();
        let bad = p.iter().filter(|x| x.bad.is_some()).count();
        assert!((500..700).contains(&bad), "{bad} bad of 2000");
        for k in bad_kinds(&m) {
            assert!(p.iter().any(|x| x.bad == Some(k)), "{k:?} never drawn");
        }
        assert_eq!(
            bad_kinds(&m).len(),
            5,
            "the demo manifest allows every bad kind"
        );
        assert!(plan(&m, 50, 0.0, 1)
            .unwrap()
            .iter()
            .all(|x| x.bad.is_none()));
        assert!(plan(&m, 50, 1.0, 1)
            .unwrap()
            .iter()
            .all(|x| x.bad.is_some()));
    }

    #[test]
    fn good_requests_never_hit_the_fault_endpoint() {
        let m = model();
        for x in plan(&m, 500, 0.0, 3).unwrap() {
            assert_ne!(x.path, "/error");
            assert_eq!(x.expect, Expect::Success);
            assert_eq!(x.body.is_some(), x.method == HttpMethod::Post);
        }
    }
}
