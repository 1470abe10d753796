//! Two shop replicas on one real PostgreSQL: an order placed on one is read
//! from the other; stopping the database turns both `/ready` to 503 and
//! `telltale_dependency_up` to 0 while no request waits past its timeout;
//! starting it again brings both back without a restart.

mod common;

use common::postgres::Postgres;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The shop's `orders_db` timeout (manifest.yaml), and what a request may
/// take beyond it (the handler's own work, the loopback).
const TIMEOUT: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_millis(700);

async fn ready(shop: &Shop) -> (u16, Value) {
    let r = client().get(shop.url("/ready")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn up(shop: &Shop) -> Option<f64> {
    shop.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("telltale_dependency_up{dependency=\"orders_db\"} "))
        .map(|v| v.parse().unwrap())
}

/// Waits until `shop`'s `/ready` answers `status` (at most 15 s).
async fn until_ready_is(shop: &Shop, status: u16) -> Value {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, body) = ready(shop).await;
        if s == status {
            return body;
        }
        assert!(Instant::now() < until, "/ready stayed {s}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Placed on one replica, read from the other; ids from one sequence.
/// Returns the first order's id.
async fn an_order_placed_on_one_is_read_from_the_other(
    c: &reqwest::Client,
    a: &Shop,
    b: &Shop,
) -> u64 {
    let (s, placed) = post(
        c,
        a,
        r#"{"product_id": 2, "quantity": 3, "payment": "cash"}"#,
    )
    .await;
    assert_eq!(s, 201, "{placed}");
    let id = placed["id"].as_u64().unwrap();
    let r = c.get(b.url(&format!("/orders/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), placed);
    let (s, other) = post(
        c,
        b,
        r#"{"product_id": 1, "quantity": 1, "payment": "voucher"}"#,
    )
    .await;
    assert_eq!(s, 201, "{other}");
    assert_ne!(other["id"], placed["id"]);
    let r = c
        .get(a.url(&format!("/orders/{}", other["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    id
}

/// The database is down: both replicas say so, and no request (order `id`
/// read or a new one placed) waits past the timeout.
async fn both_say_the_database_is_down_and_no_request_hangs(
    c: &reqwest::Client,
    shops: [&Shop; 2],
    id: u64,
) {
    for shop in shops {
        let body = until_ready_is(shop, 503).await;
        assert_eq!(body["reason"], "dependency down: orders_db", "{body}");
        assert_eq!(body["dependencies"]["orders_db"], "down", "{body}");
        assert_eq!(up(shop).await, Some(0.0));
    }
    for shop in shops {
        for _ in 0..3 {
            let t = Instant::now();
            let (s, body) = post(
                c,
                shop,
                r#"{"product_id": 1, "quantity": 1, "payment": "cash"}"#,
            )
            .await;
            assert_eq!(s, 503, "{body}");
            assert!(t.elapsed() < TIMEOUT + MARGIN, "waited {:?}", t.elapsed());
            let t = Instant::now();
            let r = c
                .get(shop.url(&format!("/orders/{id}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 503);
            assert!(t.elapsed() < TIMEOUT + MARGIN, "waited {:?}", t.elapsed());
        }
    }
}

/// Back, without a restart of either replica; order `id` survived.
async fn both_come_back_without_a_restart(c: &reqwest::Client, a: &Shop, b: &Shop, id: u64) {
    for shop in [a, b] {
        until_ready_is(shop, 200).await;
        assert_eq!(up(shop).await, Some(1.0));
    }
    let (s, again) = post(
        c,
        b,
        r#"{"product_id": 3, "quantity": 1, "payment": "cash"}"#,
    )
    .await;
    assert_eq!(s, 201, "{again}");
    let r = c
        .get(a.url(&format!("/orders/{}", again["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(a.url(&format!("/orders/{id}"))).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the first order survived the database's restart"
    );
}

/// No file under the replicas' directories holds the password.
fn no_file_holds_the_password(dir: &std::path::Path, password: &str) {
    for name in ["a", "b"] {
        let d = dir.join(name);
        let mut seen = 0;
        for f in walk(&d) {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(
                !text.contains(password),
                "{} holds the password",
                f.display()
            );
            seen += 1;
        }
        assert!(seen >= 2, "the logs of {name} were read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_postgres_and_follow_it_down_and_back() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempdir();
    let start = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let manifest = manifest_in(&d, |_| {});
        Shop::start_with(&manifest, &d, &[("DATABASE_URL", url.as_str())])
    };
    let a = start("a");
    let b = start("b");
    for shop in [&a, &b] {
        let body = until_ready_is(shop, 200).await;
        assert_eq!(body["dependencies"]["orders_db"], "up", "{body}");
        assert_eq!(up(shop).await, Some(1.0));
    }
    assert!(
        !dir.path().join("a/shop.db").exists(),
        "with DATABASE_URL no local SQLite file stands in"
    );

    let c = client();
    let id = an_order_placed_on_one_is_read_from_the_other(&c, &a, &b).await;

    // The database stops: both replicas say so, and no request hangs.
    pg.stop();
    both_say_the_database_is_down_and_no_request_hangs(&c, [&a, &b], id).await;

    pg.start_again();
    both_come_back_without_a_restart(&c, &a, &b, id).await;

    // The password is in DATABASE_URL only: never in a log or a metric.
    let metrics = a.metrics().await;
    assert!(!metrics.contains(&pg.password));
    let (a_port, b_port) = (a.port, b.port);
    a.stop();
    b.stop();
    no_file_holds_the_password(dir.path(), &pg.password);
    let _ = (a_port, b_port);
}
