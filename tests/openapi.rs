//! The OpenAPI document is the truth (hardening item 5): a real validator
//! accepts it, every body and method rule it states is the server's, and
//! schemathesis, fuzzing the running server against it with every check,
//! finds nothing but the by-design exceptions in tests/fuzz/schemathesis.toml.
mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

/// The default manifest plus a templated route, served.
fn start() -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "  - path: /health\n",
        "  - path: /things/{id}\n    method: GET\n    summary: A templated route\n    handler: info\n  - path: /health\n",
    );
    let srv = Server::start(&manifest, dir.path());
    (dir, srv)
}

async fn doc(srv: &Server) -> Value {
    reqwest::get(srv.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_document_passes_openapi_spec_validator() {
    let (dir, srv) = start();
    let doc = doc(&srv).await;
    let params = &doc["paths"]["/things/{id}"]["get"]["parameters"];
    assert_eq!(params[0]["name"], "id", "the path parameter is declared");
    assert_eq!(params[0]["in"], "path");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = Command::new(venv_bin("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_docs_routes_answer_only_get_and_head() {
    let (_dir, srv) = start();
    let client = reqwest::Client::new();
    for path in ["/openapi.json", "/docs", "/docs/"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = client
                .request(method.parse().unwrap(), srv.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 405, "{method} {path}");
            assert_eq!(r.headers()["allow"], "GET, HEAD");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["status"], 405);
        }
        let r = client.head(srv.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "HEAD {path}: {}", r.status());
    }
}

/// For every operation with a body, a request without one is refused
/// exactly when the document says the body is required.
#[tokio::test]
async fn a_missing_body_is_refused_exactly_when_the_document_requires_one() {
    let (_dir, srv) = start();
    let doc = doc(&srv).await;
    let client = reqwest::Client::new();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(body) = op.get("requestBody") else {
                continue;
            };
            let required = body["required"].as_bool().unwrap_or(false);
            let r = client
                .request(method.to_uppercase().parse().unwrap(), srv.url(path))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            if required {
                assert_eq!(status, 400, "{method} {path} without its required body");
                let e: Value = r.json().await.unwrap();
                assert!(e["message"].as_str().unwrap().contains("required"), "{e}");
            } else {
                assert_eq!(status, 200, "{method} {path}: its body is optional");
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} operations take a body");
}

#[tokio::test]
async fn enforced_fields_are_required_and_objects_refuse_arrays() {
    let (_dir, srv) = start();
    let doc = doc(&srv).await;
    let schema = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    let required = |path: &str| -> Vec<String> {
        serde_json::from_value(schema(path)["required"].clone()).unwrap_or_default()
    };
    // Each of its alternatives (tables take `columns`, annotations `events`).
    for alt in schema("/grafana/metric-payload-options")["anyOf"]
        .as_array()
        .unwrap()
    {
        assert_eq!(alt["required"], json!(["metric", "name"]), "{alt}");
    }
    assert!(required("/grafana/tag-values").contains(&"key".to_string()));
    let filter = &schema("/grafana/query")["properties"]["adhocFilters"]["items"];
    assert_eq!(filter["required"], json!(["key", "operator"]));
    // The names a body may use are the manifest's.
    let targets =
        &schema("/grafana/query")["properties"]["targets"]["items"]["properties"]["target"]["enum"];
    assert!(
        targets.as_array().unwrap().contains(&json!("request_rate")),
        "{targets}"
    );

    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let (client, url) = (client.clone(), srv.url(path));
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // `[]` where an object is declared, even in a skipped placeholder target.
    for (path, body, field) in [
        (
            "/grafana/query",
            json!({"targets": [{"target": "", "payload": []}]}),
            "targets[0].payload",
        ),
        (
            "/grafana/annotations",
            json!({"annotation": []}),
            "annotation",
        ),
        ("/grafana/search", json!([]), "body"),
        (
            "/grafana/query",
            json!({"targets": [], "interval": null}),
            "interval",
        ),
    ] {
        let (status, e) = post(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {e}");
        assert_eq!(e["field"], field, "{e}");
    }
    // A missing enforced field is named.
    let (status, e) = post(
        "/grafana/query",
        json!({"targets": [], "adhocFilters": [{}]}),
    )
    .await;
    assert_eq!(
        (status, e["field"].as_str()),
        (400, Some("adhocFilters[0].key")),
        "{e}"
    );
}

#[test]
fn schemathesis_finds_no_failures() {
    let (dir, srv) = start();
    let seconds = std::env::var("TELLTALE_FUZZ_SECONDS").unwrap_or_else(|_| "45".into());
    let out = Command::new(venv_bin("schemathesis"))
        .arg("--config-file")
        .arg(repo().join("tests/fuzz/schemathesis.toml"))
        .args(["run", &srv.url("/openapi.json")])
        .args([
            "--max-time",
            &seconds,
            "--workers",
            "2",
            "--continue-on-failure",
        ])
        .args(["--request-timeout", "10"])
        .env("NO_COLOR", "1")
        // Its cache (`.schemathesis/`) goes to the test's folder, not the repo.
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report = || {
        format!(
            "schemathesis:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(
        out.status.success() && !text.contains("FAILURES") && text.contains("passed"),
        "{}",
        report()
    );
    // A warning may only name an operation with a by-design exception (a
    // rule across fields that the schema cannot state).
    let by_design = [
        "/grafana/query",
        "/grafana/annotations",
        "/grafana/variable",
    ];
    if let Some(warnings) = text.split("WARNINGS").nth(1) {
        let section = warnings.split("SUMMARY").next().unwrap_or("");
        for op in section.lines().filter_map(|l| l.trim().strip_prefix("- ")) {
            assert!(
                by_design.iter().any(|p| op.ends_with(p)),
                "a warning about {op}:\n{}",
                report()
            );
        }
    }
    // Every operation was exercised, not skipped.
    let ops = doc_ops(&srv);
    assert!(
        text.contains(&format!("Tested: {ops}")),
        "not all {ops} operations were tested:\n{text}"
    );
}

fn doc_ops(srv: &Server) -> usize {
    let doc: Value = serde_json::from_str(&http_get(&srv.url("/openapi.json"))).unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum()
}

/// The keys of [`guarded`]'s schemes, in its environment variables.
const API_KEY: &str = "docs-api-key-0123456789";
const TOKEN: &str = "docs-scrape-token-0123456789";
const JWT_SECRET: &str = "docs-jwt-secret-0123456789-abcdefghij";

/// The default manifest with all three kinds of scheme: an api key (in a
/// header of its own name) required by default, the probes open, and
/// routes that take the bearer token, either, or a jwt with scopes.
fn guarded() -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "\nendpoints:\n",
        "\nauth:\n  schemes:\n    docs_key:\n      type: api_key\n      header: X-Docs-Key\n      \
         description: A key from DOCS_API_KEYS\n      keys: { env: DOCS_API_KEYS }\n    \
         scrape:\n      type: bearer\n      keys: { env: DOCS_TOKENS }\n    \
         id_token:\n      type: jwt\n      algorithm: HS256\n      key: { env: DOCS_JWT_SECRET }\n  \
         default: { schemes: [docs_key] }\n\
         endpoints:\n  \
         - path: /keyed\n    method: GET\n    summary: Needs the api key\n    handler: info\n    \
           auth: { schemes: [docs_key] }\n  \
         - path: /scraped\n    method: GET\n    summary: Needs the bearer token\n    handler: info\n    \
           auth: { schemes: [scrape] }\n  \
         - path: /either\n    method: GET\n    summary: The api key or the bearer token\n    handler: info\n    \
           auth: { schemes: [docs_key, scrape] }\n  \
         - path: /scoped\n    method: GET\n    summary: A jwt with two scopes\n    handler: info\n    \
           auth: { schemes: [id_token], scopes: [orders.read, orders.write] }\n",
    );
    // The probes are open (`schemes: []` overrides the default).
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert_eq!(text.matches("    handler: probe\n").count(), 3);
    let text = text.replace(
        "    handler: probe\n",
        "    handler: probe\n    auth: { schemes: [] }\n",
    );
    // So is /metrics (a scrape token needs its Kubernetes Secret declared).
    let text = text.replace(
        "    handler: prometheus\n",
        "    handler: prometheus\n    auth: { schemes: [] }\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--manifest")
        .arg(&manifest)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env_remove("TELLTALE_INSTANCE")
        .env_remove("POD_NAME")
        .env("DOCS_API_KEYS", format!("{API_KEY}:docs-reader"))
        .env("DOCS_TOKENS", TOKEN)
        .env("DOCS_JWT_SECRET", JWT_SECRET);
    let stderr = std::fs::File::create(dir.path().join("server.stderr")).unwrap();
    let (srv, _) = Server::spawn(cmd, dir.path(), stderr.into());
    (dir, srv)
}

/// What the manifest says an endpoint requires: (scheme, scopes) alternatives
/// (OpenAPI 3.0 lists scopes only for OAuth2: a JWT's are in the description).
fn required(m: &serde_yaml::Value, ep: &serde_yaml::Value) -> Vec<(String, Vec<String>)> {
    let req = match ep.get("auth") {
        Some(r) => r,
        None => &m["auth"]["default"],
    };
    let words = |v: &serde_yaml::Value| -> Vec<String> {
        (v.as_sequence().into_iter().flatten())
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (words(&req["schemes"]).into_iter())
        .map(|name| (name, Vec::new()))
        .collect()
}

/// The schemes, by their manifest names.
fn the_schemes_are_the_manifests(doc: &Value) {
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["docs_key"],
        json!({"type": "apiKey", "in": "header", "name": "X-Docs-Key",
               "description": "A key from DOCS_API_KEYS"}),
        "{schemes:#}"
    );
    assert_eq!(
        schemes["scrape"],
        json!({"type": "http", "scheme": "bearer"}),
        "{schemes:#}"
    );
    assert_eq!(
        schemes["id_token"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        "{schemes:#}"
    );
    assert_eq!(schemes.as_object().unwrap().len(), 3, "{schemes:#}");
}

/// Each operation's security is the manifest's: one alternative per
/// scheme (a jwt with its scopes), none on open ones; protected ones
/// document the guard's 401 and 403 with the Error schema.
fn each_operations_security_is_the_manifests(doc: &Value, m: &serde_yaml::Value) {
    let endpoints = m["endpoints"].as_sequence().unwrap();
    let (mut open, mut protected) = (0, 0);
    for ep in endpoints {
        let path = ep["path"].as_str().unwrap();
        let method = ep["method"].as_str().unwrap_or("GET").to_lowercase();
        let op = &doc["paths"][path][&method];
        assert!(op.is_object(), "{method} {path} is not in the document");
        let want = required(m, ep);
        if want.is_empty() {
            open += 1;
            assert!(
                op.get("security").is_none_or(|s| s == &json!([])),
                "open {method} {path} states security: {}",
                op["security"]
            );
            for status in ["401", "403"] {
                assert!(
                    op["responses"].get(status).is_none(),
                    "open {method} {path} documents a {status}"
                );
            }
            continue;
        }
        protected += 1;
        let want: Vec<Value> = (want.into_iter())
            .map(|(name, scopes)| json!({ name: scopes }))
            .collect();
        assert_eq!(op["security"], json!(want), "{method} {path}");
        for status in ["401", "403"] {
            let r = &op["responses"][status];
            assert!(
                r["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} {status}: {r}"
            );
            assert_eq!(
                r["content"]["application/json"]["schema"],
                json!({"$ref": "#/components/schemas/Error"}),
                "{method} {path} {status}"
            );
        }
    }
    assert_eq!(open, 4, "the probes and /metrics are open");
    assert!(protected >= 5, "{protected} protected operations");
}

/// What the document says is what the server does.
async fn the_server_does_what_the_document_says(srv: &Server) {
    let client = reqwest::Client::new();
    let status = |path: &str, header: Option<(&str, String)>| {
        let mut r = client.get(srv.url(path));
        if let Some((k, v)) = header {
            r = r.header(k, v);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/health", None).await, 200);
    assert_eq!(status("/keyed", None).await, 401);
    assert_eq!(
        status("/keyed", Some(("X-Docs-Key", API_KEY.into()))).await,
        200
    );
    let bearer = Some(("Authorization", format!("Bearer {TOKEN}")));
    assert_eq!(status("/either", bearer.clone()).await, 200);
    assert_eq!(status("/keyed", bearer).await, 401);
}

#[tokio::test]
async fn the_document_of_a_guarded_service_states_its_security_and_passes_the_validator() {
    let (dir, srv) = guarded();
    let doc = doc(&srv).await;

    the_schemes_are_the_manifests(&doc);
    let m: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join("manifest.yaml")).unwrap())
            .unwrap();
    each_operations_security_is_the_manifests(&doc, &m);
    assert_eq!(
        doc["paths"]["/scoped"]["get"]["security"],
        json!([{"id_token": []}])
    );
    let described = doc["paths"]["/scoped"]["get"]["description"]
        .as_str()
        .unwrap();
    assert!(
        described.contains("Requires a JWT with the scopes `orders.read`, `orders.write`"),
        "{described}"
    );
    assert_eq!(
        doc["paths"]["/either"]["get"]["security"],
        json!([{"docs_key": []}, {"scrape": []}])
    );
    assert!(doc.get("security").is_none_or(|s| s == &json!([])));
    assert!(doc["components"]["schemas"]["Error"].is_object());

    the_server_does_what_the_document_says(&srv).await;

    // And it is a valid OpenAPI document.
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = Command::new(venv_bin("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
