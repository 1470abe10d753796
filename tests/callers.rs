//! Callers with credentials (`auth`, `kubernetes.env`): the stack presents
//! what `/metrics` and the JSON datasource require, by reference only.
//! promtool accepts the scrape config, the Deployment with its env and
//! Secret refs passes `kubernetes-validate --strict`, the ServiceMonitor
//! passes the Prometheus Operator's CRD schema, compose mounts the secrets,
//! and no secret value reaches any rendered file or render's output.

mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const METRICS_TOKEN: &str = "s3cr3t-metrics-7f1c2a";
const JWT_SECRET: &str = "s3cr3t-jwt-9e4d0b";
const GRAFANA_KEY: &str = "s3cr3t-grafana-5a8e33";

/// The callers fixture copied into `<dir>/svc` (its key file beside it),
/// rendered into `<dir>/out` with the secrets in render's environment.
fn rendered() -> (Rendered, String) {
    let dir = tempdir();
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(svc.join("secrets")).unwrap();
    let manifest = svc.join("manifest.yaml");
    std::fs::copy(
        repo().join("tests/fixtures/callers/manifest.yaml"),
        &manifest,
    )
    .unwrap();
    std::fs::write(svc.join("secrets/grafana.key"), GRAFANA_KEY).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(bin())
        .args(["render", "--manifest"])
        .arg(&manifest)
        .arg("--out")
        .arg(&out)
        .current_dir(&svc)
        .env("METRICS_TOKEN", METRICS_TOKEN)
        .env("JWT_SECRET", JWT_SECRET)
        .env("X_VIEWER_KEY", GRAFANA_KEY)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "render failed:\n{said}");
    (Rendered { dir, manifest, out }, said)
}

fn service_job(prom: &Value) -> Value {
    prom["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "callers")
        .expect("the service's job")
        .clone()
}

#[test]
fn no_secret_value_is_rendered_or_printed() {
    let (r, said) = rendered();
    for secret in [METRICS_TOKEN, JWT_SECRET, GRAFANA_KEY] {
        assert!(!said.contains(secret), "render printed a secret:\n{said}");
        for (path, bytes) in snapshot(&r.out) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "{path} holds a secret value");
        }
    }
    // What the files do hold: the names of the variables and Secrets.
    let all: String = snapshot(&r.out)
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    for name in ["METRICS_TOKEN", "callers-auth", "/run/secrets/auth-viewer"] {
        assert!(all.contains(name), "{name} is named nowhere");
    }
}

#[test]
fn prometheus_scrapes_with_the_token_file_and_promtool_accepts_it() {
    let (r, _) = rendered();
    let dir = r.out.join("prometheus");
    let prom = yaml(&dir.join("prometheus.yml"));
    let job = service_job(&prom);
    assert_eq!(
        job["authorization"],
        json!({ "type": "Bearer", "credentials_file": "/run/secrets/auth-scrape" })
    );
    // Only the service's job: the others are not the service.
    for j in prom["scrape_configs"].as_array().unwrap() {
        if j["job_name"] != "callers" {
            assert!(j.get("authorization").is_none(), "{j}");
        }
    }
    let (ok, out) = promtool(
        &["check", "config", "--syntax-only", "prometheus.yml"],
        &dir,
    );
    assert!(ok, "{out}");
    // promtool also checks that the file exists: where compose mounts it,
    // there is one; here, one in its place.
    let token = r.dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let text = read(&dir.join("prometheus.yml"))
        .replace("/run/secrets/auth-scrape", token.to_str().unwrap());
    std::fs::write(dir.join("with-token.yml"), text).unwrap();
    let (ok, out) = promtool(&["check", "config", "with-token.yml"], &dir);
    assert!(ok, "{out}");
    std::fs::remove_file(&token).unwrap();
    let (ok, out) = promtool(&["check", "config", "with-token.yml"], &dir);
    assert!(
        !ok && out.contains("credentials"),
        "a missing token file passed:\n{out}"
    );
}

