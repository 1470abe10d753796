//! `telltale render`: every rendered file agrees with the manifest and with
//! the other files; the dashboard follows Grafana's conventions.

mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Cross-references between the rendered files and the manifest, on one
/// render of the repo manifest.
#[test]
fn rendered_files_agree_with_each_other_and_the_manifest() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    compose_follows_the_manifest(&r, &m);
    prometheus_scrapes_the_service_and_the_extra_targets(&r.out, &m);
    promtail_ships_the_declared_fields_and_labels(&r.out, &m);
    alloy_runs_the_same_pipeline(&r.out, &m);
    grafana_is_provisioned_with_the_stacks_datasources(&r.out, &m);
}

/// The manifest's list at `logging.KEY` (`fields` or `labels`).
fn logging_list<'a>(m: &'a Value, key: &str) -> Vec<&'a str> {
    m["logging"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// The port of the stack's component `c`.
fn port(m: &Value, c: &str) -> i64 {
    m["stack"][c]["port"].as_i64().unwrap()
}

/// Loki's push URL, as the shippers must name it.
fn loki_push(m: &Value) -> String {
    format!("http://loki:{}/loki/api/v1/push", port(m, "loki"))
}

/// The glob of the service's log files, as the shippers see them.
fn log_glob(m: &Value) -> String {
    format!(
        "/var/log/telltale/{}.*log",
        m["logging"]["file"].as_str().unwrap()
    )
}

/// docker-compose.yml: the services, their images, networks, ports and
/// mounts, and the shipper's view of the log directory.
fn compose_follows_the_manifest(r: &Rendered, m: &Value) {
    let o = &r.out;
    let stack = &m["stack"];
    let port = |c: &str| port(m, c);
    let compose = yaml(&o.join("docker-compose.yml"));
    let services = compose["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["alloy", "grafana", "loki", "prometheus", "tempo"])
    );
    let network = stack["network"].as_str().unwrap();
    assert!(compose["networks"][network].is_object());
    let declared_volumes: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for (name, svc) in services {
        assert_eq!(
            svc["image"], stack[name]["image"],
            "{name}: image not from the manifest"
        );
        let image = svc["image"].as_str().unwrap();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "{image}"
        );
        assert_eq!(svc["networks"], serde_json::json!([network]), "{name}");
        let p = port(name);
        let mut published = vec![format!("127.0.0.1:{p}:{p}")];
        if name == "tempo" {
            // And its OTLP/HTTP receiver, which the service exports to.
            let h = stack["otlp"]["http"].as_i64().unwrap();
            published.push(format!("127.0.0.1:{h}:{h}"));
        }
        assert_eq!(svc["ports"], serde_json::json!(published), "{name}");
        for v in svc["volumes"].as_array().unwrap() {
            let v = v.as_str().unwrap();
            let src = v.split(':').next().unwrap();
            if src.starts_with('.') {
                if !src.contains("logs") {
                    assert!(o.join(src).exists(), "{name}: mounts missing {src}");
                }
            } else {
                assert!(
                    declared_volumes.contains(src),
                    "{name}: undeclared volume {src}"
                );
            }
        }
    }
    for name in ["prometheus", "grafana"] {
        assert_eq!(
            services[name]["extra_hosts"],
            serde_json::json!(["host.docker.internal:host-gateway"])
        );
    }
    let grafana = &services["grafana"];
    assert_eq!(
        grafana["environment"]["GF_PLUGINS_PREINSTALL_SYNC"],
        "simpod-json-datasource"
    );
    assert_eq!(
        grafana["env_file"],
        serde_json::json!([".grafana-admin.env"])
    );
    // The shipper sees the service's log dir where its config looks.
    let log_mount = services["alloy"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .find(|v| v.ends_with(":/var/log/telltale:ro"))
        .expect("alloy mounts the log dir");
    let host_logs = o.join(log_mount.split(':').next().unwrap());
    assert_eq!(
        std::fs::canonicalize(host_logs.parent().unwrap()).unwrap(),
        std::fs::canonicalize(r.dir.path()).unwrap()
    );
    assert!(host_logs.ends_with(m["logging"]["dir"].as_str().unwrap()));
}

/// prometheus.yml: the service job and the extra targets.
fn prometheus_scrapes_the_service_and_the_extra_targets(o: &Path, m: &Value) {
    let stack = &m["stack"];
    let prom = yaml(&o.join("prometheus/prometheus.yml"));
    assert_eq!(prom["global"]["scrape_interval"], stack["scrape_interval"]);
    assert_eq!(
        prom["global"]["evaluation_interval"],
        stack["evaluation_interval"]
    );
    let jobs = prom["scrape_configs"].as_array().unwrap();
    assert_eq!(jobs[0]["job_name"], m["service"]["name"]);
    // The service's instances come from its file_sd file, beside which
    // operators may add more.
    assert_eq!(
        jobs[0]["file_sd_configs"][0]["files"][0],
        "targets/ecommerce-api/*.yml"
    );
    let groups = yaml(&o.join("prometheus/targets/ecommerce-api/telltale.yml"));
    assert_eq!(
        groups[0]["targets"],
        serde_json::json!([format!("host.docker.internal:{}", m["service"]["port"])])
    );
    assert_eq!(jobs[1]["job_name"], "starter-app");
    assert_eq!(
        jobs[1]["static_configs"][0]["targets"][0],
        "host.docker.internal:8000"
    );
    assert!(
        prom.get("alerting").is_none(),
        "no Alertmanager in the manifest"
    );
}

/// promtail.yml: the push URL, the glob, and a pipeline of the declared
/// fields and labels.
fn promtail_ships_the_declared_fields_and_labels(o: &Path, m: &Value) {
    let (fields, labels) = (logging_list(m, "fields"), logging_list(m, "labels"));
    let (push, glob) = (loki_push(m), log_glob(m));
    let promtail = yaml(&o.join("promtail/promtail.yml"));
    assert_eq!(promtail["clients"][0]["url"], push.as_str());
    let job = &promtail["scrape_configs"][0];
    assert_eq!(
        job["static_configs"][0]["labels"]["__path__"],
        glob.as_str()
    );
    let stages = job["pipeline_stages"].as_array().unwrap();
    let exprs: Vec<&str> = stages[0]["json"]["expressions"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(exprs, fields);
    let stage_labels: Vec<&str> = stages[1]["labels"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(stage_labels, labels);
    // Every line's identity: Loki 3's service_name and the instance, as
    // labels; the request id as structured metadata, never a label.
    assert_eq!(
        stages[2]["labels"],
        serde_json::json!({"service_name": "service", "instance": "instance"})
    );
    assert!(stages[3]["structured_metadata"]
        .as_object()
        .unwrap()
        .contains_key("request_id"));
    assert!(!labels.contains(&"request_id"));
    // The file name (a new stream each day) is no label.
    assert_eq!(stages[4]["labeldrop"], serde_json::json!(["filename"]));
    assert_eq!(stages[5]["timestamp"]["source"], "timestamp");
    assert!(fields.contains(&"timestamp"));
}

/// config.alloy: the same pipeline as promtail's.
fn alloy_runs_the_same_pipeline(o: &Path, m: &Value) {
    let (fields, labels) = (logging_list(m, "fields"), logging_list(m, "labels"));
    let (push, glob) = (loki_push(m), log_glob(m));
    let alloy = read(&o.join("alloy/config.alloy"));
    let keys_of = |block: &str, attr: &str| -> Vec<String> {
        let start = alloy.find(block).unwrap_or_else(|| panic!("no {block}"));
        let body = &alloy[start..];
        let a = body.find(attr).unwrap();
        let open = a + body[a..].find('{').unwrap();
        let close = open + body[open..].find('}').unwrap();
        body[open + 1..close]
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .collect()
    };
    assert_eq!(keys_of("stage.json {", "expressions"), fields);
    assert_eq!(keys_of("stage.labels {", "values"), labels);
    assert!(
        alloy.contains("\"service_name\" = \"service\",")
            && alloy.contains("\"instance\" = \"instance\","),
        "alloy labels the identity"
    );
    assert_eq!(
        keys_of("stage.structured_metadata {", "values"),
        ["request_id", "trace_id", "span_id"]
    );
    assert!(alloy.contains(&format!("url = \"{push}\"")));
    assert!(alloy.contains(&format!("\"__path__\" = \"{glob}\"")));
    assert!(alloy.contains("source = \"timestamp\""));
    assert!(alloy.contains("stage.label_drop {\n    values = [\"filename\"]"));
    assert_eq!(alloy.matches('{').count(), alloy.matches('}').count());
}

/// datasources.yml (pinned uids, URLs of the compose services),
/// dashboards.yml (where compose mounts the dashboards) and the dashboard
/// (every panel's datasource is provisioned).
fn grafana_is_provisioned_with_the_stacks_datasources(o: &Path, m: &Value) {
    let stack = &m["stack"];
    let port = |c: &str| port(m, c);
    let compose = yaml(&o.join("docker-compose.yml"));
    let grafana = &compose["services"]["grafana"];
    // datasources.yml: pinned uids, URLs of the compose services.
    let ds = yaml(&o.join("grafana/provisioning/datasources/datasources.yml"));
    let ds = ds["datasources"].as_array().unwrap();
    let by_type = |t: &str| ds.iter().find(|d| d["type"] == t).unwrap().clone();
    let (p, l, j, t) = (
        by_type("prometheus"),
        by_type("loki"),
        by_type("simpod-json-datasource"),
        by_type("tempo"),
    );
    assert_eq!(p["uid"], stack["datasources"]["prometheus"]);
    assert_eq!(l["uid"], stack["datasources"]["loki"]);
    assert_eq!(j["uid"], stack["datasources"]["json"]);
    assert_eq!(t["uid"], stack["datasources"]["tempo"]);
    assert_eq!(t["url"], format!("http://tempo:{}", port("tempo")));
    assert_eq!(
        p["url"],
        format!("http://prometheus:{}", port("prometheus"))
    );
    assert_eq!(l["url"], format!("http://loki:{}", port("loki")));
    assert_eq!(
        j["url"],
        format!(
            "http://host.docker.internal:{}/grafana",
            m["service"]["port"]
        )
    );
    assert_eq!(p["jsonData"]["timeInterval"], stack["scrape_interval"]);

    // dashboards.yml points where compose mounts the dashboards.
    let prov = yaml(&o.join("grafana/provisioning/dashboards/dashboards.yml"));
    let path = prov["providers"][0]["options"]["path"].as_str().unwrap();
    assert!(grafana["volumes"]
        .as_array()
        .unwrap()
        .contains(&Value::from(format!("./grafana/dashboards:{path}:ro"))));

    // The dashboard: every panel's datasource is provisioned.
    let dash = json(&o.join("grafana/dashboards/ecommerce-api.json"));
    let templ = dash["templating"]["list"].as_array().unwrap();
    let var_names: Vec<&str> = templ.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(var_names, ["datasource", "job", "instance"]);
    assert_eq!(templ[0]["current"]["value"], p["uid"]);
    for panel in dash["panels"].as_array().unwrap() {
        let uid = panel["datasource"]["uid"].as_str().unwrap();
        let ty = panel["datasource"]["type"].as_str().unwrap();
        let provisioned = ds.iter().any(|d| d["uid"] == uid && d["type"] == ty);
        assert!(
            provisioned || (uid == "${datasource}" && ty == "prometheus"),
            "{panel}"
        );
    }
}

#[test]
fn dashboard_follows_the_manifest_and_grafana_conventions() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let dash = json(&r.out.join("grafana/dashboards/ecommerce-api.json"));
    assert_eq!(dash["uid"], m["dashboard"]["uid"]);
    assert_eq!(dash["refresh"], m["dashboard"]["refresh"]);
    assert_eq!(dash["refresh"], "5s");
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 39);
    let panels = dash["panels"].as_array().unwrap();
    let mpanels = m["dashboard"]["panels"].as_array().unwrap();
    assert_eq!(panels.len(), mpanels.len());
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for t in [
        "HTTP Request Rate",
        "Total Requests",
        "CPU Usage",
        "Request Duration p95",
        "Memory Usage",
        "Low Stock Products",
        "Requests by Status",
        "Error Log Rate",
        "Application Logs",
    ] {
        assert!(titles.contains(&t), "{t} missing");
    }
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(u64, u64, u64, u64)> = Vec::new();
    for (p, mp) in panels.iter().zip(mpanels) {
        assert!(ids.insert(p["id"].as_u64().unwrap()));
        assert_eq!(p["title"], mp["title"]);
        let d = &p["fieldConfig"]["defaults"];
        assert!(d["unit"].is_string(), "{}: no unit", p["title"]);
        assert_eq!(d["thresholds"]["mode"], "absolute");
        let steps = d["thresholds"]["steps"].as_array().unwrap();
        assert!(
            !steps.is_empty() && steps[0]["value"].is_null(),
            "{}",
            p["title"]
        );
        for t in p["targets"].as_array().unwrap() {
            // JSON-datasource targets carry `target`, not `expr`.
            let Some(expr) = t["expr"].as_str() else {
                assert_eq!(p["datasource"]["type"], "simpod-json-datasource");
                assert!(t["target"].is_string(), "{t}");
                continue;
            };
            if expr.contains("rate(") && p["datasource"]["type"] == "prometheus" {
                assert!(expr.contains("[$__rate_interval]"), "{expr}");
            }
        }
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{}: beyond 24 columns", p["title"]);
        for (bx, by, bw, bh) in &boxes {
            let overlap = x < bx + bw && *bx < x + w && y < by + bh && *by < y + h;
            assert!(!overlap, "{} overlaps another panel", p["title"]);
        }
        boxes.push((x, y, w, h));
    }
}

#[test]
fn shipper_choice_and_json_panels_follow_the_manifest() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let manifest = dir.path().join("promtail.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["stack", "shipper"]) = "promtail".into();
        *at(v, &["stack", "alertmanager"]) = "alertmanager:9093".into();
        let panels = at(v, &["dashboard", "panels"]).as_sequence_mut().unwrap();
        panels.push(
            serde_yaml::from_str(
                "{title: Low stock (JSON), type: table, datasource: json, targets: [{expr: low_stock_products}], width: 24}",
            )
            .unwrap(),
        );
    });
    let out = dir.path().join("out");
    render_ok(&manifest, &out);
    let compose = yaml(&out.join("docker-compose.yml"));
    let svc = &compose["services"]["promtail"];
    assert!(compose["services"].get("alloy").is_none());
    let vols: Vec<&str> = svc["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        vols.contains(&"./promtail/promtail.yml:/etc/promtail/promtail.yml:ro"),
        "{vols:?}"
    );
    assert!(
        vols.iter().any(|v| v.ends_with(":/var/log/telltale:ro")),
        "{vols:?}"
    );
    assert!(compose["volumes"]["promtail-positions"].is_object());
    let prom = yaml(&out.join("prometheus/prometheus.yml"));
    assert_eq!(
        prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
        "alertmanager:9093"
    );
    let (ok, outp) = promtool(
        &["check", "config", "prometheus.yml"],
        &out.join("prometheus"),
    );
    assert!(ok, "{outp}");
    let dash = json(&out.join("grafana/dashboards/ecommerce-api.json"));
    let table = dash["panels"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(table["type"], "table");
    assert_eq!(table["datasource"]["type"], "simpod-json-datasource");
    assert_eq!(table["datasource"]["uid"], "telltale-json");
    assert_eq!(table["targets"][0]["target"], "low_stock_products");
    assert_eq!(table["targets"][0]["refId"], "A");
}
