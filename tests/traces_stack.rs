//! The rendered stack for traces (issue 25, item 4): Tempo's config passes
//! a JSON Schema of Tempo's documented configuration and fits compose and
//! Grafana; Prometheus runs with the exemplar storage the compose file asks
//! for; every datasource uid a panel or a link names is provisioned, with
//! the type the link needs; the links reach Grafana as written (its `$`
//! expansion); the queries the links run parse; the Alloy configs use only
//! Alloy's documented blocks and wire their components together; the
//! Deployment tells the pods where their spans go.

mod alloy_syntax;
mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

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
    // Retention from the manifest (14d), as Go reads it.
    assert_eq!(stack["traces_retention"], "14d");
    assert_eq!(
        go_secs(
            tempo["compactor"]["compaction"]["block_retention"]
                .as_str()
                .unwrap()
        ),
        14 * 86400
    );
    // The config file is mounted where the command reads it, and the WAL
    // and blocks are in the data volume.
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
    // Grafana reaches Tempo's API on the compose network.
    let ds = yaml(
        &r.out
            .join("grafana/provisioning/datasources/datasources.yml"),
    );
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

/// The debian Prometheus runs with the flags the compose file gives it,
/// and answers the exemplar API that Grafana's exemplars use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_runs_with_the_rendered_flags_and_serves_exemplars() {
    let r = rendered_default();
    let compose = yaml(&r.out.join("docker-compose.yml"));
    let port = common::prom::free_port();
    let prom_dir = r.out.join("prometheus");
    let mut args = Vec::new();
    for a in compose["services"]["prometheus"]["command"]
        .as_array()
        .unwrap()
    {
        let a = a.as_str().unwrap();
        // The container's paths and address, as they are here.
        let a = if a.starts_with("--config.file=") {
            format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            )
        } else if a.starts_with("--storage.tsdb.path=") {
            format!(
                "--storage.tsdb.path={}",
                r.dir.path().join("tsdb").display()
            )
        } else if a.starts_with("--web.listen-address=") {
            format!("--web.listen-address=127.0.0.1:{port}")
        } else {
            a.to_string()
        };
        args.push(a);
    }
    assert!(args.contains(&"--enable-feature=exemplar-storage".to_string()));
    let log = r.dir.path().join("prometheus.log");
    let mut child = std::process::Command::new("prometheus")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("prometheus is required (Debian package `prometheus`): {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Ok(resp) = reqwest::get(format!("{base}/-/ready")).await {
            if resp.status() == 200 {
                break true;
            }
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let flags: Value = if ready {
        reqwest::get(format!("{base}/api/v1/status/flags"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    } else {
        Value::Null
    };
    let exemplars: Value = if ready {
        reqwest::get(format!(
            "{base}/api/v1/query_exemplars?query=up&start=0&end=1"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    } else {
        Value::Null
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ready, "prometheus did not start with {args:?}:\n{log}");
    assert_eq!(
        flags["data"]["enable-feature"], "exemplar-storage",
        "{flags}"
    );
    assert_eq!(exemplars["status"], "success", "{exemplars}");
    assert!(
        log.contains("exemplar"),
        "no exemplar storage in the log:\n{log}"
    );
}

/// Grafana's expansion of a provisioning value: `$$` is `$`, `$NAME` and
/// `${NAME}` are environment variables (`$__file{…}` and `$__env{…}`
/// are its own). Returns the value Grafana uses and the variables it
/// would have looked up.
fn grafana_expand(v: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut vars = Vec::new();
    let parts: Vec<&str> = v.split("$$").collect();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('$');
        }
        let mut rest = *part;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if after.starts_with("__file{") || after.starts_with("__env{") {
                out.push('$');
                rest = after;
                continue;
            }
            let (name, len) = if let Some(b) = after.strip_prefix('{') {
                let end = b.find('}').unwrap_or(b.len());
                (b[..end].to_string(), end + 2)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (after[..end].to_string(), end)
            };
            vars.push(name);
            rest = &after[len..];
        }
        out.push_str(rest);
    }
    (out, vars)
}

/// Every string in a YAML document, with its path.
fn strings(v: &Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((path, s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                strings(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// The datasources as Grafana provisions them: every value expanded.
fn provisioned(text: &str) -> Value {
    let raw: Value =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(text).unwrap()).unwrap();
    let mut all = Vec::new();
    strings(&raw, String::new(), &mut all);
    for (path, s) in &all {
        let (_, vars) = grafana_expand(s);
        assert!(
            vars.is_empty(),
            "{path}: Grafana would read {vars:?} from its environment in {s:?}"
        );
    }
    fn expand(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::from(grafana_expand(s).0),
            Value::Array(a) => Value::Array(a.iter().map(expand).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| (k.clone(), expand(x))).collect())
            }
            other => other.clone(),
        }
    }
    expand(&raw)
}

#[test]
fn grafana_expansion_is_modelled_as_grafana_documents_it() {
    assert_eq!(grafana_expand("$${__value.raw}").0, "${__value.raw}");
    assert_eq!(grafana_expand("${__value.raw}").1, ["__value.raw"]);
    assert_eq!(grafana_expand("a $HOME b").1, ["HOME"]);
    assert!(grafana_expand("Bearer $__file{/run/secrets/x}")
        .1
        .is_empty());
}

/// uid → type of the provisioned datasources.
fn uids(ds: &Value) -> BTreeMap<String, String> {
    ds["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["uid"].as_str().unwrap().to_string(),
                d["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every datasource uid the dashboard and the datasources' links name,
/// with the type it must have where the name says (`None`: any).
fn named_uids(dash: &Value, ds: &Value) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let vars = dash["templating"]["list"].as_array().unwrap();
    let resolve = |u: &str| match u.strip_prefix("${").and_then(|u| u.strip_suffix('}')) {
        Some(var) => vars.iter().find(|v| v["name"] == var).unwrap()["current"]["value"]
            .as_str()
            .unwrap()
            .to_string(),
        None => u.to_string(),
    };
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        let mut refs = vec![&p["datasource"]];
        refs.extend(
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| &t["datasource"]),
        );
        for d in refs.into_iter().filter(|d| d.is_object()) {
            out.push((
                format!("panel {title}"),
                resolve(d["uid"].as_str().unwrap()),
                d["type"].as_str().map(str::to_string),
            ));
        }
        // A data link into Explore names its datasource in the pane JSON.
        for l in p["fieldConfig"]["defaults"]["links"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let url = l["url"].as_str().unwrap();
            let panes = url.split("panes=").nth(1).unwrap();
            let panes: Value = serde_json::from_str(panes).unwrap();
            for (_, pane) in panes.as_object().unwrap() {
                out.push((
                    format!("panel {title} link"),
                    pane["datasource"].as_str().unwrap().to_string(),
                    None,
                ));
                for q in pane["queries"].as_array().unwrap() {
                    out.push((
                        format!("panel {title} link query"),
                        q["datasource"]["uid"].as_str().unwrap().to_string(),
                        q["datasource"]["type"].as_str().map(str::to_string),
                    ));
                }
            }
        }
    }
    let some = |t: &str| Some(t.to_string());
    for d in ds["datasources"].as_array().unwrap() {
        let j = &d["jsonData"];
        let name = d["name"].as_str().unwrap();
        for e in j["exemplarTraceIdDestinations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push((
                format!("{name} exemplars"),
                e["datasourceUid"].as_str().unwrap().into(),
                some("tempo"),
            ));
        }
        for f in j["derivedFields"].as_array().into_iter().flatten() {
            let ty = if f["name"] == "trace_id" {
                some("tempo")
            } else {
                some("loki")
            };
            out.push((
                format!("{name} derived field {}", f["name"]),
                f["datasourceUid"].as_str().unwrap().into(),
                ty,
            ));
        }
        for (key, ty) in [
            ("tracesToLogsV2", "loki"),
            ("tracesToMetrics", "prometheus"),
            ("lokiSearch", "loki"),
            ("serviceMap", "prometheus"),
        ] {
            if let Some(u) = j[key]["datasourceUid"].as_str() {
                out.push((format!("{name} {key}"), u.into(), some(ty)));
            }
        }
    }
    out
}

