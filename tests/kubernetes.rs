//! The Kubernetes render target: every core object passes Kubernetes'
//! OpenAPI schemas (`kubernetes-validate --strict`), the ServiceMonitor and
//! PrometheusRule pass the Prometheus Operator's CRD schemas
//! (`check-jsonschema`, unknown fields refused), the PrometheusRule holds
//! exactly the groups promtool checks, the ConfigMaps carry the files
//! byte for byte, and the server runs as the Deployment runs it.

mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const CORE: &[&str] = &[
    "deployment.yaml",
    "service.yaml",
    "manifest-configmap.yaml",
    "grafana-dashboard.yaml",
    "grafana-datasources.yaml",
    "alloy.yaml",
];
const OPERATOR: &[(&str, &str)] = &[
    (
        "servicemonitor.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
    ),
    (
        "prometheusrule.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
    ),
];

fn k8s(r: &Rendered, file: &str) -> Value {
    yaml(&r.out.join("kubernetes").join(file))
}

#[test]
fn core_objects_pass_kubernetes_openapi_schemas_strictly() {
    let r = rendered_default();
    let files: Vec<PathBuf> = CORE
        .iter()
        .map(|f| r.out.join("kubernetes").join(f))
        .collect();
    let (ok, out) = kubernetes_validate(&files);
    assert!(ok, "{out}");
    for f in CORE {
        assert!(
            out.lines().any(|l| l.contains(f) && l.contains("passed")),
            "{f} not validated:\n{out}"
        );
    }
    // Every rendered file is either validated here or against the CRDs.
    let mut all: Vec<String> = std::fs::read_dir(r.out.join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    all.sort();
    let mut covered: Vec<String> = CORE
        .iter()
        .chain(OPERATOR.iter().map(|(f, _)| f))
        .map(|s| s.to_string())
        .collect();
    covered.sort();
    assert_eq!(all, covered);

    // The validator is strict: an unknown field and a wrong type fail.
    for (name, from, to) in [
        ("typo", "  replicas: ", "  replicass: "),
        ("type", "containerPort: 8001", "containerPort: \"eighty\""),
    ] {
        let text = read(&files[0]).replacen(from, to, 1);
        assert_ne!(text, read(&files[0]), "{name}: nothing replaced");
        let bad = r.dir.path().join(format!("bad-{name}.yaml"));
        std::fs::write(&bad, text).unwrap();
        let (ok, out) = kubernetes_validate(&[bad]);
        assert!(!ok, "{name}: the broken Deployment passed:\n{out}");
    }
}

#[test]
fn the_vendored_crds_are_the_shared_ones_where_those_exist() {
    let shared = repo().join("../shared/schemas/prometheus-operator");
    for (_, crd) in OPERATOR {
        let ours = read(&crd_dir().join(crd));
        assert!(ours.contains("operator.prometheus.io/version"), "{crd}");
        // A clean clone has no ../shared: the vendored copy is the schema then.
        if let Ok(theirs) = std::fs::read_to_string(shared.join(crd)) {
            assert_eq!(ours, theirs, "{crd} differs from ../shared: copy it again");
        }
    }
}

#[test]
fn operator_objects_pass_the_prometheus_operator_crd_schemas() {
    let r = rendered_default();
    for (file, crd) in OPERATOR {
        let doc = k8s(&r, file);
        let schema = crd_schema(&crd_dir().join(crd));
        let (ok, out) = check_jsonschema(r.dir.path(), &schema, &doc, file);
        assert!(ok, "{file}: {out}");
        // The kind and group are the CRD's.
        let crd = yaml(&crd_dir().join(crd));
        assert_eq!(doc["kind"], crd["spec"]["names"]["kind"]);
        assert_eq!(
            doc["apiVersion"],
            format!("{}/v1", crd["spec"]["group"].as_str().unwrap())
        );
        // Unknown fields fail, as they would be dropped in a cluster.
        let mut bad = doc.clone();
        bad["spec"]["intervall"] = Value::from("15s");
        let (ok, out) = check_jsonschema(r.dir.path(), &schema, &bad, &format!("bad-{file}"));
        assert!(!ok, "{file}: an unknown field passed:\n{out}");
    }
    // A wrong type deep inside fails too.
    let mut bad = k8s(&r, "servicemonitor.yaml");
    bad["spec"]["endpoints"][0]["relabelings"][0]["action"] = Value::from("rewrite");
    let schema = crd_schema(&crd_dir().join(OPERATOR[0].1));
    let (ok, _) = check_jsonschema(r.dir.path(), &schema, &bad, "bad-action");
    assert!(!ok, "an unknown relabel action passed");
}

#[test]
fn the_prometheus_rule_holds_the_groups_promtool_checks_and_tests() {
    let r = rendered_default();
    let rule = k8s(&r, "prometheusrule.yaml");
    let alerts = yaml(&r.out.join("prometheus/alerts.yml"));
    assert_eq!(rule["spec"]["groups"], alerts["groups"]);
    assert!(!alerts["groups"].as_array().unwrap().is_empty());
    // promtool checks the groups as the PrometheusRule carries them, and the
    // rendered unit tests pass against them.
    let dir = r.out.join("prometheus");
    let groups = serde_json::json!({ "groups": rule["spec"]["groups"] });
    std::fs::write(
        dir.join("from-rule.yml"),
        serde_yaml::to_string(&groups).unwrap(),
    )
    .unwrap();
    let (ok, out) = promtool(&["check", "rules", "from-rule.yml"], &dir);
    assert!(ok, "{out}");
    let tests = read(&dir.join("alerts.test.yml")).replace("alerts.yml", "from-rule.yml");
    std::fs::write(dir.join("from-rule.test.yml"), tests).unwrap();
    let (ok, out) = promtool(&["test", "rules", "from-rule.test.yml"], &dir);
    assert!(ok, "{out}");
    // The operator's Prometheus selects it (and the ServiceMonitor) by the
    // manifest's selector labels.
    let m = yaml(&r.manifest);
    let want = m["kubernetes"]["selector_labels"].as_object().unwrap();
    assert!(!want.is_empty());
    for file in ["prometheusrule.yaml", "servicemonitor.yaml"] {
        let labels = &k8s(&r, file)["metadata"]["labels"];
        for (k, v) in want {
            assert_eq!(&labels[k], v, "{file}: label {k}");
        }
    }
}

#[test]
fn objects_follow_the_manifest() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let ns = &m["kubernetes"]["namespace"];
    let mon_ns = &m["kubernetes"]["monitoring_namespace"];
    let dep = k8s(&r, "deployment.yaml");
    assert_eq!(dep["spec"]["replicas"], m["kubernetes"]["replicas"]);
    for (file, want) in [
        ("deployment.yaml", ns),
        ("service.yaml", ns),
        ("manifest-configmap.yaml", ns),
        ("servicemonitor.yaml", ns),
        ("prometheusrule.yaml", ns),
        ("grafana-dashboard.yaml", mon_ns),
        ("grafana-datasources.yaml", mon_ns),
        ("alloy.yaml", mon_ns),
    ] {
        assert_eq!(&k8s(&r, file)["metadata"]["namespace"], want, "{file}");
    }
    // Probes: the manifest's probe endpoints, each for its role.
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let probe_path = |probe: &str| {
        m["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["handler"] == "probe" && e["options"]["probe"] == probe)
            .map(|e| e["path"].clone())
            .unwrap()
    };
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], probe_path("health"));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], probe_path("ready"));
    assert_eq!(c["startupProbe"]["httpGet"]["path"], probe_path("startup"));
    assert_eq!(
        c["resources"]["requests"],
        m["kubernetes"]["resources"]["requests"]
    );
    assert_eq!(
        c["resources"]["limits"],
        m["kubernetes"]["resources"]["limits"]
    );
    assert_eq!(c["image"], m["kubernetes"]["image"]);
    assert_eq!(c["ports"][0]["containerPort"], m["service"]["port"]);
    let env = &c["env"][0];
    assert_eq!(env["name"], "POD_NAME");
    assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
}

