//! The rendered stack for traces (issue 25, item 4), Grafana: every
//! datasource uid a panel or a link names is provisioned, with the type the
//! link needs; the links reach Grafana as written (its `$` expansion); the
//! queries the links run parse.

mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;
use std::collections::BTreeMap;

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

/// The default stack rendered: the stack, the manifest, and the compose
/// provisioning file of Grafana's datasources.
fn rendered_with_datasources() -> (Rendered, Value, String) {
    let r = rendered_default();
    let m = yaml(&r.manifest);
    let text = read(
        &r.out
            .join("grafana/provisioning/datasources/datasources.yml"),
    );
    (r, m, text)
}

/// The provisioned datasource of type `t`.
fn datasource_of_type(text: &str, t: &str) -> Value {
    provisioned(text)["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == t)
        .unwrap()
        .clone()
}

/// The name of the manifest's metric fed by `source`.
fn metric_of_source(m: &Value, source: &str) -> String {
    m["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == source)
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn latency_panels_show_exemplars_and_signals_link_to_traces() {
    let (r, m, text) = rendered_with_datasources();
    let uid = m["dashboard"]["uid"].as_str().unwrap();
    let dash = json(&r.out.join(format!("grafana/dashboards/{uid}.json")));
    let hist = metric_of_source(&m, "http.duration");
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

    // Written with `$$`, so that Grafana keeps Grafana's own variables.
    for raw in ["$${__value.raw}", "$${__trace.traceId}", "$$__tags"] {
        assert!(text.contains(raw), "{raw} not in:\n{text}");
    }
    let tempo_uid = &m["stack"]["datasources"]["tempo"];
    // Exemplars: the label the server's exemplars carry.
    let p = datasource_of_type(&text, "prometheus");
    assert_eq!(
        p["jsonData"]["exemplarTraceIdDestinations"],
        serde_json::json!([{ "name": "trace_id", "datasourceUid": tempo_uid }])
    );
}

#[test]
fn logs_link_to_traces_by_the_trace_id_label_both_shippers_set() {
    let (r, m, text) = rendered_with_datasources();
    let tempo_uid = &m["stack"]["datasources"]["tempo"];
    // Logs: trace_id is structured metadata, so matched as a label, and
    // shipped as such by both shippers.
    let l = datasource_of_type(&text, "loki");
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
}

#[test]
fn traces_link_to_logs_and_metrics_with_queries_that_parse() {
    let (r, m, text) = rendered_with_datasources();
    let hist = metric_of_source(&m, "http.duration");
    let alloy = read(&r.out.join("alloy/config.alloy"));
    // Traces → logs: LogQL over labels the shipper sets, filtering on the
    // trace's id. Traces → metrics: PromQL over the manifest's metrics.
    let t = datasource_of_type(&text, "tempo");
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
    let matchers = telltale::model::logql::stream_matchers(
        &q.replace("${__trace.traceId}", "4bf92f3577b34da6a3ce929d0e0e4736"),
    )
    .unwrap();
    assert_eq!(matchers.len(), 1, "{matchers:?}");
    assert!(alloy.contains("\"service_name\" = \"service\""));
    let to_metrics = &t["jsonData"]["tracesToMetrics"];
    let queries = to_metrics["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2, "{queries:?}");
    let counter = metric_of_source(&m, "http.requests");
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
