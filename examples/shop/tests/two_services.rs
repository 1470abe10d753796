//! The shop and payments, both exporting traces to the test's OTLP
//! receiver (decoding with the official OpenTelemetry protobuf types), and
//! a real Prometheus scraping the shop with its rendered config: one card
//! order with a known `traceparent` is one trace across both services, and
//! every panel of the shop's dashboard (its dependency rows among them)
//! has data and every rule evaluates.

mod common;
#[path = "../../../tests/common/otlp.rs"]
#[allow(dead_code)]
mod otlp;

use common::prom::*;
use common::*;
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

/// The span `name` of `service` in the order's trace, waited for (20 s).
async fn find(receiver: &otlp::Otlp, name: &str, service: &str) -> otlp::Received {
    receiver
        .wait_for(Duration::from_secs(20), |s| {
            s.trace_id() == TRACE
                && s.span.name == name
                && s.resource("service.name").as_deref() == Some(service)
        })
        .await
        .unwrap_or_else(|| {
            let seen: Vec<_> = receiver
                .spans()
                .iter()
                .map(|s| {
                    (
                        s.resource("service.name"),
                        s.span.name.clone(),
                        s.trace_id(),
                    )
                })
                .collect();
            panic!("no {name} span of {service}; received: {seen:?}")
        })
}

/// The shop's server span continues the caller's trace; its call to
/// payments is a CLIENT span, child of the server span, and payments'
/// server span (and its handler's) follow below it. Returns the server span.
async fn the_call_to_payments_is_one_trace(receiver: &otlp::Otlp) -> otlp::Received {
    let server = find(receiver, "POST /orders", "shop").await;
    assert_eq!(
        server.parent_id(),
        CALLER,
        "the shop continues the caller's trace"
    );

    // The shop's call to payments: a CLIENT span, child of the server span.
    let client_span = find(receiver, "POST", "shop").await;
    assert_eq!(client_span.span.kind, 3, "SpanKind::Client");
    assert_eq!(client_span.parent_id(), server.span_id());
    assert_eq!(
        client_span.attr("http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        client_span.attr("server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        client_span.attr("http.response.status_code").as_deref(),
        Some("201")
    );
    let full = client_span.attr("url.full").unwrap();
    assert!(
        full.starts_with("http://127.0.0.1:") && full.ends_with("/payments"),
        "{full}"
    );

    // Payments' server span: the client span's child, in the same trace.
    let remote = find(receiver, "POST /payments", "payments").await;
    assert_eq!(remote.parent_id(), client_span.span_id());
    // And its own handler span below it.
    let authorize = find(receiver, "authorize", "payments").await;
    assert_eq!(authorize.parent_id(), remote.span_id());
    server
}

/// The database call: a CLIENT span of the SQL conventions, child of the
/// handler's own `store.insert` span; the statement's values are absent.
async fn the_database_call_is_a_client_span_without_values(
    receiver: &otlp::Otlp,
    server: &otlp::Received,
) {
    let insert = find(receiver, "store.insert", "shop").await;
    assert_eq!(insert.parent_id(), server.span_id());
    let db = find(receiver, "INSERT orders", "shop").await;
    assert_eq!(db.span.kind, 3);
    assert_eq!(db.parent_id(), insert.span_id());
    assert_eq!(db.attr("db.system").as_deref(), Some("sqlite"));
    assert_eq!(db.attr("db.operation.name").as_deref(), Some("INSERT"));
    assert_eq!(db.attr("db.collection.name").as_deref(), Some("orders"));
    assert!(db
        .span
        .attributes
        .iter()
        .all(|kv| !kv.key.contains("statement")));
}

/// Card and cash orders, each read back, for 6 seconds.
async fn orders_for_six_seconds(shop: &Shop) {
    let c = client();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for body in [
            r#"{"product_id": 1, "quantity": 1, "payment": "card", "card_last4": "4242"}"#,
            r#"{"product_id": 2, "quantity": 1, "payment": "cash"}"#,
        ] {
            let (s, b) = post(&c, shop, body).await;
            assert_eq!(s, 201, "{b}");
            let r = c
                .get(shop.url(&format!("/orders/{}", b["id"])))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rendered stack against the running pair: a real Prometheus with the
/// shop's rendered config (its scrape token from a file here). Every panel,
/// the dependency rows among them, has data and every rule evaluates.
async fn the_dependency_rows_have_data(shop: &Shop, dir: &std::path::Path) {
    let (out, prom) = stack_for(shop, dir).await;
    let tests = std::fs::read_to_string(out.join("prometheus/alerts.test.yml")).unwrap();
    for alert in [
        "OrdersDbDependencyErrors",
        "PaymentsDependencySlow",
        "PaymentsDependencyDown",
    ] {
        assert!(tests.contains(alert), "{alert} has its promtool tests");
    }

    orders_for_six_seconds(shop).await;
    let n = panels_have_data_and_rules_evaluate(
        &prom,
        &out.join("grafana/dashboards/shop.json"),
        &out.join("prometheus/alerts.yml"),
    )
    .await;
    let dash = std::fs::read_to_string(out.join("grafana/dashboards/shop.json")).unwrap();
    for title in [
        "orders_db: calls/s",
        "orders_db: state",
        "payments: p95",
        "payments: errors",
    ] {
        assert!(dash.contains(title), "the dashboard has {title}");
    }
    assert!(n >= 12, "{n} panel queries, the dependency rows among them");
    let size = prom
        .query(r#"telltale_dependency_pool_size{job="shop", dependency="orders_db"}"#)
        .await
        .unwrap();
    assert!(!size.is_empty(), "the pool's gauges are scraped: {size:?}");
    drop(prom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_across_the_shop_and_payments() {
    let receiver = otlp::Otlp::start().await;
    let dir = tempdir();
    let otel = [
        ("OTEL_SDK_DISABLED", "false"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base.as_str()),
    ];
    let payments = Payments::start(dir.path(), &otel);
    let manifest = manifest_in(dir.path(), |_| {});
    let mut env = otel.to_vec();
    env.push(("PAYMENTS_URL", payments.base.as_str()));
    let shop = Shop::start_with(&manifest, dir.path(), &env);

    let r = client()
        .post(shop.url("/orders"))
        .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
        .header("content-type", "application/json")
        .body(r#"{"product_id": 2, "quantity": 1, "payment": "card", "card_last4": "4242"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let server = the_call_to_payments_is_one_trace(&receiver).await;
    the_database_call_is_a_client_span_without_values(&receiver, &server).await;

    // Every span of the order is in the one trace.
    let ours = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id() == TRACE)
        .count();
    assert!(ours >= 6, "{ours} spans in the trace");

    the_dependency_rows_have_data(&shop, dir.path()).await;
    drop(shop);
    drop(payments);
}
