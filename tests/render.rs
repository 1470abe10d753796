//! `telltale render`: promtool accepts what it writes, the output is
//! deterministic and atomic, `--check` sees drift, and every rendered file
//! agrees with the manifest and with the other files.

mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const RENDERED: &[&str] = &[
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

fn alert_rules(alerts_yml: &Path) -> Vec<Value> {
    yaml(alerts_yml)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn renders_every_file_with_a_do_not_edit_notice() {
    let r = rendered_default();
    let files = snapshot(&r.out);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = RENDERED.to_vec();
    want.push(".grafana-admin.env");
    want.push(".telltale-render");
    want.sort();
    assert_eq!(names, want);
    for f in RENDERED {
        let text = read(&r.out.join(f));
        let notice = "Generated from manifest.yaml by `telltale render`. Do not edit";
        if *f == "manifest.schema.json" {
            // From the manifest's types, not from manifest.yaml.
            let comment = json(&r.out.join(f))["$comment"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                comment.starts_with("Generated from telltale's manifest types"),
                "{comment}"
            );
        } else if f.ends_with(".json") {
            assert!(json(&r.out.join(f))["description"]
                .as_str()
                .unwrap()
                .starts_with(notice));
        } else {
            let first = text.lines().next().unwrap();
            assert!(
                first == format!("# {notice}: change manifest.yaml and re-render.")
                    || first == format!("// {notice}: change manifest.yaml and re-render."),
                "{f}: {first}"
            );
        }
    }
}

#[test]
fn promtool_accepts_config_rules_and_unit_tests() {
    let r = rendered_default();
    let prom = r.out.join("prometheus");
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"], &prom);
    assert!(ok, "{out}");
    assert!(out.contains("1 rule files found"), "{out}");
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], &prom);
    assert!(ok, "{out}");
    let n = alert_rules(&prom.join("alerts.yml")).len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"], &prom);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test() {
    let r = rendered_default();
    let prom = r.out.join("prometheus");
    let alerts: BTreeSet<String> = alert_rules(&prom.join("alerts.yml"))
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    // The derived alerts of the issue, plus the manifest's own.
    for a in [
        "HighErrorRatio",
        "LatencyP95High",
        "LowStock",
        "TargetDown",
        "AvailabilityErrorBudgetBurnPage",
        "AvailabilityErrorBudgetBurnTicket",
        "LatencyErrorBudgetBurnPage",
        "LatencyErrorBudgetBurnTicket",
        "HighMemoryUsage",
    ] {
        assert!(alerts.contains(a), "{a} missing from {alerts:?}");
    }
    let tests = yaml(&prom.join("alerts.test.yml"));
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in tests["tests"].as_array().unwrap() {
        for case in t["alert_rule_test"].as_array().unwrap() {
            let name = case["alertname"].as_str().unwrap().to_string();
            if case["exp_alerts"].as_array().unwrap().is_empty() {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    assert_eq!(firing, alerts);
    assert_eq!(quiet, alerts);
    for rule in alert_rules(&prom.join("alerts.yml")) {
        if rule["alert"].is_string() {
            assert!(rule["labels"]["severity"].is_string(), "{rule}");
            assert!(rule["annotations"]["summary"].is_string(), "{rule}");
            assert!(rule["annotations"]["description"].is_string(), "{rule}");
        }
    }
}

/// The unit tests are not vacuous: breaking any alert makes them fail.
#[test]
fn promtool_tests_fail_when_an_alert_is_broken() {
    let r = rendered_default();
    let prom = r.out.join("prometheus");
    let text = read(&prom.join("alerts.yml"));
    let rules = alert_rules(&prom.join("alerts.yml"));
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&read(&prom.join("alerts.test.yml"))).unwrap();
    for rule in rules.iter().filter(|r| r["alert"].is_string()) {
        let name = rule["alert"].as_str().unwrap();
        let expr = rule["expr"].as_str().unwrap();
        let quoted = format!("expr: '{}'", expr.replace('\'', "''"));
        assert!(
            text.contains(&quoted),
            "{name}: expression not found as written"
        );
        for (broken, why) in [
            ("vector(0) > 1", "never fires"),
            ("vector(1)", "always fires"),
        ] {
            let dir = tempdir();
            std::fs::write(
                dir.path().join("alerts.yml"),
                text.replacen(&quoted, &format!("expr: '{broken}'"), 1),
            )
            .unwrap();
            // Only this alert's two tests, to keep promtool fast.
            let mut mine = tests.clone();
            mine["tests"]
                .as_sequence_mut()
                .unwrap()
                .retain(|t| t["alert_rule_test"][0]["alertname"].as_str() == Some(name));
            assert_eq!(mine["tests"].as_sequence().unwrap().len(), 2, "{name}");
            std::fs::write(
                dir.path().join("alerts.test.yml"),
                serde_yaml::to_string(&mine).unwrap(),
            )
            .unwrap();
            let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"], dir.path());
            assert!(!ok, "{name} {why}, yet its unit tests pass:\n{out}");
            assert!(
                out.contains(name),
                "{name}: failure does not name it:\n{out}"
            );
        }
    }
}

#[test]
fn output_is_deterministic_and_matches_the_committed_tree() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    render_ok(&manifest, &a);
    render_ok(&manifest, &b);
    render_ok(&manifest, &b);
    let (mut sa, mut sb) = (snapshot(&a), snapshot(&b));
    // The admin env file is random per output directory, by design.
    assert_ne!(
        sa.remove(".grafana-admin.env"),
        sb.remove(".grafana-admin.env")
    );
    assert_eq!(sa, sb);

    // CI's drift check: generated/ is what the repo's manifest renders.
    let root = repo();
    let (st, out, err) = run(
        &[
            "render",
            "--check",
            "--manifest",
            "manifest.yaml",
            "--out",
            "generated",
        ],
        &root,
    );
    assert!(st.success(), "generated/ is stale:\n{out}{err}");
}

#[test]
fn admin_password_is_random_private_and_kept() {
    let r = rendered_default();
    let env_path = r.out.join(".grafana-admin.env");
    let env = read(&env_path);
    let pw = env
        .lines()
        .find_map(|l| l.strip_prefix("GF_SECURITY_ADMIN_PASSWORD="))
        .unwrap()
        .to_string();
    assert!(
        pw.len() >= 32 && pw.chars().all(|c| c.is_ascii_hexdigit()),
        "{pw}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "env file is readable by others: {mode:o}");
    }
    for (f, bytes) in snapshot(&r.out) {
        if f != ".grafana-admin.env" {
            let text = String::from_utf8(bytes).unwrap();
            assert!(!text.contains(&pw), "{f} contains the password");
            assert!(
                !text.contains("admin123"),
                "{f} contains the seed's password"
            );
            assert!(!text.to_ascii_uppercase().contains("PASSWORD="), "{f}");
        }
    }
    let stdout = render_ok(&r.manifest, &r.out);
    assert!(
        stdout.contains(&format!(
            "Grafana admin password: {} (kept)",
            env_path.display()
        )),
        "{stdout}"
    );
    assert_eq!(read(&env_path), env);
    // --check ignores it.
    std::fs::write(&env_path, "GF_SECURITY_ADMIN_PASSWORD=changed\n").unwrap();
    let (st, _, err) = render(&r.manifest, &r.out, &["--check"]);
    assert!(st.success(), "{err}");
}

#[test]
fn a_failed_render_leaves_the_old_tree_untouched() {
    let r = rendered_default();
    let before = snapshot(&r.out);
    let siblings = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let clean = siblings(r.dir.path());

    // 1. An invalid manifest: nothing is written.
    let text = read(&r.manifest).replace("scrape_interval: 15s", "scrape_interval: soon");
    std::fs::write(&r.manifest, text).unwrap();
    let (st, _, err) = render(&r.manifest, &r.out, &[]);
    assert!(!st.success());
    assert!(err.contains("stack.scrape_interval"), "{err}");
    assert_eq!(snapshot(&r.out), before);
    assert_eq!(siblings(r.dir.path()), clean);

    // 2. Killed mid-write (a 1 KiB file-size limit: SIGXFSZ on the first
    //    large file). The new manifest differs, so a half-written tree would show.
    let text = read(&r.manifest).replace("scrape_interval: soon", "scrape_interval: 30s");
    std::fs::write(&r.manifest, text).unwrap();
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1; exec \"$0\" render --manifest \"$1\" --out \"$2\"")
        .arg(bin())
        .arg(&r.manifest)
        .arg(&r.out)
        .status()
        .unwrap();
    assert!(
        !st.success(),
        "render should not survive a 1 KiB file-size limit"
    );
    assert_eq!(snapshot(&r.out), before, "the old tree changed");
    assert!(
        siblings(r.dir.path()).len() > clean.len(),
        "expected the killed render's temp dir beside the output"
    );

    // 3. The next render swaps the new tree in and removes the leftovers.
    render_ok(&r.manifest, &r.out);
    assert_eq!(siblings(r.dir.path()), clean);
    assert!(read(&r.out.join("prometheus/prometheus.yml")).contains("scrape_interval: \"30s\""));
}

