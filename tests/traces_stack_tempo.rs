//! The rendered stack for traces (issue 25, item 4), Tempo: its config
//! passes a JSON Schema of Tempo's documented configuration and fits compose
//! and Grafana; bad trace stack settings are located errors.

mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;
use std::path::Path;

fn tempo_schema() -> Value {
    json(&repo().join("tests/schemas/tempo/tempo-2.10.schema.json"))
}

/// Tempo reads Go durations: `336h`, `90m`, `1h30m`.
fn go_secs(d: &str) -> u64 {
    let (mut total, mut num) = (0u64, String::new());
    for c in d.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().unwrap();
            num.clear();
            total += n * match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => panic!("{d}: unit {c}"),
            };
        }
    }
    assert!(num.is_empty(), "{d}");
    total
}

#[test]
fn tempo_config_passes_the_schema_of_tempos_documented_configuration() {
    let r = rendered_default();
    let file = r.out.join("tempo/tempo.yaml");
    let text = read(&file);
    assert!(text.starts_with("# Generated from manifest.yaml by `telltale render`"));
    let doc = yaml(&file);
    let schema = tempo_schema();
    let (ok, out) = check_jsonschema(r.dir.path(), &schema, &doc, "tempo");
    assert!(ok, "{out}");
    // The schema is strict: a misspelt field, a field at the wrong level, a
    // duration Go cannot read and a missing receiver endpoint all fail.
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut typo = doc.clone();
    let c = typo["compactor"]["compaction"].as_object_mut().unwrap();
    let v = c.remove("block_retention").unwrap();
    c.insert("block_retentoin".into(), v);
    cases.push(("typo", typo));
    let mut misplaced = doc.clone();
    misplaced["compactor"]["block_retention"] = Value::from("1h");
    cases.push(("misplaced", misplaced));
    let mut days = doc.clone();
    days["compactor"]["compaction"]["block_retention"] = Value::from("14d");
    cases.push(("days", days));
    let mut no_endpoint = doc.clone();
    no_endpoint["distributor"]["receivers"]["otlp"]["protocols"]["http"] = serde_json::json!({});
    cases.push(("endpoint", no_endpoint));
    for (name, bad) in cases {
        let (ok, out) = check_jsonschema(r.dir.path(), &schema, &bad, &format!("bad-{name}"));
        assert!(!ok, "{name}: a broken tempo.yaml passed:\n{out}");
    }
}

#[test]
fn tempo_fits_compose_grafana_and_the_manifest() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let stack = &m["stack"];
    let tempo = yaml(&r.out.join("tempo/tempo.yaml"));
    let compose = yaml(&r.out.join("docker-compose.yml"));
    let svc = &compose["services"]["tempo"];
    assert_eq!(svc["image"], stack["tempo"]["image"]);
    let image = svc["image"].as_str().unwrap();
    assert!(image.starts_with("grafana/tempo:2."), "{image}");
    tempo_listens_where_compose_publishes_and_the_service_exports(&m, &tempo, svc);
    tempo_keeps_the_manifests_retention(&m, &tempo);
    tempo_reads_its_mounted_config_and_keeps_its_data_in_the_volume(&tempo, &compose);
    grafana_and_prometheus_are_wired_to_tempo(&r.out, &m, &compose);
}