#[test]
fn the_service_selects_the_pods_and_the_monitor_scrapes_the_service() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let name = m["service"]["name"].as_str().unwrap();
    let dep = k8s(&r, "deployment.yaml");
    let svc = k8s(&r, "service.yaml");
    let sm = k8s(&r, "servicemonitor.yaml");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    // The Service selects the Deployment's pods; the ServiceMonitor selects
    // the Service and scrapes its named port.
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v);
    }
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"],
        svc["spec"]["selector"]
    );
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v);
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], c["ports"][0]["name"]);
    assert_eq!(
        sm["spec"]["endpoints"][0]["interval"],
        m["stack"]["scrape_interval"]
    );
    let relabel = sm["spec"]["endpoints"][0]["relabelings"]
        .as_array()
        .unwrap();
    assert!(relabel
        .iter()
        .any(|r| r["targetLabel"] == "job" && r["replacement"] == name));
    assert!(relabel
        .iter()
        .any(|r| r["targetLabel"] == "instance"
            && r["sourceLabels"][0] == "__meta_kubernetes_pod_name"));
}

#[test]
fn the_config_maps_carry_the_files_byte_for_byte() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let dep = k8s(&r, "deployment.yaml");
    let cm = k8s(&r, "manifest-configmap.yaml");
    assert_eq!(cm["data"]["manifest.yaml"], Value::from(read(&r.manifest)));
    let items = dep["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]
        .as_array()
        .unwrap();
    assert_eq!(items.len(), cm["data"].as_object().unwrap().len());
    for item in items {
        let path = item["path"].as_str().unwrap();
        let text = read(&r.manifest.parent().unwrap().join(path));
        assert_eq!(
            cm["data"][item["key"].as_str().unwrap()],
            Value::from(text),
            "{path}"
        );
    }
    let uid = m["dashboard"]["uid"].as_str().unwrap();
    let dash_cm = k8s(&r, "grafana-dashboard.yaml");
    assert_eq!(dash_cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let key = format!("{uid}.json");
    assert_eq!(
        dash_cm["data"][&key],
        Value::from(read(&r.out.join(format!("grafana/dashboards/{key}"))))
    );
}

#[test]
fn the_datasources_have_the_dashboards_uids_and_the_clusters_urls() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let name = m["service"]["name"].as_str().unwrap();
    let ns = &m["kubernetes"]["namespace"];
    let key = format!("{}.json", m["dashboard"]["uid"].as_str().unwrap());
    // The datasources have the uids the dashboard points at, and the cluster's URLs.
    let ds_cm = k8s(&r, "grafana-datasources.yaml");
    assert_eq!(ds_cm["metadata"]["labels"]["grafana_datasource"], "1");
    let (_, ds_text) = ds_cm["data"].as_object().unwrap().iter().next().unwrap();
    let ds: Value = serde_yaml::from_str(ds_text.as_str().unwrap()).unwrap();
    let ds = ds["datasources"].as_array().unwrap();
    let url = |kind: &str| ds.iter().find(|d| d["type"] == kind).unwrap()["url"].clone();
    assert_eq!(url("prometheus"), m["kubernetes"]["prometheus_url"]);
    assert_eq!(url("loki"), m["kubernetes"]["loki_url"]);
    assert_eq!(
        url("simpod-json-datasource"),
        Value::from(format!(
            "http://{name}.{}.svc:{}/grafana",
            ns.as_str().unwrap(),
            m["service"]["port"]
        ))
    );
    let dash = json(&r.out.join(format!("grafana/dashboards/{key}")));
    let uids: std::collections::BTreeSet<String> = ds
        .iter()
        .map(|d| d["uid"].as_str().unwrap().to_string())
        .collect();
    // A panel names a datasource uid, or the `datasource` variable, whose
    // default is one too.
    let vars = dash["templating"]["list"].as_array().unwrap();
    let resolve = |u: &str| match u.strip_prefix("${").and_then(|u| u.strip_suffix('}')) {
        Some(var) => vars.iter().find(|v| v["name"] == var).unwrap()["current"]["value"]
            .as_str()
            .unwrap()
            .to_string(),
        None => u.to_string(),
    };
    for p in dash["panels"].as_array().unwrap() {
        let u = resolve(p["datasource"]["uid"].as_str().unwrap());
        assert!(uids.contains(&u), "panel {}: datasource {u}", p["title"]);
    }
}

