//! What the shop's tests share: the shop as a process, the payments
//! service it calls, and a real PostgreSQL in a temporary directory.

#![allow(dead_code)]

pub mod postgres;
#[path = "../../../../tests/common/prom.rs"]
pub mod prom;

#[path = "../../../common/service.rs"]
mod service;

use serde_json::Value;
pub use service::Service;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn shop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The keys every test shop accepts (`SHOP_API_KEYS`), and its scrape token.
pub const ALICE_KEY: &str = "alice-key-0123456789";
pub const BOB_KEY: &str = "bob-key-0123456789abc";
pub const SCRAPE_TOKEN: &str = "scrape-token-0123456789";
/// The key the shop presents to payments (`SHOP_PAYMENTS_KEY`), which the
/// test payments service accepts (`PAYMENTS_API_KEYS`).
pub const PAYMENTS_KEY: &str = "shop-payments-key-0123456789";

/// A client that presents alice's key and the scrape token.
pub fn client() -> reqwest::Client {
    client_as(ALICE_KEY)
}

pub fn client_as(key: &str) -> reqwest::Client {
    service::client_with(key, SCRAPE_TOKEN)
}

/// A running shop (stopped before the payments service it calls), killed
/// on drop unless stopped. Its `base`, `port` and `url` are its service's.
pub struct Shop {
    service: Service,
    /// The payments service it calls, unless the test gave `PAYMENTS_URL`.
    pub payments: Option<Payments>,
}

impl std::ops::Deref for Shop {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.service
    }
}

impl Shop {
    pub fn start(manifest: &Path, dir: &Path) -> Shop {
        Shop::start_with(manifest, dir, &[])
    }

    /// Started with `env` besides the keys, with a payments service of its
    /// own unless `env` sets `PAYMENTS_URL`.
    pub fn start_with(manifest: &Path, dir: &Path, env: &[(&str, &str)]) -> Shop {
        let payments =
            (!env.iter().any(|(k, _)| *k == "PAYMENTS_URL")).then(|| Payments::start(dir, &[]));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shop"));
        if let Some(p) = &payments {
            cmd.env("PAYMENTS_URL", &p.base);
        }
        cmd.envs(env.iter().copied())
            .args(["serve", "--manifest"])
            .arg(manifest)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("SHOP_API_KEYS", format!("{ALICE_KEY}:alice, {BOB_KEY}:bob"))
            .env("SHOP_METRICS_TOKEN", SCRAPE_TOKEN)
            .env("SHOP_PAYMENTS_KEY", PAYMENTS_KEY);
        Shop {
            service: Service::spawn(cmd, dir, "shop"),
            payments,
        }
    }

    /// Its `/metrics` text, read with the scrape token.
    pub async fn metrics(&self) -> String {
        let r = client().get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// SIGTERM and a clean exit (the log file is flushed).
    pub fn stop(self) {
        self.service.stop();
    }
}

pub fn tempdir() -> tempfile::TempDir {
    service::tempdir_named("shop-test-")
}

/// The shop's manifest copied into `dir`, edited by `f`.
pub fn manifest_in(dir: &Path, f: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
    service::edited_manifest(&shop_dir().join("manifest.yaml"), dir, f)
}

/// The shop's CLI with `args` in `cwd`: exit code, stdout, stderr.
pub fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    service::run_in(Path::new(env!("CARGO_BIN_EXE_shop")), args, cwd)
}

pub async fn post(c: &reqwest::Client, shop: &Shop, body: &str) -> (u16, Value) {
    let r = c
        .post(shop.url("/orders"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The payments binary beside the shop's (built by the workspace's test
/// command; built here if it is missing).
pub fn payments_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_shop")).with_file_name("payments");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-q", "-p", "payments"])
            .current_dir(shop_dir())
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p payments failed");
    }
    bin
}

/// A running payments service (examples/payments).
pub type Payments = Service;

impl Service {
    /// The payments service started in `dir/payments` with its embedded
    /// manifest and `env`.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Payments {
        let dir = dir.join("payments");
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(payments_bin());
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .env("PAYMENTS_API_KEYS", format!("{PAYMENTS_KEY}:shop"))
            .env("PAYMENTS_METRICS_TOKEN", SCRAPE_TOKEN)
            .env("OTEL_SDK_DISABLED", "true")
            .envs(env.iter().copied());
        Service::spawn(cmd, &dir, "payments")
    }
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The shop's stack rendered for `shop` (scraped each second on loopback)
/// into `dir/stack`, its promtool tests passing, and a real Prometheus on
/// its config, scraping the protected `/metrics` with the rendered
/// `credentials_file`: where compose mounts the SHOP_METRICS_TOKEN secret,
/// here a file of the test's. Returns the output directory and Prometheus.
pub async fn stack_for(shop: &Shop, dir: &Path) -> (PathBuf, prom::Prometheus) {
    let m = manifest_in(dir, |v| {
        v["service"]["port"] = (shop.port as u64).into();
        v["stack"]["service_host"] = "127.0.0.1".into();
        v["stack"]["scrape_interval"] = "1s".into();
        v["stack"]["evaluation_interval"] = "1s".into();
    });
    let out = dir.join("stack");
    let args = [
        "render",
        "--manifest",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, stdout, err) = run(&args, dir);
    assert_eq!(code, 0, "{stdout}{err}");
    let t = Command::new("promtool")
        .args(["test", "rules"])
        .arg(out.join("prometheus/alerts.test.yml"))
        .output()
        .expect("promtool is required (Debian package prometheus)");
    assert!(
        t.status.success(),
        "{}{}",
        String::from_utf8_lossy(&t.stdout),
        String::from_utf8_lossy(&t.stderr)
    );
    let config = std::fs::read_to_string(out.join("prometheus/prometheus.yml")).unwrap();
    assert!(!config.contains(SCRAPE_TOKEN));
    let mounted = r#"credentials_file: "/run/secrets/auth-scrape""#;
    assert!(config.contains(mounted), "{config}");
    let token = dir.join("scrape-token");
    std::fs::write(&token, format!("{SCRAPE_TOKEN}\n")).unwrap();
    let config = config.replace(
        mounted,
        &format!("credentials_file: {:?}", token.display().to_string()),
    );
    std::fs::write(out.join("prometheus/prometheus.yml"), config).unwrap();
    let prom = prom::Prometheus::start(&out.join("prometheus/prometheus.yml"), dir).await;
    prom::wait_for_scrape(&prom).await;
    (out, prom)
}