/// Tempo's API and its OTLP receivers: on loopback in compose
/// (stack.publish), where the service exports.
fn tempo_listens_where_compose_publishes_and_the_service_exports(
    m: &Value,
    tempo: &Value,
    svc: &Value,
) {
    let stack = &m["stack"];
    // Its API and its OTLP/HTTP receiver, on loopback (stack.publish).
    let (api, http, grpc) = (
        stack["tempo"]["port"].as_u64().unwrap(),
        stack["otlp"]["http"].as_u64().unwrap(),
        stack["otlp"]["grpc"].as_u64().unwrap(),
    );
    assert_eq!(
        svc["ports"],
        serde_json::json!([
            format!("127.0.0.1:{api}:{api}"),
            format!("127.0.0.1:{http}:{http}")
        ])
    );
    assert_eq!(tempo["server"]["http_listen_port"], api);
    let protocols = &tempo["distributor"]["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["http"]["endpoint"], format!("0.0.0.0:{http}"));
    assert_eq!(protocols["grpc"]["endpoint"], format!("0.0.0.0:{grpc}"));
    // The demo service exports where compose publishes the receiver.
    assert_eq!(
        m["tracing"]["endpoint"],
        Value::from(format!("http://127.0.0.1:{http}"))
    );
}

/// Retention from the manifest (14d), as Go reads it.
fn tempo_keeps_the_manifests_retention(m: &Value, tempo: &Value) {
    let stack = &m["stack"];
    assert_eq!(stack["traces_retention"], "14d");
    assert_eq!(
        go_secs(
            tempo["compactor"]["compaction"]["block_retention"]
                .as_str()
                .unwrap()
        ),
        14 * 86400
    );
}

/// The config file is mounted where the command reads it, and the WAL and
/// blocks are in the data volume.
fn tempo_reads_its_mounted_config_and_keeps_its_data_in_the_volume(tempo: &Value, compose: &Value) {
    let svc = &compose["services"]["tempo"];
    let command: Vec<&str> = svc["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let config = command
        .iter()
        .find_map(|a| a.strip_prefix("-config.file="))
        .unwrap();
    let vols: Vec<&str> = svc["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        vols.contains(&format!("./tempo/tempo.yaml:{config}:ro").as_str()),
        "{vols:?}"
    );
    let data = vols
        .iter()
        .find_map(|v| v.strip_prefix("tempo-data:"))
        .unwrap();
    assert!(compose["volumes"]["tempo-data"].is_object());
    for p in [
        &tempo["storage"]["trace"]["wal"]["path"],
        &tempo["storage"]["trace"]["local"]["path"],
    ] {
        assert!(p.as_str().unwrap().starts_with(&format!("{data}/")), "{p}");
    }
    assert_eq!(tempo["storage"]["trace"]["backend"], "local");
    assert_eq!(tempo["usage_report"]["reporting_enabled"], false);
    assert!(compose["services"]["grafana"]["depends_on"]
        .as_array()
        .unwrap()
        .contains(&Value::from("tempo")));
}

/// Grafana reaches Tempo's API on the compose network; Prometheus keeps
/// exemplars.
fn grafana_and_prometheus_are_wired_to_tempo(out: &Path, m: &Value, compose: &Value) {
    let stack = &m["stack"];
    let api = stack["tempo"]["port"].as_u64().unwrap();
    // Grafana reaches Tempo's API on the compose network.
    let ds = yaml(&out.join("grafana/provisioning/datasources/datasources.yml"));
    let t = ds["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "tempo")
        .unwrap()
        .clone();
    assert_eq!(t["url"], format!("http://tempo:{api}"));
    assert_eq!(t["uid"], stack["datasources"]["tempo"]);
    // Prometheus keeps exemplars.
    let prom: Vec<&str> = compose["services"]["prometheus"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        prom.contains(&"--enable-feature=exemplar-storage"),
        "{prom:?}"
    );
}

/// Stack settings of traces that cannot work are located errors.
#[test]
fn bad_trace_stack_settings_are_located_errors() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let manifest = dir.path().join("bad.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["stack", "tempo", "image"]) = "grafana/tempo:latest".into();
        *at(v, &["stack", "otlp", "grpc"]) = 3200.into();
        *at(v, &["stack", "otlp", "http"]) = 9090.into();
        *at(v, &["stack", "traces_retention"]) = "30m".into();
        *at(v, &["stack", "datasources", "tempo"]) = "telltale-loki".into();
        *at(v, &["kubernetes", "otlp_url"]) = "https://alloy.monitoring.svc/otlp".into();
        let env = at(v, &["kubernetes", "env"]);
        *env =
            serde_yaml::from_str("[{name: OTEL_EXPORTER_OTLP_ENDPOINT, value: 'http://x:4318'}]")
                .unwrap();
    });
    let (st, out, err) = run(&["validate", "-m", manifest.to_str().unwrap()], dir.path());
    assert!(!st.success(), "{out}{err}");
    let text = format!("{out}{err}");
    for want in [
        "stack.tempo.image",
        "must be pinned",
        "stack.otlp.grpc",
        "already stack.tempo.port's in the Tempo container",
        "stack.otlp.http",
        "already stack.prometheus.port",
        "stack.traces_retention",
        "at least 1h",
        "stack.datasources",
        "distinct",
        "kubernetes.env[0].name",
        "OTEL_EXPORTER_OTLP_ENDPOINT is set by the Deployment",
        "kubernetes.otlp_url",
        "plain HTTP on a port of its own",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

/// The render is deterministic and `generated/` holds Tempo's config.
#[test]
fn generated_holds_the_tempo_config() {
    let text = read(&repo().join("generated/tempo/tempo.yaml"));
    let r = rendered_default();
    assert_eq!(text, read(&r.out.join("tempo/tempo.yaml")));
    assert!(Path::new(&repo().join("tests/schemas/tempo/tempo-2.10.schema.json")).exists());
}