fn assert_every_named_uid_is_provisioned(dash: &Value, ds_text: &str, what: &str) {
    let ds = provisioned(ds_text);
    let have = uids(&ds);
    let named = named_uids(dash, &ds);
    // Panels of every kind, exemplars, both derived fields and both trace links.
    assert!(named.len() >= 20, "{what}: {named:?}");
    for ty in ["prometheus", "loki", "tempo", "simpod-json-datasource"] {
        assert!(
            named
                .iter()
                .any(|(_, u, _)| have.get(u).map(String::as_str) == Some(ty)),
            "{what}: nothing names the {ty} datasource"
        );
    }
    for (at, uid, ty) in named {
        let Some(found) = have.get(&uid) else {
            panic!("{what}: {at} names datasource {uid:?}, which is not provisioned ({have:?})");
        };
        if let Some(ty) = ty {
            assert_eq!(
                found, &ty,
                "{what}: {at} names {uid:?}, a {found}, for a {ty}"
            );
        }
    }
}

#[test]
fn every_datasource_uid_a_panel_or_a_link_names_is_provisioned() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let uid = m["dashboard"]["uid"].as_str().unwrap();
    let dash = json(&r.out.join(format!("grafana/dashboards/{uid}.json")));
    let compose_ds = read(
        &r.out
            .join("grafana/provisioning/datasources/datasources.yml"),
    );
    assert_every_named_uid_is_provisioned(&dash, &compose_ds, "compose");
    let cm = yaml(&r.out.join("kubernetes/grafana-datasources.yaml"));
    let (_, k8s_ds) = cm["data"].as_object().unwrap().iter().next().unwrap();
    let k8s_ds = k8s_ds.as_str().unwrap();
    assert_every_named_uid_is_provisioned(&dash, k8s_ds, "kubernetes");
    let k8s = provisioned(k8s_ds);
    let tempo = k8s["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "tempo")
        .unwrap()
        .clone();
    assert_eq!(tempo["url"], m["kubernetes"]["tempo_url"]);

    // The check fails on a uid nobody provisions, and on a link to the
    // wrong kind of datasource.
    let missing = compose_ds.replace(
        "\"datasourceUid\":\"telltale-tempo\"",
        "\"datasourceUid\":\"nope\"",
    );
    assert_ne!(missing, compose_ds);
    let wrong = compose_ds.replacen(
        "\"datasourceUid\":\"telltale-tempo\"",
        "\"datasourceUid\":\"telltale-loki\"",
        1,
    );
    for (name, text) in [("missing", missing), ("wrong type", wrong)] {
        let d = dash.clone();
        let failed =
            std::panic::catch_unwind(|| assert_every_named_uid_is_provisioned(&d, &text, name));
        assert!(failed.is_err(), "{name}: the broken provisioning passed");
    }
}

