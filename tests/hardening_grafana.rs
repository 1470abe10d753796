//! Hostile conditions: an amplifying `/grafana/query` is refused, and its
//! points and answers are capped. The README's "Reliability" table points
//! here.
mod common;
use common::*;

/// Resident memory of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

async fn post_query(
    client: &reqwest::Client,
    srv: &Server,
    body: String,
) -> (u16, serde_json::Value) {
    let r = client
        .post(srv.url("/grafana/query"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let len = r.content_length();
    let bytes = r.bytes().await.unwrap();
    assert!(
        bytes.len() < 8 << 20,
        "{} bytes answered ({len:?})",
        bytes.len()
    );
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// One request may not cost gigabytes: each amplifier of a 1 MB body is
/// refused with a JSON error naming its limit, and memory stays put.
#[tokio::test]
async fn grafana_query_amplifiers_are_refused_and_memory_stays_bounded() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let client = reqwest::Client::new();
    let range = r#""range":{"from":"2020-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}"#;
    let repeat = |one: &str, n: usize| vec![one; n].join(",");
    let before = rss(srv.pid());

    // 40k series targets in a 1 MB body (583 MB of answer before the fix).
    let series = format!(
        r#"{{{range},"targets":[{}]}}"#,
        repeat(r#"{"target":"request_rate"}"#, 40_000)
    );
    assert!(series.len() < 1 << 20);
    for _ in 0..5 {
        let (status, body) = post_query(&client, &srv, series.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], "targets");
        let msg = body["message"].as_str().unwrap();
        assert!(
            msg.contains("max_targets") && msg.contains("40000"),
            "{msg}"
        );
    }

    // Table targets, and one table target naming its columns 30k times.
    let tables = format!(
        r#"{{{range},"targets":[{}]}}"#,
        repeat(r#"{"target":"low_stock_products"}"#, 33)
    );
    let (status, body) = post_query(&client, &srv, tables).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("max_targets"));
    let columns = format!(
        r#"{{{range},"targets":[{{"target":"low_stock_products","payload":{{"columns":[{}]}}}}]}}"#,
        repeat(r#""name""#, 30_000)
    );
    let (status, body) = post_query(&client, &srv, columns).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "targets[0].payload.columns");
    assert!(body["message"].as_str().unwrap().contains("max_columns"));

    // Within the limits, still answered.
    let (status, body) = post_query(
        &client,
        &srv,
        format!(
            r#"{{{range},"targets":[{}]}}"#,
            repeat(r#"{"target":"request_rate"}"#, 32)
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 32);

    let after = rss(srv.pid());
    assert!(
        after < before + (64 << 20),
        "RSS went from {before} to {after} bytes"
    );
    assert!(srv.stop().success());
}

/// Points default to `datasource.limits.default_max_points` without
/// `maxDataPoints`, and an answer over `max_response_bytes` is a 413.
#[tokio::test]
async fn grafana_query_points_and_response_size_are_capped() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "  sample_interval: 5s\n",
        "  sample_interval: 100ms\n  limits: { default_max_points: 3, max_response_bytes: 600 }\n",
    );
    let srv = Server::start(&manifest, dir.path());
    let client = reqwest::Client::new();
    // Let the sampler fill more than three points.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let range = r#""range":{"from":"2020-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}"#;
    let (status, body) = post_query(
        &client,
        &srv,
        format!(r#"{{{range},"targets":[{{"target":"cpu_percent"}}]}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let points = body[0]["datapoints"].as_array().unwrap().len();
    assert!((1..=3).contains(&points), "{points} points");
    let (status, body) = post_query(
        &client,
        &srv,
        format!(
            r#"{{{range},"targets":[{}]}}"#,
            [r#"{"target":"low_stock_products"}"#; 10].join(",")
        ),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("max_response_bytes"));
    assert!(srv.stop().success());
}
