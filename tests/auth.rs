//! Authentication end to end: the real server with every scheme (API key
//! from a file, scrape token from the environment, JWTs signed with HS256,
//! RS256 and ES256), reached by a real HTTP client. Refusals are 401 with
//! `WWW-Authenticate` (403 for a missing scope), counted under their status,
//! logged with a bounded reason and never with the credential; a reload
//! rotates the keys.

mod common;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const ALICE: &str = "alice-key-000000000001";
const ROTATED: &str = "alice-key-000000000002";
const SCRAPE: &str = "scrape-token-0000000001";
const HS_SECRET: &str = "hs256-secret-hs256-secret-0000000001";

fn manifest() -> String {
    r#"
service: { name: authsvc, version: 1.2.3 }
auth:
  schemes:
    key: { type: api_key, keys: { file: keys.txt } }
    scrape: { type: bearer, keys: { env: AUTH_TEST_SCRAPE } }
    hs: { type: jwt, algorithm: HS256, key: { env: AUTH_TEST_HS }, issuer: https://issuer.test, audience: authsvc }
    rs: { type: jwt, algorithm: RS256, key: { file: rs.pub.pem } }
    es: { type: jwt, algorithm: ES256, key: { file: es.pub.pem } }
  default: { schemes: [key] }
  docs: { schemes: [key] }
endpoints:
  - { path: /, handler: info, summary: Open, auth: { schemes: [] } }
  - { path: /keyed, handler: info, summary: Keyed }
  - { path: /jwt, handler: info, summary: Scoped, auth: { schemes: [hs, rs, es], scopes: ["orders:read"] } }
  - { path: /admin, handler: info, summary: Admins, auth: { schemes: [hs], claims: { role: admin } } }
  - { path: /metrics, handler: prometheus, summary: Metrics, auth: { schemes: [scrape] } }
metrics:
  - { name: http_requests_total, type: counter, help: Requests., labels: [method, path, status], source: http.requests }
logging:
  dir: logs
  file: auth
  fields: [timestamp, level, logger, message, request_id, method, path, status, duration_ms, caller]
kubernetes:
  env: [{ name: AUTH_TEST_SCRAPE, secret: { name: authsvc-secrets, key: scrape-token } }]
"#
    .to_string()
}

fn openssl(args: &[&str], dir: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is required (Debian package openssl)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Key pairs for RS256 and ES256, made fresh for the run.
fn key_pairs(dir: &Path) {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rs.pem",
        ],
        dir,
    );
    openssl(
        &["pkey", "-in", "rs.pem", "-pubout", "-out", "rs.pub.pem"],
        dir,
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "es.pem",
        ],
        dir,
    );
    openssl(
        &["pkey", "-in", "es.pem", "-pubout", "-out", "es.pub.pem"],
        dir,
    );
}

/// A refused request: path, headers, and the reason it is refused.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn hs(claims: Value) -> String {
    jwt(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()).unwrap(),
        claims,
    )
}

