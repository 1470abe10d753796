//! Helpers of the render tests: rendering through the real binary, reading
//! the rendered files, editing a manifest copy, and running promtool.
#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// `telltale render --manifest M --out OUT [extra]`, from `cwd`.
pub fn render(manifest: &Path, out: &Path, extra: &[&str]) -> (ExitStatus, String, String) {
    let mut args = vec![
        "render",
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args, manifest.parent().unwrap())
}

/// Renders and asserts success.
pub fn render_ok(manifest: &Path, out: &Path) -> String {
    let (st, stdout, stderr) = render(manifest, out, &[]);
    assert!(st.success(), "render failed:\n{stdout}\n{stderr}");
    stdout
}

/// Every file under `dir` (relative path → bytes).
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn yaml(path: &Path) -> Value {
    let y: serde_yaml::Value = serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    serde_json::to_value(y).unwrap()
}

pub fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads a manifest as YAML, lets `edit` change it, writes it to `to`.
pub fn edit_manifest(from: &Path, to: &Path, edit: impl FnOnce(&mut serde_yaml::Value)) {
    let mut v: serde_yaml::Value = serde_yaml::from_str(&read(from)).unwrap();
    edit(&mut v);
    std::fs::write(to, serde_yaml::to_string(&v).unwrap()).unwrap();
}

/// `v[a][b]...` as a mutable reference (the path must exist, or its last key is added).
pub fn at<'a>(v: &'a mut serde_yaml::Value, path: &[&str]) -> &'a mut serde_yaml::Value {
    let mut cur = v;
    for k in path {
        let map = cur
            .as_mapping_mut()
            .unwrap_or_else(|| panic!("{k}: parent is not a mapping"));
        cur = map
            .entry(serde_yaml::Value::String(k.to_string()))
            .or_insert(serde_yaml::Value::Null);
    }
    cur
}

/// Runs promtool; panics if it is missing (a missing tool is a failure, not a skip).
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

/// A temp dir with the repo manifest rendered into `<dir>/out`.
pub struct Rendered {
    pub dir: tempfile::TempDir,
    pub manifest: PathBuf,
    pub out: PathBuf,
}

pub fn rendered_default() -> Rendered {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let out = dir.path().join("out");
    render_ok(&manifest, &out);
    Rendered { dir, manifest, out }
}

/// `*`-only glob match (what the shippers' `file_glob` uses).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| glob_match(rest, &name[head.len() + i..]))
        }
    }
}

/// A copy of `base` (as `<dir>/e2e.yaml`) pointed at a test server on
/// `port`, scraped and evaluated every second, without extra targets,
/// rendered into `<dir>/stack`; returns (manifest, output directory).
pub fn render_for_test_server(base: &Path, dir: &Path, port: u16) -> (PathBuf, PathBuf) {
    let manifest = dir.join("e2e.yaml");
    edit_manifest(base, &manifest, |v| {
        *at(v, &["service", "port"]) = (port as u64).into();
        *at(v, &["stack", "service_host"]) = "127.0.0.1".into();
        *at(v, &["stack", "scrape_interval"]) = "1s".into();
        *at(v, &["stack", "evaluation_interval"]) = "1s".into();
        *at(v, &["stack", "extra_targets"]) = serde_yaml::Value::Sequence(vec![]);
    });
    let out = dir.join("stack");
    render_ok(&manifest, &out);
    (manifest, out)
}

/// `kubernetes-validate --strict` on `files`: (passed, output).
pub fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    outcome(
        Command::new(venv_bin("kubernetes-validate"))
            .arg("--strict")
            .args(files),
    )
}

/// The Prometheus Operator's CRDs (v0.93.0), vendored from the team's
/// `../shared/schemas/prometheus-operator/` so that a clean clone has them.
pub fn crd_dir() -> PathBuf {
    repo().join("tests/schemas/prometheus-operator")
}

/// The CRD's v1 `openAPIV3Schema` as a JSON Schema that refuses unknown
/// fields, as the API server's pruning would silently drop them: every
/// object with `properties` and no `additionalProperties` or
/// `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`.
pub fn crd_schema(crd: &Path) -> Value {
    fn tighten(v: &mut Value) {
        match v {
            Value::Object(o) => {
                // Go's `(?i)` flag, which the metaschema's ECMAScript regex
                // check refuses, as the same set spelled case by case.
                if let Some(Value::String(p)) = o.get_mut("pattern") {
                    if let Some(rest) = p.strip_prefix("^(?i)") {
                        assert!(!rest.contains('\\'), "an escape in {p}: spell it by hand");
                        let cased: String = rest
                            .chars()
                            .map(|c| match c.is_ascii_alphabetic() {
                                true => format!(
                                    "[{}{}]",
                                    c.to_ascii_lowercase(),
                                    c.to_ascii_uppercase()
                                ),
                                false => c.to_string(),
                            })
                            .collect();
                        *p = format!("^{cased}");
                    }
                }
                let open = o.contains_key("additionalProperties")
                    || o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
                if o.contains_key("properties") && !open {
                    o.insert("additionalProperties".into(), Value::Bool(false));
                }
                o.values_mut().for_each(tighten);
            }
            Value::Array(a) => a.iter_mut().for_each(tighten),
            _ => {}
        }
    }
    let crd = yaml(crd);
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("a v1 version");
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    tighten(&mut schema);
    schema
}

/// `check-jsonschema` of `doc` against `schema`: (passed, output).
pub fn check_jsonschema(dir: &Path, schema: &Value, doc: &Value, name: &str) -> (bool, String) {
    let s = dir.join(format!("{name}.schema.json"));
    let d = dir.join(format!("{name}.json"));
    std::fs::write(&s, serde_json::to_string(schema).unwrap()).unwrap();
    std::fs::write(&d, serde_json::to_string(doc).unwrap()).unwrap();
    outcome(
        Command::new(venv_bin("check-jsonschema"))
            .arg("--schemafile")
            .arg(&s)
            .arg(&d),
    )
}

/// Every file `telltale render` writes for the repo manifest.
pub const RENDERED: &[&str] = &[
    "alloy/config.alloy",
    "docker-compose.yml",
    "grafana/dashboards/ecommerce-api.json",
    "grafana/provisioning/dashboards/dashboards.yml",
    "grafana/provisioning/datasources/datasources.yml",
    "kubernetes/alloy.yaml",
    "kubernetes/deployment.yaml",
    "kubernetes/grafana-dashboard.yaml",
    "kubernetes/grafana-datasources.yaml",
    "kubernetes/manifest-configmap.yaml",
    "kubernetes/prometheusrule.yaml",
    "kubernetes/service.yaml",
    "kubernetes/servicemonitor.yaml",
    "manifest.schema.json",
    "prometheus/alerts.test.yml",
    "prometheus/alerts.yml",
    "prometheus/prometheus.yml",
    "prometheus/targets/ecommerce-api/telltale.yml",
    "promtail/promtail.yml",
    "tempo/tempo.yaml",
];

/// The alerting rules of a rendered `alerts.yml`.
pub fn alert_rules(alerts_yml: &Path) -> Vec<Value> {
    yaml(alerts_yml)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}