/// The text from `loki.process` on: the stages, labels and push.
fn process_part(config: &str) -> &str {
    &config[config.find("loki.process").expect("a loki.process block")..]
}

#[test]
fn the_alloy_pod_pipeline_has_the_same_stages_and_labels() {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let cm = k8s(&r, "alloy.yaml");
    let pods = cm["data"]["config.alloy"].as_str().unwrap();
    let host = read(&r.out.join("alloy/config.alloy"));
    // Pod discovery in the service's namespace, by its pod label and container.
    assert!(pods.contains("discovery.kubernetes \"telltale\""), "{pods}");
    assert!(pods.contains("role = \"pod\""));
    let ns = m["kubernetes"]["namespace"].as_str().unwrap();
    assert!(pods.contains(&format!("names = [\"{ns}\"]")), "{pods}");
    let name = m["service"]["name"].as_str().unwrap();
    assert!(pods.contains(&format!("label = \"app.kubernetes.io/name={name}\"")));
    assert!(pods.contains("/var/log/pods/*$1/*.log"));
    // The same stages as on a host: only the CRI unwrapping and Loki's
    // address differ.
    let push = format!(
        "{}/loki/api/v1/push",
        m["kubernetes"]["loki_url"].as_str().unwrap()
    );
    let pods_process = process_part(pods);
    let cri = pods_process.find("\n  // The container runtime").unwrap();
    let cri_end = pods_process.find("stage.cri {}\n").unwrap() + "stage.cri {}\n".len();
    let without_cri = format!("{}{}", &pods_process[..cri], &pods_process[cri_end..]);
    let host_push = host
        .lines()
        .find_map(|l| l.trim().strip_prefix("url = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(without_cri.replace(&push, &host_push), process_part(&host));
    assert_eq!(pods.matches('{').count(), pods.matches('}').count());
}

#[test]
fn the_server_runs_as_the_deployment_runs_it() {
    let r = rendered_default();
    let dep = k8s(&r, "deployment.yaml");
    let cm = k8s(&r, "manifest-configmap.yaml");
    let spec = &dep["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    // The ConfigMap's items as the kubelet mounts them.
    let mount = r.dir.path().join("etc-telltale");
    for item in spec["volumes"][0]["configMap"]["items"].as_array().unwrap() {
        let p = mount.join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            cm["data"][item["key"].as_str().unwrap()].as_str().unwrap(),
        )
        .unwrap();
    }
    let config_dir = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            match a.strip_prefix(config_dir) {
                Some(rest) => format!("{}{rest}", mount.display()),
                None => a.to_string(),
            }
        })
        .collect();
    let port = common::prom::free_port();
    let mut cmd = Command::new(bin());
    cmd.args(&args)
        .args(["--port", &port.to_string()])
        .env_remove("TELLTALE_INSTANCE")
        .env("POD_NAME", "ecommerce-api-7d9f-abcde");
    let work = r.dir.path().join("work");
    let stderr = std::fs::File::create(r.dir.path().join("pod.stderr")).unwrap();
    let (srv, _) = Server::spawn(cmd, &work, stderr.into());
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
        let url = format!("{base}{path}");
        let st = rt.block_on(async { reqwest::get(&url).await.unwrap().status() });
        assert_eq!(st, 200, "{probe} {path}");
    }
    let products = http_get(&format!("{base}/products"));
    assert!(products.contains("\"items\""), "{products}");
    assert!(srv.stop().success());
    // No log file: the console is the pod's only log.
    assert!(!work.join("logs").exists(), "a log directory was made");
    // The console carries the JSON lines a log collector reads, each with
    // the pod's name as its instance.
    let console = std::fs::read_to_string(r.dir.path().join("pod.stderr")).unwrap();
    let lines: Vec<Value> = console
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["path"] == "/products"),
        "no request line on the console:\n{console}"
    );
    for l in &lines {
        assert_eq!(l["instance"], "ecommerce-api-7d9f-abcde", "{l}");
        assert_eq!(l["service"], "ecommerce-api", "{l}");
    }
    // Nothing else but the start-up notes before the logger exists.
    for l in console.lines().filter(|l| !l.starts_with('{')) {
        assert!(l.starts_with("telltale: "), "not JSON: {l}");
    }
}

