//! The shop as its own process: the OpenAPI document, and validation of
//! its manifest.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The venv's bin directory (made by scripts/install-test-deps).
fn venv_bin(tool: &str) -> PathBuf {
    let root = shop_dir().join("../..");
    let p = root.join(".venv/bin").join(tool);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps",
        p.display()
    );
    p
}

#[tokio::test]
async fn the_openapi_document_lists_the_order_types_and_passes_a_validator() {
    let dir = tempdir();
    let shop = Shop::start(&shop_dir().join("manifest.yaml"), dir.path());
    let doc: Value = client()
        .get(shop.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    shop.stop();
    let schemas = &doc["components"]["schemas"];
    for name in ["NewOrder", "Order", "Error"] {
        assert!(schemas[name].is_object(), "{name} missing: {schemas}");
    }
    let new_order = &schemas["NewOrder"];
    let mut required: Vec<&str> = new_order["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(required, ["payment", "product_id", "quantity"]);
    assert_eq!(new_order["properties"]["quantity"]["minimum"], 1.0);
    let post = &doc["paths"]["/orders"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewOrder"
    );
    for status in ["201", "404", "400", "422"] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    let params = doc["paths"]["/orders/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0]["name"], "id");
    assert_eq!(params[0]["in"], "path");
    assert_eq!(params[0]["required"], true);
    assert_eq!(params[0]["schema"]["type"], "integer");

    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = Command::new(venv_bin("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_reports_every_mistake_about_handlers_and_app_metrics_at_once() {
    let dir = tempdir();
    let m = manifest_in(dir.path(), |v| {
        let eps = v["endpoints"].as_sequence_mut().unwrap();
        eps[0]["options"]["colour"] = "red".into(); // unknown option key
        eps[1]["handler"] = "orders.fetch".into(); // unknown kind
        let metrics = v["metrics"].as_sequence_mut().unwrap();
        metrics.retain(|x| x["name"] != "orders_placed_total"); // undeclared
        let value = metrics
            .iter_mut()
            .find(|x| x["name"] == "order_value_euros")
            .unwrap();
        value["type"] = "gauge".into(); // wrong type
        value.as_mapping_mut().unwrap().remove("buckets");
        v["dashboard"]["panels"] = serde_yaml::Value::Sequence(vec![]);
        v["alerts"] = serde_yaml::Value::Sequence(vec![]);
    });
    let (code, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{err}");
    let shown = m.display().to_string();
    for want in [
        "endpoints[0].options.colour: unknown field `colour`",
        "endpoints[1].handler: unknown handler kind \"orders.fetch\": did you mean \"orders.get\"? (registered: collection, info, probe, fault, prometheus, grafana_json, orders.create, orders.get)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Each line starts with file:line:column.
    assert!(
        err.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.starts_with(&shown) || l.starts_with(' ') || l.contains("error")),
        "{err}"
    );

    // Setup's errors, once the options are right: undeclared and mistyped metrics.
    let m = manifest_in(dir.path(), |v| {
        let metrics = v["metrics"].as_sequence_mut().unwrap();
        metrics.retain(|x| x["name"] != "orders_placed_total");
        v["dashboard"]["panels"] = serde_yaml::Value::Sequence(vec![]);
        v["alerts"] = serde_yaml::Value::Sequence(vec![]);
    });
    let (code, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{err}");
    // Located at the endpoint's `handler:` value.
    let text = std::fs::read_to_string(&m).unwrap();
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("orders.create").map(|c| (i + 1, c + 1)))
        .unwrap();
    let want = format!(
        "{shown}:{line}:{col}: endpoints[0].handler: handler kind \"orders.create\": \
         metric \"orders_placed_total\" is not declared with source: app"
    );
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    let m = manifest_in(dir.path(), |v| {
        let metrics = v["metrics"].as_sequence_mut().unwrap();
        let placed = metrics
            .iter_mut()
            .find(|x| x["name"] == "orders_placed_total")
            .unwrap();
        placed["type"] = "gauge".into();
        v["dashboard"]["panels"] = serde_yaml::Value::Sequence(vec![]);
        v["alerts"] = serde_yaml::Value::Sequence(vec![]);
    });
    let (code, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("metric \"orders_placed_total\" is a gauge, not a counter"),
        "{err}"
    );
    let m = manifest_in(dir.path(), |v| {
        let metrics = v["metrics"].as_sequence_mut().unwrap();
        let placed = metrics
            .iter_mut()
            .find(|x| x["name"] == "orders_placed_total")
            .unwrap();
        placed["labels"] = serde_yaml::from_str("[{name: method, values: [a, b]}]").unwrap();
        v["dashboard"]["panels"] = serde_yaml::Value::Sequence(vec![]);
        v["alerts"] = serde_yaml::Value::Sequence(vec![]);
    });
    let (code, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has labels [method], not [payment]"), "{err}");
    // A label of an app metric without its values.
    let m = manifest_in(dir.path(), |v| {
        let metrics = v["metrics"].as_sequence_mut().unwrap();
        let placed = metrics
            .iter_mut()
            .find(|x| x["name"] == "orders_placed_total")
            .unwrap();
        placed["labels"] = serde_yaml::from_str("[payment]").unwrap();
    });
    let (code, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("metrics[2].labels[0]: label \"payment\" of an app metric needs its closed set of values"), "{err}");
}
