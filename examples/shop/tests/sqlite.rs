//! Without `DATABASE_URL` the shop keeps its orders in a SQLite file in its
//! working directory: they survive a restart.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_survives_a_restart() {
    let dir = tempdir();
    let manifest = shop_dir().join("manifest.yaml");
    let shop = Shop::start(&manifest, dir.path());
    let c = client();
    let (s, placed) = post(
        &c,
        &shop,
        r#"{"product_id": 2, "quantity": 2, "payment": "cash"}"#,
    )
    .await;
    assert_eq!(s, 201, "{placed}");
    let id = placed["id"].as_u64().unwrap();
    shop.stop();
    assert!(
        dir.path().join("shop.db").exists(),
        "the orders are in ./shop.db"
    );

    let shop = Shop::start(&manifest, dir.path());
    let r = c
        .get(shop.url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), placed);
    // The next id follows on: the migrations ran once, the table was kept.
    let (s, next) = post(
        &c,
        &shop,
        r#"{"product_id": 1, "quantity": 1, "payment": "cash"}"#,
    )
    .await;
    assert_eq!(s, 201, "{next}");
    assert!(next["id"].as_u64().unwrap() > id);
}