#[test]
fn compose_mounts_each_secret_where_it_is_read() {
    let (r, _) = rendered();
    let compose = yaml(&r.out.join("docker-compose.yml"));
    let secrets = &compose["secrets"];
    assert_eq!(
        secrets["auth-scrape"],
        json!({ "environment": "METRICS_TOKEN" })
    );
    // A file secret is relative to the compose file, and is the key file.
    let file = secrets["auth-viewer"]["file"].as_str().unwrap();
    assert!(!Path::new(file).is_absolute(), "{file}");
    let resolved: PathBuf = r.out.join(file);
    assert_eq!(
        std::fs::canonicalize(&resolved).unwrap(),
        std::fs::canonicalize(r.manifest.parent().unwrap().join("secrets/grafana.key")).unwrap()
    );
    assert_eq!(secrets.as_object().unwrap().len(), 2);
    let svc = &compose["services"];
    assert_eq!(svc["prometheus"]["secrets"], json!(["auth-scrape"]));
    assert_eq!(svc["grafana"]["secrets"], json!(["auth-viewer"]));
    assert!(svc["loki"].get("secrets").is_none());
    // Grafana sends the viewer key from the mounted file, in its header.
    let ds = yaml(
        &r.out
            .join("grafana/provisioning/datasources/datasources.yml"),
    );
    let json_ds = ds["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "simpod-json-datasource")
        .unwrap()
        .clone();
    assert_eq!(json_ds["jsonData"]["httpHeaderName1"], "X-Viewer-Key");
    assert_eq!(
        json_ds["secureJsonData"]["httpHeaderValue1"],
        "$__file{/run/secrets/auth-viewer}"
    );
}

#[test]
fn kubernetes_objects_carry_the_env_and_secret_refs_and_validate() {
    let (r, _) = rendered();
    let k = r.out.join("kubernetes");
    let dep = yaml(&k.join("deployment.yaml"));
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let env = c["env"].as_array().unwrap();
    assert_eq!(env[0]["name"], "POD_NAME");
    // The Deployment's own OTLP variables close the list (tests/traces_stack_export.rs).
    let (env, otel) = env.split_at(env.len() - 2);
    assert_eq!(otel[0]["name"], "OTEL_EXPORTER_OTLP_ENDPOINT");
    assert_eq!(otel[1]["name"], "OTEL_RESOURCE_ATTRIBUTES");
    assert_eq!(
        env[1..],
        [
            json!({ "name": "RUST_LOG_STYLE", "value": "never" }),
            // The kubelet reads `$$` as `$`: the pod sees the manifest's text.
            json!({ "name": "GREETING", "value": "costs $$5, not $$(POD_NAME)" }),
            json!({ "name": "METRICS_TOKEN",
                "valueFrom": { "secretKeyRef": { "name": "callers-auth", "key": "metrics-token" } } }),
            json!({ "name": "REGION",
                "valueFrom": { "configMapKeyRef": { "name": "callers-settings", "key": "region" } } }),
        ]
    );
    assert_eq!(
        c["envFrom"],
        json!([
            { "secretRef": { "name": "callers-keys" } },
            { "configMapRef": { "name": "callers-settings" } },
        ])
    );
    let (ok, out) = kubernetes_validate(&[k.join("deployment.yaml")]);
    assert!(ok, "{out}");
    // The ServiceMonitor presents the token from the same Secret key.
    let sm = yaml(&k.join("servicemonitor.yaml"));
    assert_eq!(
        sm["spec"]["endpoints"][0]["authorization"],
        json!({ "type": "Bearer", "credentials": { "name": "callers-auth", "key": "metrics-token" } })
    );
    let schema = crd_schema(&crd_dir().join("monitoring.coreos.com_servicemonitors.yaml"));
    let (ok, out) = check_jsonschema(r.dir.path(), &schema, &sm, "servicemonitor");
    assert!(ok, "{out}");
    let mut bad = sm.clone();
    bad["spec"]["endpoints"][0]["authorization"]["credentials"]["secret"] = json!("x");
    let (ok, _) = check_jsonschema(r.dir.path(), &schema, &bad, "bad-servicemonitor");
    assert!(!ok, "an unknown field in authorization passed");
    // Grafana's datasource ConfigMap: the file Grafana's pod must have.
    let cm = yaml(&k.join("grafana-datasources.yaml"));
    let (_, text) = cm["data"].as_object().unwrap().iter().next().unwrap();
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Grafana's pod needs the key at /run/secrets/auth-viewer"),
        "{text}"
    );
    let ds: Value = serde_yaml::from_str(text).unwrap();
    let json_ds = ds["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "simpod-json-datasource")
        .unwrap()
        .clone();
    assert_eq!(json_ds["jsonData"]["httpHeaderName1"], "X-Viewer-Key");
}

/// With Grafana's key in a variable from a Secret (bearer, this time):
/// compose takes it from the environment, the Kubernetes datasource reads
/// it with `$__env{}` and names the Secret its pod needs it from.
#[test]
fn a_grafana_key_from_a_variable_is_read_from_the_environment() {
    let dir = tempdir();
    let manifest = dir.path().join("manifest.yaml");
    edit_manifest(
        &repo().join("tests/fixtures/callers/manifest.yaml"),
        &manifest,
        |v| {
            *at(v, &["auth", "default", "schemes"]) = serde_yaml::from_str("[scrape]").unwrap();
        },
    );
    let out = dir.path().join("out");
    render_ok(&manifest, &out);
    let compose = yaml(&out.join("docker-compose.yml"));
    assert_eq!(
        compose["secrets"],
        json!({ "auth-scrape": { "environment": "METRICS_TOKEN" } })
    );
    assert_eq!(
        compose["services"]["grafana"]["secrets"],
        json!(["auth-scrape"])
    );
    let ds = read(&out.join("grafana/provisioning/datasources/datasources.yml"));
    assert!(ds.contains("httpHeaderName1: \"Authorization\""), "{ds}");
    assert!(
        ds.contains("httpHeaderValue1: \"Bearer $__file{/run/secrets/auth-scrape}\""),
        "{ds}"
    );
    let cm = read(&out.join("kubernetes/grafana-datasources.yaml"));
    assert!(cm.contains("\"Bearer $__env{METRICS_TOKEN}\""), "{cm}");
    assert!(
        cm.contains("Grafana's pod needs METRICS_TOKEN from the Secret \"callers-auth\" (key \"metrics-token\")"),
        "{cm}"
    );
}

/// Every error of a bad `kubernetes.env` and of the callers' auth, in one run.
#[test]
fn validate_reports_every_env_and_caller_error_at_once() {
    let f = repo().join("tests/fixtures/bad/kubernetes_env.yaml");
    let (st, _, err) = run(
        &["validate", "--manifest", f.to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(st.code(), Some(1));
    let located = err
        .lines()
        .filter(|l| l.contains("kubernetes_env.yaml:"))
        .count();
    assert_eq!(located, 12, "{err}");
    let f = repo().join("tests/fixtures/bad/callers_auth.yaml");
    let (st, _, err) = run(
        &["validate", "--manifest", f.to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(st.code(), Some(1));
    assert!(err.contains(":20:13: endpoints[0].auth: /metrics"), "{err}");
    assert!(
        err.contains(":16:5: auth.default: Grafana's JSON datasource"),
        "{err}"
    );
}
