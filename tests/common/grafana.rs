//! Helpers of the Grafana JSON datasource tests (`tests/grafana_*.rs`): a
//! manifest with a faster sampler, the model, and a client of the routes.
use super::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use telltale::manifest::DatasourceTargetKind;
use telltale::model::Model;

/// The repo manifest with a faster sampler (and optionally a smaller ring).
pub fn manifest_with(dir: &Path, interval: &str, retention: Option<usize>) -> PathBuf {
    let path = copy_default_manifest(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("  sample_interval: 5s\n"));
    let mut text = text.replace(
        "  sample_interval: 5s\n",
        &format!("  sample_interval: {interval}\n"),
    );
    if let Some(r) = retention {
        let at = text.find("  retention: ").unwrap();
        let end = at + text[at..].find('\n').unwrap();
        text.replace_range(at..end, &format!("  retention: {r}"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

pub fn model(path: &Path) -> Model {
    telltale::model::open(Some(path), &telltale::KindRegistry::builtin())
        .expect("manifest is valid")
}

pub fn names_of(m: &Model, kind: Option<DatasourceTargetKind>) -> Vec<String> {
    m.manifest
        .datasource
        .targets
        .iter()
        .filter(|t| kind.is_none_or(|k| t.kind == k))
        .map(|t| t.name.clone())
        .collect()
}

pub struct Api {
    pub srv: Server,
    pub http: reqwest::Client,
}

impl Api {
    pub fn start(manifest: &Path, dir: &Path) -> Api {
        Api {
            srv: Server::start(manifest, dir),
            http: reqwest::Client::new(),
        }
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .http
            .post(self.srv.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {text}"));
        (status, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, body.clone()).await;
        assert_eq!(s, 200, "POST {path} {body}: {v}");
        v
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.srv.url(path)).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap())
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.srv.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until `/grafana/health` reports at least `n` samples.
    pub async fn wait_samples(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, h) = self.get("/grafana/health").await;
            if h["samples"].as_u64().unwrap() >= n {
                return;
            }
            assert!(Instant::now() < deadline, "sampler did not run: {h}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn iso(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn datapoints(v: &Value) -> &Vec<Value> {
    v["datapoints"].as_array().unwrap()
}
