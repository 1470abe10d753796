//! The payments service as its own process: approvals and declines by the
//! manifest's rules, refused bodies, and the keys it asks for.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn an_approved_payment_is_a_201_with_its_id() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    let body =
        json!({"order_id": 42, "amount_euros": 25.0, "method": "card", "card_last4": "4242"});
    let (status, pay) = post(&c, &svc, &body.to_string()).await;
    assert_eq!(status, 201, "{pay}");
    assert_eq!(pay["status"], "approved");
    assert_eq!(pay["order_id"], 42);
    assert_eq!(pay["amount_euros"], 25.0);
    assert_eq!(pay["method"], "card");
    let id = pay["payment_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("pay-"), "{pay}");
    // Exactly at the limit is still approved, and without a card.
    let body = json!({"order_id": 43, "amount_euros": 1000, "method": "card"});
    let (status, pay) = post(&c, &svc, &body.to_string()).await;
    assert_eq!(status, 201, "{pay}");
    assert_ne!(pay["payment_id"], id.as_str(), "each payment its own id");
    svc.stop();
}

#[tokio::test]
async fn over_the_limit_is_a_402_with_the_error_body() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let body =
        json!({"order_id": 7, "amount_euros": 1000.01, "method": "card", "card_last4": "4242"});
    let (status, err) = post(&client(), &svc, &body.to_string()).await;
    assert_declined(status, &err, "amount_euros", "over the limit of 1000 euros");
    svc.stop();
}

#[tokio::test]
async fn a_declined_card_is_a_402() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    let body = json!({"order_id": 8, "amount_euros": 10, "method": "card", "card_last4": "0002"});
    let (status, err) = post(&c, &svc, &body.to_string()).await;
    assert_declined(status, &err, "card_last4", "card ending 0002");
    // Another card of the same amount goes through.
    let body = json!({"order_id": 8, "amount_euros": 10, "method": "card", "card_last4": "0003"});
    let (status, pay) = post(&c, &svc, &body.to_string()).await;
    assert_eq!(status, 201, "{pay}");
    svc.stop();
}

#[tokio::test]
async fn invalid_bodies_are_refused_with_json_naming_what_is_wrong() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    // Each bad body: (body, status, word its message names).
    for (body, status, names) in [
        (r#"{"order_id": 1, "amount_euros": "#, 400, "malformed JSON"),
        ("", 400, "body"),
        (r#"{"amount_euros": 5, "method": "card"}"#, 422, "order_id"),
        (r#"{"order_id": 1, "method": "card"}"#, 422, "amount_euros"),
        (
            r#"{"order_id": 1, "amount_euros": 0, "method": "card"}"#,
            422,
            "amount_euros",
        ),
        (
            r#"{"order_id": 1, "amount_euros": -3, "method": "card"}"#,
            422,
            "amount_euros",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 1000001, "method": "card"}"#,
            422,
            "amount_euros",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 5, "method": ""}"#,
            422,
            "method",
        ),
        (
            &format!(
                r#"{{"order_id": 1, "amount_euros": 5, "method": "{}"}}"#,
                "x".repeat(33)
            ),
            422,
            "method",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 5, "method": "card", "card_last4": "12a4"}"#,
            422,
            "card_last4",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 5, "method": "card", "card_last4": "12345"}"#,
            422,
            "card_last4",
        ),
        (
            r#"{"order_id": -1, "amount_euros": 5, "method": "card"}"#,
            422,
            "body",
        ),
        ("[]", 422, "body"),
    ] {
        let (got, err) = post(&c, &svc, body).await;
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["status"], status, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(names),
            "{body}: {err}"
        );
    }
    // None of them reached the handler: nothing counted.
    let m = metrics(&c, &svc).await;
    assert!(outcomes(&m).iter().all(|(_, v)| *v == 0.0), "{m}");
    assert_eq!(sample(&m, "payment_amount_euros_count"), 0.0);
    svc.stop();
}

/// Only a caller with a key of PAYMENTS_API_KEYS may authorize a payment,
/// and only the scrape token reads `/metrics`.
#[tokio::test]
async fn payments_need_the_key_and_metrics_the_scrape_token() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let anonymous = reqwest::Client::new();
    let body = r#"{"order_id": 1, "amount_euros": 5, "method": "card"}"#;
    for key in [None, Some("wrong-key-0123456789abc"), Some(SCRAPE_TOKEN)] {
        let mut r = anonymous
            .post(svc.url("/payments"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{key:?}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "ApiKey realm=\"payments\", header=\"X-API-Key\""
        );
    }
    let r = anonymous.get(svc.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let m = metrics(&client(), &svc).await;
    assert!(m.contains(r#"path="/payments",status="401""#), "{m}");
    assert!(outcomes(&m).iter().all(|(_, v)| *v == 0.0), "{m}");
    svc.stop();
    for l in log_lines(dir.path()) {
        let text = l.to_string();
        assert!(!text.contains(SHOP_KEY) && !text.contains(SCRAPE_TOKEN));
    }
}
