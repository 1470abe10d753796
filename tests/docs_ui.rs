//! The docs UI in a real headless Chromium: the rendered page lists every
//! manifest endpoint with its method and summary, with no internet access;
//! and, driven like a person would (tests/js/docs_authorize.mjs), a
//! protected call from "Try it out" is refused (401) until Authorize is
//! given the API key, then answers 200.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

fn chromium() -> String {
    let bin = std::env::var("TELLTALE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "headless Chromium not found at {bin}: install Debian's `chromium` (scripts/install-test-deps does)"
    );
    bin
}

/// The DOM after scripts ran (swagger-ui renders client-side).
fn rendered_dom(url: &str) -> String {
    let profile = tempdir();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn docs_page_lists_every_manifest_endpoint() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());

    // Assets are embedded: the page references nothing outside the server.
    let html = http_get(&srv.url("/docs"));
    assert!(
        !html.contains("<script src=\"http") && !html.contains("<link href=\"http"),
        "docs page loads remote assets"
    );

    let dom = rendered_dom(&srv.url("/docs"));
    let m: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let endpoints = m["endpoints"].as_sequence().unwrap();
    assert!(
        dom.contains("opblock"),
        "swagger-ui did not render:\n{}",
        &dom[..dom.len().min(2000)]
    );
    for ep in endpoints {
        let path = ep["path"].as_str().unwrap();
        let method = ep["method"].as_str().unwrap_or("GET").to_lowercase();
        let summary = ep["summary"].as_str().unwrap_or("");
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} not on the page"
        );
        assert!(
            dom.contains(&format!("opblock-{method}")),
            "{method} block missing"
        );
        assert!(dom.contains(summary), "summary {summary:?} not on the page");
    }
    // The spec the page was built from lists the same operations.
    let title = m["service"]["name"].as_str().unwrap();
    assert!(dom.contains(title), "service name not shown");
    assert!(srv.stop().success());
}

/// The API key of [`guarded`]'s `docs_key` scheme (in `DOCS_API_KEYS`).
const API_KEY: &str = "docs-api-key-0123456789";

/// The default manifest with an api key (its header named by the
/// manifest), a bearer token and a jwt scheme, so that the Authorize modal
/// lists all three; `GET /keyed` (the `info` handler) takes the api key,
/// the rest stays open.
fn guarded(dir: &std::path::Path) -> Server {
    let manifest = copy_default_manifest(dir);
    edit(
        &manifest,
        "\nendpoints:\n",
        "\nauth:\n  schemes:\n    docs_key:\n      type: api_key\n      header: X-Docs-Key\n      \
         keys: { env: DOCS_API_KEYS }\n    \
         scrape:\n      type: bearer\n      keys: { env: DOCS_TOKENS }\n    \
         id_token:\n      type: jwt\n      algorithm: HS256\n      key: { env: DOCS_JWT_SECRET }\n\
         endpoints:\n  \
         - path: /keyed\n    method: GET\n    summary: Needs the api key\n    handler: info\n    \
           auth: { schemes: [docs_key] }\n  \
         - path: /scoped\n    method: GET\n    summary: A jwt with a scope\n    handler: info\n    \
           auth: { schemes: [id_token], scopes: [orders.read] }\n",
    );
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--manifest")
        .arg(&manifest)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env_remove("TELLTALE_INSTANCE")
        .env_remove("POD_NAME")
        .env("DOCS_API_KEYS", format!("{API_KEY}:docs-reader"))
        .env("DOCS_TOKENS", "docs-scrape-token-0123456789")
        .env("DOCS_JWT_SECRET", "docs-jwt-secret-0123456789-abcdefghij");
    let stderr = std::fs::File::create(dir.join("server.stderr")).unwrap();
    Server::spawn(cmd, dir, stderr.into()).0
}

/// Runs tests/js/docs_authorize.mjs against `srv` with `key`; its report.
fn drive_docs(srv: &Server, key: &str) -> Value {
    let js = repo().join("tests/js");
    assert!(
        js.join("node_modules/puppeteer-core/package.json").exists(),
        "puppeteer-core is not installed in tests/js: run scripts/install-test-deps (npm ci there)"
    );
    let out = Command::new("node")
        .arg(js.join("docs_authorize.mjs"))
        .args([&srv.base, key, &chromium()])
        .current_dir(&js)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): install nodejs (scripts/install-test-deps does)")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docs_authorize.mjs failed ({}):\n{stdout}{}\nserver stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        srv.stderr()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn try_it_out_is_refused_until_authorize_is_given_the_api_key() {
    let dir = tempdir();
    let srv = guarded(dir.path());
    let report = drive_docs(&srv, API_KEY);
    let (anonymous, authorized) = (&report["anonymous"], &report["authorized"]);
    assert_eq!(anonymous["status"], 401, "without Authorize: {report:#}");
    assert_eq!(anonymous["sent_key"], false, "{report:#}");
    assert_eq!(authorized["status"], 200, "after Authorize: {report:#}");
    // The modal named the manifest's header, and the page sent the key in it.
    assert_eq!(authorized["header"], "x-docs-key", "{report:#}");
    assert_eq!(authorized["sent_key"], true, "{report:#}");
    assert_eq!(authorized["problems"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["offsite"], serde_json::json!([]), "{report:#}");
    assert!(srv.stop().success());
}

#[test]
fn a_wrong_key_given_to_authorize_is_refused() {
    let dir = tempdir();
    let srv = guarded(dir.path());
    let report = drive_docs(&srv, "not-the-docs-key-0123456789");
    assert_eq!(report["anonymous"]["status"], 401, "{report:#}");
    assert_eq!(report["authorized"]["status"], 401, "{report:#}");
    assert_eq!(report["authorized"]["sent_key"], true, "{report:#}");
    assert!(srv.stop().success());
}
