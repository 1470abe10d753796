//! `telltale chaos --header` and `auth:`. Until the server enforces `auth`,
//! chaos runs against a small fake that does: it answers 401 (with
//! `WWW-Authenticate`) to a protected path without the right token, 200
//! otherwise, and records every request's headers. So these tests see that
//! `--header` values from the command line, an environment variable or a
//! file reach the server, that each protected endpoint also gets one
//! request without them (a 401), that without a credential chaos expects
//! 401s and says why, that a bad `--header` stops chaos before any traffic
//! (exit 2), and that no value ever appears in chaos's output.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// The bearer token the fake accepts, and the api key.
const TOKEN: &str = "tok-5ecret-Q9";
const API_KEY: &str = "k3y-5ecret-Z7";
const TENANT: &str = "tenant-from-a-file-81";

/// One request the fake saw: method, path and query, headers (lowercase names).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
}

struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<Mutex<usize>>,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// `/products` needs the bearer token; `/grafana/search` the token or the
/// api key (`X-Shop-Key`); anything else is a 200.
fn fake() -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let connections: Arc<Mutex<usize>> = Arc::default();
    let (s, c) = (seen.clone(), connections.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            *c.lock().unwrap() += 1;
            let s = s.clone();
            std::thread::spawn(move || serve(conn, &s));
        }
    });
    Fake {
        base,
        seen,
        connections,
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let path = words.next().unwrap_or("/").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let bare = path.split('?').next().unwrap_or("");
        let bearer = headers.get("authorization") == Some(&format!("Bearer {TOKEN}"));
        let key = headers.get("x-shop-key").map(String::as_str) == Some(API_KEY);
        let allowed = match bare {
            "/products" => bearer,
            "/grafana/search" => bearer || key,
            _ => true,
        };
        seen.lock().unwrap().push(Seen {
            method,
            path,
            headers,
        });
        let answer = if allowed {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                .to_string()
        } else {
            let body = r#"{"error":"unauthorized"}"#;
            format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                 www-authenticate: Bearer realm=\"shop\"\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The demo manifest with `auth`: `/products` takes the bearer token,
/// `/grafana/search` the token or the api key; the rest is open.
fn protected_manifest(dir: &Path) -> String {
    let m = copy_default_manifest(dir);
    edit(
        &m,
        "\nendpoints:\n",
        "\nauth:\n  schemes:\n    token: { type: bearer, keys: { env: CHAOS_TOKEN } }\n    \
         shop_key: { type: api_key, header: X-Shop-Key, keys: { env: CHAOS_SHOP_KEY } }\n\
         endpoints:\n",
    );
    edit(
        &m,
        "  - path: /products\n",
        "  - path: /products\n    auth: { schemes: [token] }\n",
    );
    edit(
        &m,
        "  - path: /grafana/search\n",
        "  - path: /grafana/search\n    auth: { schemes: [shop_key, token] }\n",
    );
    m.to_str().unwrap().to_string()
}

/// `telltale chaos -m <manifest> --target <base> <extra>` in `cwd` with
/// `env` set; (exit code, stdout, stderr).
fn chaos(
    manifest: &str,
    base: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(["chaos", "--manifest", manifest, "--target", base])
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("run telltale");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_no_secret(out: &str, err: &str) {
    for secret in [TOKEN, API_KEY, TENANT, "5ecret"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret:?} printed:\n{out}\n{err}"
        );
    }
}

/// Kind → (count, expected) of the report rows for `endpoint`.
fn rows(v: &Value, endpoint: &str) -> BTreeMap<String, (u64, String)> {
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["endpoint"] == endpoint)
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                (
                    r["count"].as_u64().unwrap(),
                    r["expected"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// The `--header` options of the tests below: a token from the
/// environment, a tenant from a file, a plain value.
const HEADERS: [&str; 6] = [
    "--header",
    "Authorization: Bearer ${env:CHAOS_TEST_TOKEN}",
    "-H",
    "X-Tenant: ${file:tenant.txt}",
    "-H",
    "X-Run: chaos-plain",
];

/// The fake, a directory with the protected manifest and the tenant file,
/// and the manifest's path.
fn fake_and_protected_manifest() -> (Fake, tempfile::TempDir, String) {
    let fake = fake();
    let dir = tempdir();
    let m = protected_manifest(dir.path());
    std::fs::write(dir.path().join("tenant.txt"), format!("{TENANT}\n")).unwrap();
    (fake, dir, m)
}

#[test]
fn header_values_from_env_and_file_reach_the_server_and_are_never_printed() {
    let (fake, dir, m) = fake_and_protected_manifest();
    let mut args = vec![
        "--requests",
        "60",
        "--bad-ratio",
        "0",
        "--seed",
        "4",
        "--json",
    ];
    args.extend(HEADERS);
    let env = [("CHAOS_TEST_TOKEN", TOKEN)];
    let (code, out, err) = chaos(&m, &fake.base, &args, &env, dir.path());
    assert_eq!(code, 0, "{out}\n{err}");
    assert_no_secret(&out, &err);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["passed"], true, "{v:#}");
    assert_eq!(
        v["headers"],
        serde_json::json!(["authorization", "x-tenant", "x-run"])
    );
    // 60 drawn, plus one without credentials per protected endpoint.
    assert_eq!(
        (v["planned"].as_u64(), v["sent"].as_u64()),
        (Some(62), Some(62))
    );
    for ep in ["GET /products", "POST /grafana/search"] {
        let r = rows(&v, ep);
        assert_eq!(r["no_credential"], (1, "401".to_string()), "{ep}: {r:?}");
        assert_eq!(r["good"].1, "2xx", "{ep}: {r:?}");
    }
    assert!(!err.contains("unauthenticated"), "{err}");

    let seen = fake.seen();
    assert_eq!(seen.len(), 62);
    let (with, without): (Vec<&Seen>, Vec<&Seen>) = seen
        .iter()
        .partition(|s| s.headers.contains_key("authorization"));
    // Every request carries the headers, the token and the file's text
    // (its new line dropped), but the two planned without credentials.
    for s in &with {
        assert_eq!(s.headers["authorization"], format!("Bearer {TOKEN}"));
    }
    for s in &seen {
        assert_eq!(s.headers["x-tenant"], TENANT, "{s:?}");
        assert_eq!(s.headers["x-run"], "chaos-plain", "{s:?}");
    }
    let mut bare: Vec<String> = without
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    bare.sort();
    assert_eq!(bare, ["GET /products", "POST /grafana/search"]);
}

#[test]
fn text_mode_names_the_headers_sent_and_the_no_credential_rows() {
    let (fake, dir, m) = fake_and_protected_manifest();
    let env = [("CHAOS_TEST_TOKEN", TOKEN)];
    // Text mode says which headers were sent (names only), and the
    // no-credential rows.
    let (code, out, err) = chaos(
        &m,
        &fake.base,
        &[
            &["--requests", "20", "--bad-ratio", "0", "--seed", "4"][..],
            &HEADERS[..],
        ]
        .concat(),
        &env,
        dir.path(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_no_secret(&out, &err);
    assert!(
        out.contains("Headers sent: authorization, x-tenant, x-run"),
        "{out}"
    );
    assert!(
        out.contains("no_credential") && out.contains("PASS"),
        "{out}"
    );
}

#[test]
fn a_wrong_token_fails_the_good_requests_and_is_never_printed() {
    let (fake, dir, m) = fake_and_protected_manifest();
    // A wrong token: the good requests fail, and the report still names no value.
    let (code, out, err) = chaos(
        &m,
        &fake.base,
        &[
            &["--requests", "20", "--bad-ratio", "0", "--seed", "4"][..],
            &HEADERS[..],
        ]
        .concat(),
        &[("CHAOS_TEST_TOKEN", "wrong-5ecret-token")],
        dir.path(),
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("expected 2xx, got 401") && out.contains("FAIL"),
        "{out}"
    );
    assert_no_secret(&out, &err);
    assert!(
        !out.contains("wrong-") && !err.contains("wrong-"),
        "{out}\n{err}"
    );
}

#[test]
fn an_api_key_header_serves_only_the_endpoints_that_accept_it() {
    let fake = fake();
    let dir = tempdir();
    let m = protected_manifest(dir.path());
    let key = dir.path().join("key");
    std::fs::write(&key, API_KEY).unwrap();
    let spec = format!("X-Shop-Key: ${{file:{}}}", key.display());
    let (code, out, err) = chaos(
        &m,
        &fake.base,
        &[
            "--requests",
            "60",
            "--bad-ratio",
            "0",
            "--seed",
            "8",
            "--json",
            "-H",
            &spec,
        ],
        &[],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_no_secret(&out, &err);
    let v: Value = serde_json::from_str(&out).unwrap();
    // /grafana/search takes the key; /products (bearer only) must be a 401.
    let search = rows(&v, "POST /grafana/search");
    assert_eq!(search["good"].1, "2xx", "{search:?}");
    let products = rows(&v, "GET /products");
    assert!(!products.contains_key("good"), "{products:?}");
    assert_eq!(products["no_credential"].1, "401");
    assert!(
        err.contains(
            "no --header carries a credential that 1 protected endpoint (GET /products) accepts"
        ),
        "{err}"
    );
    for s in fake.seen() {
        match s.headers.get("x-shop-key") {
            Some(k) => assert_eq!(k, API_KEY),
            None => assert!(
                s.path == "/products" || s.path == "/grafana/search",
                "{s:?} without the key"
            ),
        }
    }
}

#[test]
fn unauthenticated_chaos_expects_401_and_says_so() {
    let fake = fake();
    let dir = tempdir();
    let m = protected_manifest(dir.path());
    let (code, out, err) = chaos(
        &m,
        &fake.base,
        &[
            "--requests",
            "60",
            "--bad-ratio",
            "0",
            "--seed",
            "4",
            "--json",
        ],
        &[],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["passed"], true);
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("note:")).collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(
        notes[0].contains("chaos is unauthenticated")
            && notes[0].contains("2 protected endpoints (GET /products, POST /grafana/search)")
            && notes[0].contains(
                "pass --header with Authorization or X-Shop-Key to authenticate, \
                 e.g. --header 'Authorization: Bearer ${env:TOKEN}'"
            ),
        "{err}"
    );
    for ep in ["GET /products", "POST /grafana/search"] {
        let r = rows(&v, ep);
        assert!(!r.contains_key("good"), "{ep}: {r:?}");
        assert_eq!(r["no_credential"].1, "401", "{ep}: {r:?}");
        assert!(r["no_credential"].0 >= 1);
    }
    let good = v["good"]["total"].as_u64().unwrap();
    assert!(
        good > 0 && v["good"]["succeeded"].as_u64() == Some(good),
        "{v:#}"
    );
    assert!(fake
        .seen()
        .iter()
        .all(|s| !s.headers.contains_key("authorization")));
}

#[test]
fn a_bad_header_stops_chaos_before_any_traffic() {
    let fake = fake();
    let dir = tempdir();
    let m = protected_manifest(dir.path());
    let missing = dir.path().join("no-such-key");
    let missing_spec = format!("X-Shop-Key: ${{file:{}}}", missing.display());
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("Authorization Bearer {TOKEN}"),
            vec!["--header number 2", "not `Name: value`"],
        ),
        (
            "Authorization: Bearer ${env:CHAOS_TEST_UNSET}".into(),
            vec![
                "--header Authorization",
                "${env:CHAOS_TEST_UNSET} is not set",
            ],
        ),
        (
            missing_spec.clone(),
            vec![
                "--header X-Shop-Key",
                "${file:",
                "no-such-key",
                "cannot read",
            ],
        ),
        (
            format!("X Shop Key: {API_KEY}"),
            vec!["not a valid header name"],
        ),
        (
            format!("X-Shop-Key: {API_KEY}${{nope}}"),
            vec!["--header X-Shop-Key", "${env:NAME} or ${file:PATH}"],
        ),
    ];
    for (spec, wants) in cases {
        let (code, out, err) = chaos(
            &m,
            &fake.base,
            &["--requests", "5", "-H", "X-Run: ok", "-H", &spec],
            &[],
            dir.path(),
        );
        assert_eq!(code, 2, "{spec}: {out}\n{err}");
        assert!(out.is_empty(), "{spec}: {out}");
        for w in wants {
            assert!(err.contains(w), "{spec}: {w:?} missing: {err}");
        }
        assert_no_secret(&out, &err);
    }
    assert!(fake.seen().is_empty());
    assert_eq!(*fake.connections.lock().unwrap(), 0, "chaos connected");
}

/// The real server, whose manifest has no `auth`: extra headers change
/// nothing, and the run passes.
#[test]
fn headers_on_a_server_without_auth_change_nothing() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let (code, out, err) = chaos(
        manifest.to_str().unwrap(),
        &srv.base,
        &[
            "--requests",
            "40",
            "--seed",
            "3",
            "--json",
            "-H",
            "Authorization: Bearer ${env:CHAOS_TEST_TOKEN}",
        ],
        &[("CHAOS_TEST_TOKEN", TOKEN)],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_no_secret(&out, &err);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["planned"].as_u64(), v["passed"].as_bool()),
        (Some(40), Some(true))
    );
    assert!(!err.contains("note:"), "{err}");
    assert!(srv.stop().success());
}