#[test]
fn check_reports_changed_missing_and_extra_files() {
    let r = rendered_default();
    let (st, out, _) = render(&r.manifest, &r.out, &["--check"]);
    assert!(st.success());
    let up_to_date = format!("up to date ({} files)", RENDERED.len());
    assert!(out.contains(&up_to_date), "{out}");

    let prom = r.out.join("prometheus/prometheus.yml");
    let text = read(&prom);
    std::fs::write(
        &prom,
        text.replace("scrape_interval: \"15s\"", "scrape_interval: \"1m\""),
    )
    .unwrap();
    std::fs::remove_file(r.out.join("promtail/promtail.yml")).unwrap();
    std::fs::write(r.out.join("grafana/notes.txt"), "hand-made\n").unwrap();
    let before = snapshot(&r.out);
    let (st, _, err) = render(&r.manifest, &r.out, &["--check"]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("differs: prometheus/prometheus.yml"), "{err}");
    assert!(err.contains("-  scrape_interval: \"1m\""), "{err}");
    assert!(err.contains("+  scrape_interval: \"15s\""), "{err}");
    assert!(err.contains("missing: promtail/promtail.yml"), "{err}");
    assert!(err.contains("extra:   grafana/notes.txt"), "{err}");
    assert_eq!(snapshot(&r.out), before, "--check must not write");

    // The hand-made file is not render's to remove: refused, untouched.
    let (st, _, err) = render(&r.manifest, &r.out, &[]);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("grafana/notes.txt"), "{err}");
    assert_eq!(snapshot(&r.out), before, "a refused render must not write");
    std::fs::remove_file(r.out.join("grafana/notes.txt")).unwrap();
    render_ok(&r.manifest, &r.out);
    let (st, _, _) = render(&r.manifest, &r.out, &["--check"]);
    assert!(st.success());
}

