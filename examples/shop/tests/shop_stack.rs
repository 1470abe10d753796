//! The shop as its own process: its dashboard and alert proven against a
//! real Prometheus, chaos with headers from the environment, and its
//! handler span.

mod common;
#[path = "../../../tests/common/otlp.rs"]
#[allow(dead_code)]
mod otlp;

use common::prom::*;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

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
