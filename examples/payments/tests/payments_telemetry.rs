//! The payments service as its own process: its business metrics and log
//! lines, and its handler span.

mod common;
#[path = "../../../tests/common/otlp.rs"]
#[allow(dead_code)]
mod otlp;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// `payments_total{outcome}` counts each payment once, `payment_amount_euros`
/// observes each amount; each payment logs one line with its order id and
/// outcome, by the caller's principal.
#[tokio::test]
async fn the_metrics_count_approved_and_declined_and_each_payment_logs_one_line() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    let before = outcomes(&metrics(&c, &svc).await);
    let names: Vec<&str> = before.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        names,
        ["approved", "declined", "other"],
        "every series at zero from the start"
    );
    assert!(before.iter().all(|(_, v)| *v == 0.0));

    // (order id, amount, card, approved?)
    let payments = [
        (1, 12.5, Some("4242"), true),
        (2, 999.0, None, true),
        (3, 1500.0, None, false),
        (4, 30.0, Some("0002"), false),
        (5, 40.0, Some("1111"), true),
        (6, 2500.0, Some("0002"), false),
    ];
    for (order_id, amount, card, approved) in payments {
        let mut body = json!({"order_id": order_id, "amount_euros": amount, "method": "card"});
        if let Some(card) = card {
            body["card_last4"] = card.into();
        }
        let (status, answer) = post(&c, &svc, &body.to_string()).await;
        assert_eq!(status, if approved { 201 } else { 402 }, "{answer}");
    }
    // A refused body is not a payment.
    let (status, _) = post(&c, &svc, r#"{"order_id": 9}"#).await;
    assert_eq!(status, 422);

    let m = metrics(&c, &svc).await;
    let after = outcomes(&m);
    let get = |o: &str| after.iter().find(|(x, _)| x == o).unwrap().1;
    assert_eq!(
        (get("approved"), get("declined"), get("other")),
        (3.0, 3.0, 0.0),
        "{m}"
    );
    assert_eq!(sample(&m, "payment_amount_euros_count"), 6.0);
    assert_eq!(sample(&m, "payment_amount_euros_sum"), 5081.5);
    assert_eq!(sample(&m, r#"payment_amount_euros_bucket{le="1000"}"#), 4.0);
    assert!(
        m.contains(r#"http_requests_total{method="POST",path="/payments",status="402"} 3"#),
        "{m}"
    );
    assert!(m.contains("build_info{"), "{m}");
    svc.stop();

    let lines = log_lines(dir.path());
    let logged: Vec<&Value> = lines
        .iter()
        .filter(|l| l["logger"] == "payments::authorize")
        .collect();
    assert_eq!(logged.len(), payments.len(), "one line per payment");
    for ((order_id, _, _, approved), l) in payments.iter().zip(&logged) {
        let outcome = if *approved { "approved" } else { "declined" };
        assert_eq!(l["order_id"], *order_id, "{l}");
        assert_eq!(l["outcome"], outcome, "{l}");
        assert_eq!(l["message"], format!("payment {outcome}"), "{l}");
        assert_eq!(l["level"], "info", "{l}");
        assert_eq!(l["route"], "/payments", "{l}");
        assert_eq!(l["caller"], "shop", "{l}");
        assert_eq!(l["request_id"].as_str().unwrap().len(), 32, "{l}");
    }
    assert_eq!(logged[2]["reason"], "amount_euros");
    assert_eq!(logged[3]["reason"], "card_last4");
    // The start-up line names payments, not telltale.
    let started = lines
        .iter()
        .find(|l| l["logger"] == "telltale::server" && l["address"].is_string())
        .expect("the start-up line");
    let message = format!("payments {} listening on", env!("CARGO_PKG_VERSION"));
    assert!(
        started["message"].as_str().unwrap().starts_with(&message),
        "{started}"
    );
}

/// The handler's `authorize` span is a child span of the request's server
/// span, its fields (and the outcome it records) attributes; the payment's
/// log line carries the server span's ids. Received by an OTLP receiver that
/// decodes with the OpenTelemetry protobuf definitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorize_span_is_a_child_of_the_request_span() {
    let receiver = otlp::Otlp::start().await;
    let dir = tempdir();
    let svc = Payments::start_with(
        &payments_dir().join("manifest.yaml"),
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = client()
        .post(svc.url("/payments"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .header("content-type", "application/json")
        .body(r#"{"order_id": 77, "amount_euros": 20, "method": "card", "card_last4": "0002"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    let wait = Duration::from_secs(15);
    let server = receiver
        .wait_for(wait, |s| {
            s.trace_id() == trace && s.span.name == "POST /payments"
        })
        .await
        .expect("the server span");
    let child = receiver
        .wait_for(wait, |s| s.span.name == "authorize")
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
    assert_eq!(child.attr("order_id").as_deref(), Some("77"));
    assert_eq!(child.attr("method").as_deref(), Some("card"));
    assert_eq!(child.attr("outcome").as_deref(), Some("declined"));
    assert!(child.span.start_time_unix_nano >= server.span.start_time_unix_nano);
    assert!(child.span.end_time_unix_nano <= server.span.end_time_unix_nano);
    assert!(
        server
            .span
            .events
            .iter()
            .any(|e| e.name == "payment declined"),
        "the payment's line is an event of the server span"
    );
    svc.stop();
    let line = log_lines(dir.path())
        .into_iter()
        .find(|l| l["message"] == "payment declined")
        .expect("the payment's log line");
    assert_eq!(line["trace_id"], trace);
    assert_eq!(line["span_id"], server.span_id().as_str());
}
