//! The docs UI in a real headless Chromium: the rendered page lists every
//! manifest endpoint with its method and summary, with no internet access.

mod common;
use common::*;
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