#[test]
fn data_files_that_a_config_map_cannot_carry_are_render_errors() {
    let dir = tempdir();
    let svc = dir.path().join("svc");
    let base = copy_default_manifest(&svc);
    for (rel, want) in [
        ("../outside.yaml", "without `.` or `..`"),
        ("data.products.yaml", "share the ConfigMap key"),
    ] {
        let src = svc.join(rel);
        if !src.exists() {
            std::fs::copy(svc.join("data/products.yaml"), &src).unwrap();
        }
        let manifest = svc.join("k8s.yaml");
        edit_manifest(&base, &manifest, |v| {
            let eps = at(v, &["endpoints"]).as_sequence_mut().unwrap();
            let mut e = eps
                .iter()
                .find(|e| e["path"] == "/products")
                .unwrap()
                .clone();
            e["path"] = "/more".into();
            e["data"] = rel.into();
            eps.push(e);
        });
        let out = dir.path().join("out");
        let (st, stdout, stderr) = render(&manifest, &out, &[]);
        assert!(!st.success(), "{rel}: {stdout}{stderr}");
        assert!(
            stderr.contains("endpoints[") && stderr.contains(want),
            "{rel}: {stderr}"
        );
        assert!(!out.exists(), "{rel}: a failed render wrote files");
    }
}

