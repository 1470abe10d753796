//! The shop as its own process: typed handlers, business metrics, the
//! OpenAPI document, validation of its manifest, and its dashboard and
//! alert proven against a real Prometheus.

mod common;
#[path = "../../../tests/common/otlp.rs"]
#[allow(dead_code)]
mod otlp;

use common::prom::*;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `orders_placed_total` series of a `/metrics` text: (payment, value).
fn placed(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("orders_placed_total{payment=\""))
        .map(|rest| {
            let (payment, value) = rest.split_once("\"} ").unwrap();
            (payment.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn good_orders_count_and_bad_ones_are_refused_naming_the_field() {
    let dir = tempdir();
    let shop = Shop::start(&shop_dir().join("manifest.yaml"), dir.path());
    let c = client();
    let metrics = || async {
        c.get(shop.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = placed(&metrics().await);
    let names = |v: &[(String, f64)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&before),
        ["card", "cash", "other", "voucher"],
        "every series at zero from the start"
    );
    assert!(before.iter().all(|(_, v)| *v == 0.0));

    let mut accepted = 0;
    for (i, payment) in ["card", "cash", "voucher", "card", "bitcoin", "card"]
        .iter()
        .enumerate()
    {
        let body = json!({"product_id": 1 + i % 3, "quantity": 2, "payment": payment}).to_string();
        let (status, order) = post(&c, &shop, &body).await;
        assert_eq!(status, 201, "{order}");
        assert_eq!(order["payment"], *payment);
        accepted += 1;
    }
    // Each bad order: (body, status, field named).
    for (body, status, field) in [
        (r#"{"product_id": 1, "quantity": 2, "#, 400, "body"),
        (r#"{"product_id": 1, "payment": "card"}"#, 422, "quantity"),
        (
            r#"{"product_id": 1, "quantity": "two", "payment": "card"}"#,
            422,
            "quantity",
        ),
        (
            r#"{"product_id": 1, "quantity": 0, "payment": "card"}"#,
            422,
            "quantity",
        ),
        (
            r#"{"product_id": "x", "quantity": 1, "payment": "card"}"#,
            422,
            "product_id",
        ),
        (r#"[]"#, 422, "body"),
    ] {
        let (got, err) = post(&c, &shop, body).await;
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
        assert_eq!(err["status"], status);
        assert!(err["message"].as_str().unwrap().contains(field), "{err}");
    }
    let (got, err) = post(&c, &shop, "").await;
    assert_eq!(got, 400, "{err}");
    let (got, err) = post(
        &c,
        &shop,
        r#"{"product_id": 99, "quantity": 1, "payment": "card"}"#,
    )
    .await;
    assert_eq!(got, 404, "{err}");

    let after = placed(&metrics().await);
    assert_eq!(
        names(&after),
        names(&before),
        "no series outside the declared set"
    );
    let total: f64 = after.iter().map(|(_, v)| v).sum();
    assert_eq!(total, accepted as f64, "one count per accepted order");
    let get = |p: &str| after.iter().find(|(x, _)| x == p).unwrap().1;
    assert_eq!(
        (get("card"), get("cash"), get("voucher"), get("other")),
        (3.0, 1.0, 1.0, 1.0)
    );
    let m = metrics().await;
    assert!(
        m.contains(&format!("order_value_euros_count {accepted}")),
        "{m}"
    );
    shop.stop();

    // The value outside the set was reported once, at warn level.
    let logs = std::fs::read_dir(dir.path().join("logs")).unwrap();
    let text: String = logs
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("outside the declared set"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains(r#""level":"warning""#) && warned[0].contains("bitcoin"));
}

#[tokio::test]
async fn orders_by_id_with_a_typed_path_parameter() {
    let dir = tempdir();
    let shop = Shop::start(&shop_dir().join("manifest.yaml"), dir.path());
    let c = client();
    let (_, order) = post(
        &c,
        &shop,
        r#"{"product_id": 2, "quantity": 3, "payment": "cash"}"#,
    )
    .await;
    let id = order["id"].as_u64().unwrap();
    let r = c
        .get(shop.url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["total_euros"], 120.0);
    let r = c.get(shop.url("/orders/12345")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["status"], 404);
    let r = c.get(shop.url("/orders/abc")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["parameter"], "id", "{err}");
    // Both routes are counted under their templates, never the raw URL.
    let m = c
        .get(shop.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains(r#"path="/orders/{id}",status="404""#), "{m}");
    assert!(!m.contains("/orders/12345"));
    shop.stop();
    // The handler's own log lines carry request_id and route.
    let text: String = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let placed: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["message"] == "order placed")
        .expect("the handler's line");
    assert_eq!(placed["route"], "/orders");
    assert_eq!(placed["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(placed["logger"], "shop::orders");
    assert_eq!(placed["caller"], "alice", "{placed}");
}

/// Orders need a key from SHOP_API_KEYS; each records who placed it, and
/// only they can read it back (anyone else gets the same 404 as for an id
/// that does not exist). `/metrics` needs the scrape token.
#[tokio::test]
async fn orders_belong_to_the_principal_whose_key_placed_them() {
    let dir = tempdir();
    let shop = Shop::start(&shop_dir().join("manifest.yaml"), dir.path());
    let (alice, bob) = (client(), client_as(BOB_KEY));
    let (status, order) = post(
        &alice,
        &shop,
        r#"{"product_id": 1, "quantity": 1, "payment": "card"}"#,
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["placed_by"], "alice");
    let url = shop.url(&format!("/orders/{}", order["id"]));
    let r = alice.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = bob.get(&url).send().await.unwrap();
    assert_eq!(
        r.status(),
        404,
        "another principal's order is not theirs to see"
    );
    let anonymous = reqwest::Client::new();
    for (method, path) in [("GET", url.clone()), ("POST", shop.url("/orders"))] {
        let r = anonymous
            .request(method.parse().unwrap(), &path)
            .header("content-type", "application/json")
            .body(r#"{"product_id": 1, "quantity": 1, "payment": "card"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "ApiKey realm=\"shop\", header=\"X-API-Key\""
        );
    }
    let r = anonymous.get(shop.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // The scrape token is not an order key, nor a key a scrape token.
    let r = client_as(SCRAPE_TOKEN)
        .get(shop.url("/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let m = alice.get(shop.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 200);
    let m = m.text().await.unwrap();
    assert!(m.contains(r#"path="/orders/{id}",status="401""#), "{m}");
    assert!(m.contains(r#"build_info{"#), "{m}");
    assert!(
        m.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "the shop's own version: {m}"
    );
    shop.stop();
    let logs: String = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for secret in [ALICE_KEY, BOB_KEY, SCRAPE_TOKEN] {
        assert!(!logs.contains(secret), "a key in the logs");
        assert!(!m.contains(secret), "a key in /metrics");
    }
    assert!(logs.contains(r#""reason":"missing""#), "{logs}");
    // The start-up line names the shop, not telltale.
    let started = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["logger"] == "telltale::internals::server" && l["address"].is_string())
        .expect("the start-up line");
    let message = format!("shop {} listening on", env!("CARGO_PKG_VERSION"));
    assert!(
        started["message"].as_str().unwrap().starts_with(&message),
        "{started}"
    );
    assert_eq!(started["version"], env!("CARGO_PKG_VERSION"));
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_business_panel_has_data_and_the_alert_evaluates_in_a_real_prometheus() {
    let dir = tempdir();
    let shop = Shop::start(&shop_dir().join("manifest.yaml"), dir.path());
    let (out, prom) = stack_for(&shop, dir.path()).await;
    let tests = std::fs::read_to_string(out.join("prometheus/alerts.test.yml")).unwrap();
    assert!(tests.contains("UnknownPaymentMethods"), "{tests}");
    let up = prom.query(r#"up{job="shop"}"#).await.unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut i = 0;
    while Instant::now() < deadline {
        let payment = ["card", "cash", "voucher", "iou"][i % 4];
        let body =
            json!({"product_id": 1 + i % 3, "quantity": 1 + i % 5, "payment": payment}).to_string();
        let (status, _) = post(&c, &shop, &body).await;
        assert_eq!(status, 201);
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = panels_have_data_and_rules_evaluate(
        &prom,
        &out.join("grafana/dashboards/shop.json"),
        &out.join("prometheus/alerts.yml"),
    )
    .await;
    assert!(n >= 4, "{n} panel queries");
    // The business panel's series are the declared payment values.
    let by_payment = prom
        .query(r#"sum by (payment) (orders_placed_total{job="shop"})"#)
        .await
        .unwrap();
    let mut seen: Vec<&str> = by_payment
        .iter()
        .map(|s| s["metric"]["payment"].as_str().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, ["card", "cash", "other", "voucher"]);
    drop(prom);
    shop.stop();
}

/// `chaos` against the real shop: its good requests carry the key and the
/// scrape token (read from the environment, never printed), each protected
/// endpoint also gets a request without them, which must be a 401; all pass.
#[tokio::test]
async fn chaos_authenticates_with_headers_from_the_environment() {
    let dir = tempdir();
    let shop = Shop::start(&shop_dir().join("manifest.yaml"), dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["chaos", "--manifest"])
        .arg(shop_dir().join("manifest.yaml"))
        .args(["--target", &shop.base, "--requests", "60", "--seed", "7"])
        .args(["--header", "X-API-Key: ${env:CHAOS_KEY}"])
        .args(["--header", "Authorization: Bearer ${env:CHAOS_SCRAPE}"])
        .env("CHAOS_KEY", ALICE_KEY)
        .env("CHAOS_SCRAPE", SCRAPE_TOKEN)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("no_credential") || stdout.contains("401"),
        "{stdout}"
    );
    for secret in [ALICE_KEY, SCRAPE_TOKEN] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    // With a wrong token the same run fails: /metrics's good requests get 401s.
    let out = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["chaos", "--manifest"])
        .arg(shop_dir().join("manifest.yaml"))
        .args(["--target", &shop.base, "--requests", "20", "--seed", "7"])
        .args(["--header", "Authorization: Bearer wrong-token-000000000"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong token must fail chaos");
    shop.stop();
}

/// A handler's own `tracing` span is a child span of the request's server
/// span, with its fields as attributes; what the handler logs outside it is
/// an event of the server span, and that log line carries the server span's
/// ids. Received by an OTLP receiver that decodes with the OpenTelemetry
/// protobuf definitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_own_span_is_a_child_of_the_request_span() {
    let receiver = otlp::Otlp::start().await;
    let dir = tempdir();
    let manifest = manifest_in(dir.path(), |_| {});
    let shop = Shop::start_with(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = client()
        .post(shop.url("/orders"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .header("content-type", "application/json")
        .body(r#"{"product_id": 1, "quantity": 2, "payment": "card"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let wait = Duration::from_secs(15);
    let server = receiver
        .wait_for(wait, |s| {
            s.trace_id() == trace && s.span.name == "POST /orders"
        })
        .await
        .expect("the server span");
    let child = receiver
        .wait_for(wait, |s| s.span.name == "store.insert")
        .await
        .unwrap_or_else(|| {
            let names: Vec<_> = receiver
                .spans()
                .iter()
                .map(|s| s.span.name.clone())
                .collect();
            panic!("no span of the handler's among {names:?}")
        });
    assert_eq!(child.trace_id(), trace);
    assert_eq!(child.parent_id(), server.span_id());
    assert_eq!(child.attr("product_id").as_deref(), Some("1"));
    assert!(child.span.start_time_unix_nano >= server.span.start_time_unix_nano);
    assert!(
        child.span.end_time_unix_nano <= server.span.end_time_unix_nano,
        "child {}..{}, server {}..{}",
        child.span.start_time_unix_nano,
        child.span.end_time_unix_nano,
        server.span.start_time_unix_nano,
        server.span.end_time_unix_nano
    );
    let placed = server
        .span
        .events
        .iter()
        .find(|e| e.name == "order placed")
        .expect("the handler's event on the server span");
    assert!(placed.attributes.iter().any(|a| a.key == "order_id"));
    shop.stop();
    let logs = std::fs::read_dir(dir.path().join("logs")).unwrap();
    let mut line = None;
    for f in logs {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            if v["message"] == "order placed" {
                line = Some(v);
            }
        }
    }
    let line = line.expect("the handler's log line");
    assert_eq!(line["trace_id"], trace);
    assert_eq!(line["span_id"], server.span_id().as_str());
}
