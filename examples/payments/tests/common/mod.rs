//! Helpers of the payments tests: the service as its own process, a client
//! with its keys, its metrics and log lines, and the CLI.
#![allow(dead_code)]

#[path = "../../../common/service.rs"]
mod service;

use serde_json::Value;
pub use service::Service;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn payments_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The key every test service accepts (`PAYMENTS_API_KEYS`, principal
/// `shop`), and its scrape token.
pub const SHOP_KEY: &str = "shop-key-0123456789abc";

pub const SCRAPE_TOKEN: &str = "scrape-token-0123456789";

/// A client that presents the shop's key and the scrape token.
pub fn client() -> reqwest::Client {
    service::client_with(SHOP_KEY, SCRAPE_TOKEN)
}

/// A running payments service.
pub type Payments = Service;

impl Service {
    /// Started on the repository's manifest; tracing goes nowhere
    /// (`OTEL_SDK_DISABLED`).
    pub fn start(dir: &Path) -> Payments {
        Payments::start_with(
            &payments_dir().join("manifest.yaml"),
            dir,
            &[("OTEL_SDK_DISABLED", "true")],
        )
    }

    /// Started with `env` besides the keys.
    pub fn start_with(manifest: &Path, dir: &Path, env: &[(&str, &str)]) -> Payments {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_payments"));
        cmd.envs(env.iter().copied())
            .args(["serve", "--manifest"])
            .arg(manifest)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("PAYMENTS_API_KEYS", format!("{SHOP_KEY}:shop"))
            .env("PAYMENTS_METRICS_TOKEN", SCRAPE_TOKEN);
        Service::spawn(cmd, dir, "payments")
    }
}

pub fn tempdir() -> tempfile::TempDir {
    service::tempdir_named("payments-test-")
}

/// The payments manifest copied into `dir`, edited by `f`.
pub fn manifest_in(dir: &Path, f: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
    service::edited_manifest(&payments_dir().join("manifest.yaml"), dir, f)
}

/// The payments CLI with `args` in `cwd`: exit code, stdout, stderr.
pub fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    service::run_in(Path::new(env!("CARGO_BIN_EXE_payments")), args, cwd)
}

pub fn promtool(args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("promtool is required (Debian package `prometheus`): {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `POST /payments` with `body` as is; the status and the JSON answer.
pub async fn post(c: &reqwest::Client, svc: &Payments, body: &str) -> (u16, Value) {
    let r = c
        .post(svc.url("/payments"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    // (telltale's input errors say `application/json`, typed answers
    // `application/json; charset=utf-8`.)
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "every answer is JSON: {content_type}"
    );
    (status, r.json().await.unwrap())
}

pub async fn metrics(c: &reqwest::Client, svc: &Payments) -> String {
    let r = c.get(svc.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// `payments_total` series of a `/metrics` text: (outcome, value).
pub fn outcomes(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("payments_total{outcome=\""))
        .map(|rest| {
            let (outcome, value) = rest.split_once("\"} ").unwrap();
            (outcome.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The value of the sample line starting with `prefix ` (unlabelled, or
/// with its labels written out).
pub fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
        .parse()
        .unwrap()
}

/// Every JSON line of the service's log files.
pub fn log_lines(dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for f in std::fs::read_dir(dir.join("logs")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    lines
}

pub fn assert_declined(status: u16, err: &Value, field: &str, words: &str) {
    assert_eq!(status, 402, "{err}");
    assert_eq!(err["status"], 402, "{err}");
    assert_eq!(err["error"], "Payment Required", "{err}");
    assert_eq!(err["field"], field, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains(words), "{err}");
    assert!(err.get("payment_id").is_none(), "{err}");
}