#[test]
fn an_absolute_log_dir_gets_a_writable_volume_of_its_own() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let manifest = dir.path().join("abs.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["logging", "dir"]) = "/var/log/shop".into();
    });
    let out = dir.path().join("out");
    render_ok(&manifest, &out);
    let file = out.join("kubernetes/deployment.yaml");
    let dep = yaml(&file);
    let spec = &dep["spec"]["template"]["spec"];
    let mount = spec["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/var/log/shop")
        .expect("a mount at logging.dir")
        .clone();
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("its volume")
        .clone();
    assert!(volume["emptyDir"].is_object(), "{volume}");
    assert_ne!(mount["readOnly"], true);
    let (ok, out) = kubernetes_validate(&[file]);
    assert!(ok, "{out}");
}

/// A `logging.dir` that is the working directory (or under it) is already
/// writable there: it gets no second mount at the same path.
#[test]
fn a_log_dir_at_the_working_directory_is_not_mounted_twice() {
    for log_dir in [
        "/var/lib/telltale",
        "/var/lib/telltale/",
        "/var/lib/telltale/logs",
    ] {
        let dir = tempdir();
        let base = copy_default_manifest(dir.path());
        let manifest = dir.path().join("work.yaml");
        edit_manifest(&base, &manifest, |v| {
            *at(v, &["logging", "dir"]) = log_dir.into();
        });
        let out = dir.path().join("out");
        render_ok(&manifest, &out);
        let dep = yaml(&out.join("kubernetes/deployment.yaml"));
        let spec = &dep["spec"]["template"]["spec"];
        let paths: Vec<&str> = spec["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap().trim_end_matches('/'))
            .collect();
        let unique: BTreeSet<&str> = paths.iter().copied().collect();
        assert_eq!(unique.len(), paths.len(), "{log_dir}: {paths:?}");
        assert!(paths.contains(&"/var/lib/telltale"), "{paths:?}");
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), paths.len(), "{log_dir}: {volumes:?}");
    }
}

/// A `logging.dir` under the read-only manifest mount could never be
/// written in the pod: `render` says so instead of writing a Deployment
/// whose pod fails.
#[test]
fn a_log_dir_under_the_config_mount_is_a_render_error() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let manifest = dir.path().join("conf.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["logging", "dir"]) = "/etc/telltale/logs".into();
    });
    let (status, _, err) = render(&manifest, &dir.path().join("out"), &[]);
    assert!(!status.success());
    assert!(err.contains("is under /etc/telltale"), "{err}");
}
