//! The shop as its own process: typed handlers, business metrics, and
//! orders that belong to the key that placed them.

mod common;

use common::*;
use serde_json::{json, Value};

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
    bad_orders_are_refused_naming_the_field(&c, &shop).await;

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

    the_value_outside_the_set_is_warned_once(dir.path());
}

/// Each bad order is refused with its status, naming the field.
async fn bad_orders_are_refused_naming_the_field(c: &reqwest::Client, shop: &Shop) {
    // (body, status, field named)
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
        let (got, err) = post(c, shop, body).await;
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
        assert_eq!(err["status"], status);
        assert!(err["message"].as_str().unwrap().contains(field), "{err}");
    }
    let (got, err) = post(c, shop, "").await;
    assert_eq!(got, 400, "{err}");
    let (got, err) = post(
        c,
        shop,
        r#"{"product_id": 99, "quantity": 1, "payment": "card"}"#,
    )
    .await;
    assert_eq!(got, 404, "{err}");
}

/// The value outside the set was reported once, at warn level.
fn the_value_outside_the_set_is_warned_once(dir: &std::path::Path) {
    let logs = std::fs::read_dir(dir.join("logs")).unwrap();
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
        .find(|l| l["logger"] == "telltale::server" && l["address"].is_string())
        .expect("the start-up line");
    let message = format!("shop {} listening on", env!("CARGO_PKG_VERSION"));
    assert!(
        started["message"].as_str().unwrap().starts_with(&message),
        "{started}"
    );
    assert_eq!(started["version"], env!("CARGO_PKG_VERSION"));
}