/// Cross-references between the rendered files and the manifest.
#[test]
fn rendered_files_agree_with_each_other_and_the_manifest() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let o = &r.out;
    let stack = &m["stack"];
    let fields: Vec<&str> = m["logging"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let labels: Vec<&str> = m["logging"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let port = |c: &str| stack[c]["port"].as_i64().unwrap();

    // docker-compose.yml
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

    // prometheus.yml: the service job and the extra targets.
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

    // promtail.yml
    let promtail = yaml(&o.join("promtail/promtail.yml"));
    let push = format!("http://loki:{}/loki/api/v1/push", port("loki"));
    assert_eq!(promtail["clients"][0]["url"], push.as_str());
    let job = &promtail["scrape_configs"][0];
    let glob = format!(
        "/var/log/telltale/{}.*log",
        m["logging"]["file"].as_str().unwrap()
    );
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

    // config.alloy: the same pipeline.
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
fn render_dashboard_is_the_written_file() {
    let r = rendered_default();
    let model =
        telltale::internals::model::open(Some(&r.manifest), &telltale::KindRegistry::builtin())
            .unwrap();
    let text = telltale::internals::render::render_dashboard(&model).unwrap();
    assert_eq!(
        text,
        read(&r.out.join("grafana/dashboards/ecommerce-api.json"))
    );
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

/// Each kind of discovery, and remote write, renders a config promtool
/// accepts, with the instances where Prometheus will look for them.
#[test]
fn every_discovery_kind_and_remote_write_render_a_config_promtool_accepts() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let cases: Vec<(&str, serde_yaml::Value)> = vec![
        (
            "static",
            serde_yaml::from_str("{type: static, targets: ['10.0.0.1:8001', '10.0.0.2:8001']}")
                .unwrap(),
        ),
        (
            "file",
            serde_yaml::from_str(
                "{type: file, targets: ['a:8001', 'b:8001', 'c:8001'], refresh_interval: 10s}",
            )
            .unwrap(),
        ),
        (
            "srv",
            serde_yaml::from_str("{type: dns, names: [_http._tcp.api.internal]}").unwrap(),
        ),
        (
            "a",
            serde_yaml::from_str("{type: dns, names: [api.internal], record: A, port: 9000}")
                .unwrap(),
        ),
    ];
    for (name, discovery) in cases {
        let m = dir.path().join(format!("{name}.yaml"));
        edit_manifest(&base, &m, |v| {
            *at(v, &["stack", "discovery"]) = discovery;
            *at(v, &["stack", "remote_write"]) =
                serde_yaml::from_str("[{url: 'http://mimir:9009/api/v1/push', name: mimir}]")
                    .unwrap();
        });
        let out = dir.path().join(format!("out-{name}"));
        render_ok(&m, &out);
        let prom_dir = out.join("prometheus");
        let (ok, text) = promtool(&["check", "config", "prometheus.yml"], &prom_dir);
        assert!(ok, "{name}: {text}");
        let prom = yaml(&prom_dir.join("prometheus.yml"));
        assert_eq!(
            prom["remote_write"][0]["url"],
            "http://mimir:9009/api/v1/push"
        );
        let job = &prom["scrape_configs"][0];
        match name {
            "static" => assert_eq!(
                job["static_configs"][0]["targets"],
                serde_json::json!(["10.0.0.1:8001", "10.0.0.2:8001"])
            ),
            "file" => {
                assert_eq!(job["file_sd_configs"][0]["refresh_interval"], "10s");
                let groups = yaml(&prom_dir.join("targets/ecommerce-api/telltale.yml"));
                assert_eq!(
                    groups[0]["targets"],
                    serde_json::json!(["a:8001", "b:8001", "c:8001"])
                );
            }
            "srv" => {
                assert_eq!(job["dns_sd_configs"][0]["type"], "SRV");
                assert!(job["dns_sd_configs"][0].get("port").is_none());
            }
            _ => {
                assert_eq!(job["dns_sd_configs"][0]["type"], "A");
                assert_eq!(job["dns_sd_configs"][0]["port"], 9000);
            }
        }
        if name != "file" {
            assert!(
                !prom_dir.join("targets").exists(),
                "{name}: no file_sd file"
            );
        }
    }
}

/// A `$` in `logging.dir` reaches docker-compose.yml as `$$`: compose would
/// otherwise expand it as a variable (`logs$HOME` → `logs/root`).
#[test]
fn compose_escapes_dollar_signs_from_the_manifest() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let manifest = dir.path().join("dollar.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["logging", "dir"]) = "logs$HOME${X}".into();
    });
    let out = dir.path().join("out");
    render_ok(&manifest, &out);
    let compose = yaml(&out.join("docker-compose.yml"));
    let vols: Vec<&str> = compose["services"]["alloy"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let logs = vols
        .iter()
        .find(|v| v.ends_with(":/var/log/telltale:ro"))
        .unwrap_or_else(|| panic!("no log volume in {vols:?}"));
    assert!(
        logs.ends_with("logs$$HOME$${X}:/var/log/telltale:ro"),
        "compose would expand {logs:?}"
    );
    // What compose makes of it: the directory as written.
    assert!(logs
        .replace("$$", "$")
        .ends_with("logs$HOME${X}:/var/log/telltale:ro"));
}