fn start(dir: &Path) -> Server {
    std::fs::write(dir.join("manifest.yaml"), manifest()).unwrap();
    std::fs::write(dir.join("keys.txt"), format!("{ALICE}:alice\n")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--manifest", "manifest.yaml"])
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("AUTH_TEST_SCRAPE", SCRAPE)
        .env("AUTH_TEST_HS", HS_SECRET);
    let stderr = std::fs::File::create(dir.join("server.stderr")).unwrap();
    Server::spawn(cmd, dir, stderr.into()).0
}

async fn call(url: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let mut r = reqwest::Client::new().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

/// The tokens of the first test: a valid one for each JWT scheme (HS256,
/// RS256, ES256) and the ones made along the way, kept to check that none
/// of them is ever logged or exposed.
struct Tokens {
    valid: [String; 3],
    other_hs: String,
    expired: String,
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn tokens(dir: &Path) -> Tokens {
    let rs_key = EncodingKey::from_rsa_pem(&std::fs::read(dir.join("rs.pem")).unwrap()).unwrap();
    let es_key = EncodingKey::from_ec_pem(&std::fs::read(dir.join("es.pem")).unwrap()).unwrap();
    let good = json!({"sub": "carol", "exp": now() + 600, "iss": "https://issuer.test",
                      "aud": "authsvc", "scope": "orders:read orders:write"});
    let expired = json!({"sub": "carol", "exp": now() - 3600, "iss": "https://issuer.test",
                         "aud": "authsvc", "scope": "orders:read"});
    let other_hs = jwt(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-another-secret-000001").unwrap(),
        good.clone(),
    );
    let valid = [
        hs(good.clone()),
        jwt(
            Algorithm::RS256,
            &rs_key,
            json!({"sub": "dave", "exp": now() + 600, "scp": ["orders:read"]}),
        ),
        jwt(
            Algorithm::ES256,
            &es_key,
            json!({"sub": "erin", "exp": now() + 600, "scope": "orders:read"}),
        ),
    ];
    Tokens {
        valid,
        other_hs,
        expired: hs(expired),
    }
}

/// Missing, malformed, foreign, expired and wrong-scheme credentials: 401
/// with a `WWW-Authenticate` challenge that names the error.
async fn bad_credentials_get_401_with_a_challenge(srv: &Server, t: &Tokens) {
    // (path, headers, status, reason in the challenge or none)
    let unauthorized: Vec<Case> = vec![
        ("/keyed", vec![], "missing"),
        (
            "/keyed",
            vec![("x-api-key", "wrong-key-0000000000000".into())],
            "invalid",
        ),
        ("/jwt", vec![], "missing"),
        (
            "/jwt",
            vec![("authorization", format!("Basic {ALICE}"))],
            "malformed",
        ),
        (
            "/jwt",
            vec![("authorization", bearer("not-a-jwt"))],
            "malformed",
        ),
        (
            "/jwt",
            vec![("authorization", bearer(&t.other_hs))],
            "invalid",
        ),
        (
            "/jwt",
            vec![("authorization", bearer(&t.expired))],
            "expired",
        ),
        // An RS256 token is not accepted by an HS256-only endpoint.
        (
            "/admin",
            vec![("authorization", bearer(&t.valid[1]))],
            "invalid",
        ),
        ("/metrics", vec![("x-api-key", ALICE.into())], "missing"),
        (
            "/metrics",
            vec![("authorization", bearer(ALICE))],
            "invalid",
        ),
    ];
    for (path, headers, reason) in &unauthorized {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, challenge, body) = call(&srv.url(path), &h).await;
        assert_eq!(status, 401, "{path} {reason}: {body}");
        assert!(
            !challenge.is_empty(),
            "{path} {reason}: no WWW-Authenticate"
        );
        assert_eq!(body["status"], 401, "{body}");
        assert!(body["message"].is_string());
        if *reason == "missing" {
            assert!(!challenge.contains("error="), "{challenge}");
        } else if path != &"/keyed" {
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        }
    }
    let (_, challenge, _) = call(&srv.url("/keyed"), &[]).await;
    assert_eq!(challenge, "ApiKey realm=\"authsvc\", header=\"X-API-Key\"");
}

/// Valid callers without the scope or claim: 403. Returns the two tokens.
async fn callers_without_the_scope_or_claim_get_403(srv: &Server) -> [String; 2] {
    let no_scope = hs(
        json!({"sub": "carol", "exp": now() + 600, "iss": "https://issuer.test", "aud": "authsvc"}),
    );
    let user = hs(
        json!({"sub": "carol", "exp": now() + 600, "iss": "https://issuer.test", "aud": "authsvc", "role": "user"}),
    );
    for (path, token) in [("/jwt", &no_scope), ("/admin", &user)] {
        let (status, challenge, body) =
            call(&srv.url(path), &[("authorization", &bearer(token))]).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
    }
    [no_scope, user]
}

/// `auth.docs` guards the document and the docs UI.
async fn the_docs_are_guarded(srv: &Server) {
    for path in ["/openapi.json", "/docs"] {
        assert_eq!(call(&srv.url(path), &[]).await.0, 401, "{path}");
        let r = reqwest::Client::new()
            .get(srv.url(path))
            .header("x-api-key", ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

/// Valid callers: 2xx. Returns the admin's token.
async fn valid_callers_get_2xx(srv: &Server, t: &Tokens) -> String {
    assert_eq!(call(&srv.url("/"), &[]).await.0, 200);
    assert_eq!(
        call(&srv.url("/keyed"), &[("x-api-key", ALICE)]).await.0,
        200
    );
    for t in &t.valid {
        let (status, _, body) = call(&srv.url("/jwt"), &[("authorization", &bearer(t))]).await;
        assert_eq!(status, 200, "{body}");
    }
    let admin = hs(
        json!({"sub": "root", "exp": now() + 600, "iss": "https://issuer.test", "aud": "authsvc", "role": "admin"}),
    );
    assert_eq!(
        call(&srv.url("/admin"), &[("authorization", &bearer(&admin))])
            .await
            .0,
        200
    );
    admin
}

/// Counted under their status, in the closed set. Returns the exposition.
async fn requests_are_counted_under_their_status(srv: &Server) -> String {
    let metrics = reqwest::Client::new()
        .get(srv.url("/metrics"))
        .bearer_auth(SCRAPE)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |path: &str, status: &str| {
        metric_sum(
            &metrics,
            "http_requests_total",
            &[&format!("path=\"{path}\""), &format!("status=\"{status}\"")],
        )
    };
    assert_eq!(count("/keyed", "401"), 3.0, "{metrics}");
    assert_eq!(count("/jwt", "401"), 5.0);
    assert_eq!(count("/jwt", "403"), 1.0);
    assert_eq!(count("/admin", "403"), 1.0);
    assert_eq!(count("/jwt", "200"), 3.0);
    assert_eq!(count("/metrics", "401"), 2.0);
    metrics
}

/// No credential, key or token in any line, nor in /metrics; each refusal's
/// reason, bounded; the caller on the request line.
fn the_log_names_reasons_and_callers_but_no_secret(
    lines: &[Value],
    metrics: &str,
    secrets: &[String],
) {
    let text: String = lines.iter().map(|l| l.to_string()).collect();
    // No credential, key or token in any line, nor in /metrics.
    for s in secrets {
        assert!(!text.contains(s.as_str()), "a secret in the log");
        assert!(!metrics.contains(s.as_str()), "a secret in /metrics");
    }
    // Each refusal's reason, bounded.
    let reasons: Vec<&str> = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::auth")
        .filter_map(|l| l["reason"].as_str())
        .collect();
    for r in ["missing", "malformed", "invalid", "expired", "forbidden"] {
        assert!(reasons.contains(&r), "no {r} in {reasons:?}");
    }
    // The caller is on the request line, named by key principal or `sub`.
    let callers: Vec<&str> = lines
        .iter()
        .filter(|l| l["message"] == "request completed")
        .filter_map(|l| l["caller"].as_str())
        .collect();
    for who in ["alice", "carol", "dave", "erin", "root"] {
        assert!(callers.contains(&who), "{who} not in {callers:?}");
    }
}

#[tokio::test]
async fn every_scheme_refuses_what_it_must_and_admits_who_it_may() {
    let dir = tempdir();
    key_pairs(dir.path());
    let srv = start(dir.path());
    let t = tokens(dir.path());

    bad_credentials_get_401_with_a_challenge(&srv, &t).await;
    // Refusal lines are at most 10 a second: a new second for the 403s'.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let [no_scope, user] = callers_without_the_scope_or_claim_get_403(&srv).await;
    the_docs_are_guarded(&srv).await;
    let admin = valid_callers_get_2xx(&srv, &t).await;
    let metrics = requests_are_counted_under_their_status(&srv).await;

    let pid = srv.pid();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = srv.stop();
    let lines = log_lines(dir.path());
    let mut secrets: Vec<String> = vec![ALICE.into(), SCRAPE.into(), HS_SECRET.into(), t.other_hs];
    secrets.extend(t.valid.iter().cloned());
    secrets.extend([no_scope, user, admin]);
    the_log_names_reasons_and_callers_but_no_secret(&lines, &metrics, &secrets);
}

#[tokio::test]
async fn refusal_warnings_are_rate_bounded_and_a_reload_rotates_keys() {
    let dir = tempdir();
    key_pairs(dir.path());
    let srv = start(dir.path());
    let c = reqwest::Client::new();
    for _ in 0..200 {
        let r = c
            .get(srv.url("/keyed"))
            .header("x-api-key", "bad-key-00000000000000")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Rotate: the file now holds another key; SIGHUP reloads.
    std::fs::write(dir.path().join("keys.txt"), format!("{ROTATED}:alice\n")).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = c
            .get(srv.url("/keyed"))
            .header("x-api-key", ROTATED)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new key was never accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = c
        .get(srv.url("/keyed"))
        .header("x-api-key", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the rotated-out key still works");
    let _ = srv.stop();
    let lines = log_lines(dir.path());
    let warnings: Vec<&Value> = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::auth")
        .collect();
    // 201 refusals, at most 10 lines a second: the burst took well under 20 s.
    assert!(
        warnings.len() < 200,
        "{} refusal lines for 201 refusals",
        warnings.len()
    );
    assert!(!warnings.is_empty());
    // Every refusal is still a request line with its 401 (and those of the
    // new key polled before the reload took).
    let refused = lines.iter().filter(|l| l["status"] == 401).count();
    assert!(refused >= 201, "{refused} request lines with 401");
}

/// `serve` in `dir` with the HS256 secret and, if given, the scrape token
/// in its environment: its output (it is expected to stop at once).
fn serve_once(dir: &Path, scrape: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--manifest", "manifest.yaml"])
        .args(["--port", "0", "--host", "127.0.0.1"])
        .env("AUTH_TEST_HS", HS_SECRET)
        .env_remove("AUTH_TEST_SCRAPE")
        .current_dir(dir);
    if let Some(token) = scrape {
        cmd.env("AUTH_TEST_SCRAPE", token);
    }
    cmd.output().unwrap()
}

#[test]
fn a_missing_key_source_stops_the_start_with_its_name_and_never_its_value() {
    let dir = tempdir();
    std::fs::write(dir.path().join("manifest.yaml"), manifest()).unwrap();
    std::fs::write(dir.path().join("keys.txt"), format!("{ALICE}:alice\n")).unwrap();
    key_pairs(dir.path());
    let out = serve_once(dir.path(), None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("auth.schemes.scrape") && err.contains("AUTH_TEST_SCRAPE is not set"),
        "{err}"
    );
    // A short key is refused, named by its entry, never shown.
    std::fs::write(dir.path().join("keys.txt"), "short-key:alice\n").unwrap();
    let out = serve_once(dir.path(), Some(SCRAPE));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("entry 1 of") && !err.contains("short-key"),
        "{err}"
    );
    // `validate` needs no secret at all.
    let out = Command::new(bin())
        .args(["validate", "--manifest", "manifest.yaml"])
        .env_remove("AUTH_TEST_SCRAPE")
        .env_remove("AUTH_TEST_HS")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn auth_mistakes_are_all_reported_at_once_and_located() {
    let dir = tempdir();
    let bad = r#"
service: { name: authsvc, version: 1.2.3 }
auth:
  schemes:
    key: { type: api_key, header: "bad header", keys: { env: "1BAD" } }
    tok: { type: bearer, algorithm: HS256 }
    j: { type: jwt, keys: { env: X } }
  default: { schemes: [kee] }
endpoints:
  - { path: /, handler: info, auth: { schemes: [key], scopes: ["a b"] } }
  - { path: /m, handler: prometheus, auth: { schemes: [tok, tok] } }
"#;
    std::fs::write(dir.path().join("manifest.yaml"), bad).unwrap();
    let (status, _, err) = run(&["validate", "--manifest", "manifest.yaml"], dir.path());
    assert!(!status.success());
    for want in [
        "auth.schemes.key.header: \"bad header\" is not an HTTP header name",
        "auth.schemes.key.keys.env: \"1BAD\" is not an environment variable name",
        "auth.schemes.tok.algorithm: `algorithm` is only for type jwt",
        "a scheme of type \"bearer\" needs `keys`",
        "auth.schemes.j.keys: `keys` is only for type api_key or bearer",
        "a scheme of type \"jwt\" needs `algorithm`",
        "auth.default.schemes[0]: unknown auth scheme \"kee\": did you mean \"key\"?",
        "endpoints[0].auth.scopes: only a jwt carries scopes",
        "endpoints[0].auth.scopes[0]: a scope is one word",
        "endpoints[1].auth.schemes[1]: scheme \"tok\" is listed twice",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("manifest.yaml:5:"), "located: {err}");
    // `{env: …}` and `{file: …}` are exclusive.
    std::fs::write(
        dir.path().join("manifest.yaml"),
        "service: { name: a, version: '1' }\nauth:\n  schemes:\n    k: { type: api_key, keys: { env: A, file: b } }\n",
    )
    .unwrap();
    let (status, _, err) = run(&["validate", "--manifest", "manifest.yaml"], dir.path());
    assert!(!status.success());
    assert!(err.contains("exactly one of `env`"), "{err}");
}
