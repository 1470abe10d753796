//! The rendered stack for traces (issue 25, item 4), where spans go: the
//! Alloy configs use only Alloy's documented blocks and wire their
//! components together; the Deployment tells the pods where their spans go.

mod alloy_syntax;
mod common;
mod render_support;
use render_support::*;

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