#[test]
fn latency_panels_show_exemplars_and_signals_link_to_traces() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let uid = m["dashboard"]["uid"].as_str().unwrap();
    let dash = json(&r.out.join(format!("grafana/dashboards/{uid}.json")));
    let hist = m["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == "http.duration")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut shown = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let latency = p["type"] == "timeseries"
                && t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains(&format!("{hist}_bucket")));
            if latency {
                assert_eq!(t["exemplar"], true, "{}", p["title"]);
                shown += 1;
            } else {
                assert!(t.get("exemplar").is_none(), "{}: {t}", p["title"]);
            }
        }
    }
    assert!(shown >= 1, "no latency panel shows exemplars");

    let text = read(
        &r.out
            .join("grafana/provisioning/datasources/datasources.yml"),
    );
    // Written with `$$`, so that Grafana keeps Grafana's own variables.
    for raw in ["$${__value.raw}", "$${__trace.traceId}", "$$__tags"] {
        assert!(text.contains(raw), "{raw} not in:\n{text}");
    }
    let ds = provisioned(&text);
    let by_type = |t: &str| {
        ds["datasources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["type"] == t)
            .unwrap()
            .clone()
    };
    let tempo_uid = &m["stack"]["datasources"]["tempo"];
    // Exemplars: the label the server's exemplars carry.
    let p = by_type("prometheus");
    assert_eq!(
        p["jsonData"]["exemplarTraceIdDestinations"],
        serde_json::json!([{ "name": "trace_id", "datasourceUid": tempo_uid }])
    );
    // Logs: trace_id is structured metadata, so matched as a label, and
    // shipped as such by both shippers.
    let l = by_type("loki");
    let fields = l["jsonData"]["derivedFields"].as_array().unwrap();
    let trace = fields.iter().find(|f| f["name"] == "trace_id").unwrap();
    assert_eq!(trace["matcherType"], "label");
    assert_eq!(trace["matcherRegex"], "trace_id");
    assert_eq!(&trace["datasourceUid"], tempo_uid);
    assert_eq!(trace["url"], "${__value.raw}");
    let request = fields.iter().find(|f| f["name"] == "request_id").unwrap();
    assert!(request["url"]
        .as_str()
        .unwrap()
        .ends_with("|= \"${__value.raw}\""));
    let alloy = read(&r.out.join("alloy/config.alloy"));
    let metadata = &alloy[alloy.find("stage.structured_metadata").unwrap()..];
    let metadata = &metadata[..metadata.find("}\n").unwrap()];
    assert!(metadata.contains("\"trace_id\" = \"\""), "{metadata}");
    let promtail = yaml(&r.out.join("promtail/promtail.yml"));
    assert!(promtail["scrape_configs"][0]["pipeline_stages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["structured_metadata"].get("trace_id").is_some()));

    // Traces → logs: LogQL over labels the shipper sets, filtering on the
    // trace's id. Traces → metrics: PromQL over the manifest's metrics.
    let t = by_type("tempo");
    let to_logs = &t["jsonData"]["tracesToLogsV2"];
    assert_eq!(to_logs["customQuery"], true);
    let q = to_logs["query"].as_str().unwrap();
    assert_eq!(
        q,
        format!(
            "{{service_name=\"{}\"}} | trace_id=\"${{__trace.traceId}}\"",
            m["service"]["name"].as_str().unwrap()
        )
    );
    let matchers = telltale::internals::model::logql::stream_matchers(
        &q.replace("${__trace.traceId}", "4bf92f3577b34da6a3ce929d0e0e4736"),
    )
    .unwrap();
    assert_eq!(matchers.len(), 1, "{matchers:?}");
    assert!(alloy.contains("\"service_name\" = \"service\""));
    let to_metrics = &t["jsonData"]["tracesToMetrics"];
    let queries = to_metrics["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2, "{queries:?}");
    let counter = m["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == "http.requests")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    for (q, metric) in queries.iter().zip([counter, format!("{hist}_bucket")]) {
        let q = q["query"].as_str().unwrap();
        assert!(q.contains("{$__tags}"), "{q}");
        // Grafana puts the span's mapped tags there.
        let expr = q.replace("$__tags", "job=\"ecommerce-api\", path=\"/products\"");
        promql_parser::parser::parse(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(expr.contains(&metric), "{expr}");
    }
    let keys: Vec<&str> = to_metrics["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["job", "path"]);
}

#[test]
fn the_alloy_configs_use_only_alloys_documented_blocks_and_wire_up() {
    let r = rendered_default();
    let host = read(&r.out.join("alloy/config.alloy"));
    let cm = yaml(&r.out.join("kubernetes/alloy.yaml"));
    let pods = cm["data"]["config.alloy"].as_str().unwrap().to_string();
    for (name, text) in [("host", &host), ("pods", &pods)] {
        let errs = alloy_syntax::check(text);
        assert!(errs.is_empty(), "{name}: {errs:#?}\n{text}");
    }
    // The pods' config receives OTLP on the port of kubernetes.otlp_url
    // and exports to kubernetes.tempo_otlp.
    let m = yaml(&r.manifest);
    let blocks = alloy_syntax::parse(&pods).unwrap();
    let find = |n: &str| blocks.iter().find(|b| b.name == n).unwrap().clone();
    let receiver = find("otelcol.receiver.otlp");
    let http = receiver.blocks.iter().find(|b| b.name == "http").unwrap();
    let url = m["kubernetes"]["otlp_url"].as_str().unwrap();
    let port = url.rsplit(':').next().unwrap();
    assert_eq!(
        http.attrs,
        [(
            "endpoint".to_string(),
            alloy_syntax::Expr::Str(format!("0.0.0.0:{port}"))
        )]
    );
    let output = receiver.blocks.iter().find(|b| b.name == "output").unwrap();
    assert_eq!(output.attrs[0].0, "traces");
    let exporter = find("otelcol.exporter.otlp");
    let client = &exporter.blocks[0];
    assert_eq!(
        client.attrs[0],
        (
            "endpoint".to_string(),
            alloy_syntax::Expr::Str(m["kubernetes"]["tempo_otlp"].as_str().unwrap().into())
        )
    );
    // The chart's Service must expose that port: the file says how.
    let file = read(&r.out.join("kubernetes/alloy.yaml"));
    assert!(
        file.contains(&format!(
            "alloy.extraPorts: [{{name: otlp-http, port: {port}, targetPort: {port}}}]"
        )),
        "{file}"
    );

    // The check catches what Alloy would refuse.
    for (what, bad) in [
        (
            "an unknown argument",
            pods.replacen("endpoint =", "endpont =", 1),
        ),
        (
            "a dangling reference",
            pods.replace(
                "otelcol.exporter.otlp.tempo.input",
                "otelcol.exporter.otlp.nope.input",
            ),
        ),
        (
            "a wrong export",
            pods.replace(
                "otelcol.exporter.otlp.tempo.input",
                "otelcol.exporter.otlp.tempo.receiver",
            ),
        ),
        (
            "a missing block",
            pods.replacen(
                "  output {\n    traces = [otelcol.exporter.otlp.tempo.input]\n  }\n",
                "",
                1,
            ),
        ),
        ("a syntax error", pods.replacen("tls {", "tls {{", 1)),
        (
            "an unknown block",
            host.replacen("stage.cri", "stage.crio", 1)
                .replacen("stage.json", "stage.jsn", 1),
        ),
    ] {
        assert_ne!(&bad, &pods, "{what}: nothing replaced");
        let errs = alloy_syntax::check(&bad);
        assert!(!errs.is_empty(), "{what}: passed");
    }
}

#[test]
fn the_deployment_tells_the_pods_where_their_spans_go() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let file = r.out.join("kubernetes/deployment.yaml");
    let dep = yaml(&file);
    let env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let value = |n: &str| {
        let i = env
            .iter()
            .position(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("no {n}"));
        (i, env[i]["value"].as_str().unwrap().to_string())
    };
    let (_, endpoint) = value("OTEL_EXPORTER_OTLP_ENDPOINT");
    assert_eq!(endpoint, m["kubernetes"]["otlp_url"].as_str().unwrap());
    let (at, resource) = value("OTEL_RESOURCE_ATTRIBUTES");
    // `$(POD_NAME)` is expanded by the kubelet: POD_NAME must come first.
    let pod = env.iter().position(|e| e["name"] == "POD_NAME").unwrap();
    assert!(pod < at);
    assert_eq!(
        resource,
        format!(
            "k8s.pod.name=$(POD_NAME),k8s.namespace.name={},k8s.deployment.name={}",
            m["kubernetes"]["namespace"].as_str().unwrap(),
            m["service"]["name"].as_str().unwrap()
        )
    );
    // Each attribute is key=value, as OTEL_RESOURCE_ATTRIBUTES takes them.
    for kv in resource.split(',') {
        let (k, v) = kv.split_once('=').unwrap();
        assert!(!k.is_empty() && !v.is_empty() && !v.contains('='), "{kv}");
    }
    let (ok, out) = kubernetes_validate(&[file]);
    assert!(ok, "{out}");
}

/// The render is deterministic and `generated/` holds Tempo's config.
#[test]
fn generated_holds_the_tempo_config() {
    let text = read(&repo().join("generated/tempo/tempo.yaml"));
    let r = rendered_default();
    assert_eq!(text, read(&r.out.join("tempo/tempo.yaml")));
    assert!(Path::new(&repo().join("tests/schemas/tempo/tempo-2.10.schema.json")).exists());
}

/// A `$` in a manifest value reaches Grafana as written: the provisioning
/// file doubles it, so Grafana looks up no variable.
#[test]
fn dollars_in_manifest_values_reach_grafana_as_written() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let manifest = dir.path().join("dollar.yaml");
    let (tempo, loki) = (
        "http://tempo.monitoring.svc:3200/t$HOME",
        "http://loki.monitoring.svc/l$X",
    );
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["kubernetes", "tempo_url"]) = tempo.into();
        *at(v, &["kubernetes", "loki_url"]) = loki.into();
    });
    let out = dir.path().join("out");
    render_ok(&manifest, &out);
    let cm = yaml(&out.join("kubernetes/grafana-datasources.yaml"));
    let (_, text) = cm["data"].as_object().unwrap().iter().next().unwrap();
    let text = text.as_str().unwrap();
    assert!(
        text.contains("/t$$HOME") && text.contains("/l$$X"),
        "{text}"
    );
    // `provisioned` fails on any variable Grafana would look up.
    let ds = provisioned(text);
    let url = |t: &str| {
        ds["datasources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["type"] == t)
            .unwrap()["url"]
            .clone()
    };
    assert_eq!(url("tempo"), tempo);
    assert_eq!(url("loki"), loki);
}
