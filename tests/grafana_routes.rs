//! The Grafana JSON datasource over real HTTP: health, search, metrics,
//! series from the ring, and the dashboard route.
mod common;
use common::grafana::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use telltale::manifest::DatasourceTargetKind;

#[tokio::test]
async fn health_search_and_metrics_list_the_declared_targets() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "5s", None);
    let m = model(&path);
    let all = names_of(&m, None);
    assert!(
        all.len() >= 3,
        "the demo manifest declares datasource targets"
    );
    let api = Api::start(&path, dir.path());

    for p in ["/grafana", "/grafana/health"] {
        let (s, h) = api.get(p).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(h["status"], "ok");
        assert_eq!(h["targets"], json!(all.len()));
        assert_eq!(h["capacity"], json!(m.manifest.datasource.retention), "{h}");
    }

    // SimpleJSON: /search, a list of names, filtered by the typed text.
    assert_eq!(api.ok("/grafana/search", json!({})).await, json!(all));
    assert_eq!(
        api.ok("/grafana/search", json!({"target": ""})).await,
        json!(all)
    );
    let typed = &all[0][..3];
    let found: Vec<String> =
        serde_json::from_value(api.ok("/grafana/search", json!({"target": typed})).await).unwrap();
    assert!(!found.is_empty() && found.iter().all(|n| n.contains(typed)));
    // An empty body is an empty query.
    let (s, v) = api.post_raw("/grafana/search", "").await;
    assert_eq!((s, v), (200, json!(all)));

    // simpod: /metrics with payload definitions; /metric-payload-options fills them.
    let metrics = api.ok("/grafana/metrics", json!({})).await;
    let values: Vec<&str> = metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, all);
    for t in &m.manifest.datasource.targets {
        let entry = metrics
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["value"] == json!(t.name))
            .unwrap();
        let payloads = entry["payloads"].as_array().unwrap();
        match t.kind {
            DatasourceTargetKind::Series => assert!(payloads.is_empty()),
            DatasourceTargetKind::Table => {
                assert_eq!(payloads[0]["name"], "columns");
                let opts = api
                    .ok(
                        "/grafana/metric-payload-options",
                        json!({"metric": t.name, "name": "columns", "payload": {}}),
                    )
                    .await;
                let cols: Vec<&str> = opts
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["value"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    cols,
                    t.columns.iter().map(String::as_str).collect::<Vec<_>>()
                );
            }
            DatasourceTargetKind::Annotations => {
                assert_eq!(payloads[0]["name"], "events");
                let opts = api
                    .ok(
                        "/grafana/metric-payload-options",
                        json!({"metric": t.name, "name": "events", "payload": {}}),
                    )
                    .await;
                let want = if t.events.is_empty() {
                    telltale::manifest::EventKind::ALL.len()
                } else {
                    t.events.len()
                };
                assert_eq!(opts.as_array().unwrap().len(), want);
            }
        }
    }
    assert!(api.srv.stop().success());
}

#[tokio::test]
async fn series_come_from_the_ring_and_respect_range_and_max_data_points() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "100ms", None);
    let api = Api::start(&path, dir.path());
    api.wait_samples(2).await;
    // Traffic the sampler must see: good requests and 5xx.
    for _ in 0..20 {
        api.http.get(api.srv.url("/products")).send().await.unwrap();
        api.http.get(api.srv.url("/error")).send().await.unwrap();
    }
    let (_, h) = api.get("/grafana/health").await;
    api.wait_samples(h["samples"].as_u64().unwrap() + 3).await;
    let to = now_ms();
    let from = to - 60_000;
    // intervalMs 1: with the sampler's own 100 ms, two samples read less than
    // 100 ms apart (a tick delayed by a loaded machine) would share a bucket.
    let q = |target: &str, max: u64| {
        json!({
            "range": {"from": iso(from), "to": iso(to), "raw": {"from": "now-1m", "to": "now"}},
            "interval": "1ms", "intervalMs": 1, "maxDataPoints": max,
            "targets": [{"target": target, "refId": "A"}]
        })
    };
    let all = api.ok("/grafana/query", q("request_rate", 100_000)).await;
    let pts = datapoints(&all[0]);
    assert_eq!(all[0]["target"], "request_rate");
    assert_eq!(all[0]["refId"], "A");
    assert!(pts.len() >= 4, "{all}");
    for p in pts {
        let t = p[1].as_i64().unwrap();
        assert!((from..=to).contains(&t), "point {p} outside the range");
    }
    // 40 requests were counted at some point: some sample saw a positive rate.
    assert!(
        pts.iter().any(|p| p[0].as_f64().unwrap_or(0.0) > 0.0),
        "{all}"
    );
    let errs = api.ok("/grafana/query", q("error_rate", 100_000)).await;
    assert!(datapoints(&errs[0])
        .iter()
        .any(|p| p[0].as_f64().unwrap_or(0.0) > 0.0));
    let p95 = api.ok("/grafana/query", q("latency_p95", 100_000)).await;
    assert!(datapoints(&p95[0])
        .iter()
        .any(|p| p[0].as_f64().is_some_and(|v| v > 0.0)));

    // maxDataPoints caps the answer.
    for max in [1u64, 2, 3] {
        let v = api.ok("/grafana/query", q("request_rate", max)).await;
        let n = datapoints(&v[0]).len();
        assert!(n >= 1 && n as u64 <= max, "maxDataPoints {max}: {n} points");
    }
    // A range before the server started holds nothing.
    let old = json!({"range": {"from": "2001-01-01T00:00:00.000Z", "to": "2001-01-02T00:00:00.000Z"},
                     "targets": [{"target": "cpu_percent", "refId": "B"}]});
    let v = api.ok("/grafana/query", old).await;
    assert_eq!(datapoints(&v[0]).len(), 0);
    // SimpleJSON's `type: table` for a series: a Time/value table.
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": "memory_percent", "refId": "C", "type": "table"}]}),
        )
        .await;
    assert_eq!(v[0]["type"], "table");
    assert_eq!(v[0]["columns"][0]["type"], "time");
    assert!(!v[0]["rows"].as_array().unwrap().is_empty());
    // Placeholder and hidden targets are skipped.
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"refId": "A"}, {"target": "cpu_percent", "hide": true}]}),
        )
        .await;
    assert_eq!(v, json!([]));
    assert!(api.srv.stop().success());
}

#[tokio::test]
async fn the_ring_stays_bounded() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "100ms", Some(5));
    let api = Api::start(&path, dir.path());
    api.wait_samples(5).await;
    // Keep sampling well past the capacity.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, h) = api.get("/grafana/health").await;
    assert_eq!(h["samples"], 5, "{h}");
    assert_eq!(h["capacity"], 5);
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": "cpu_percent"}]}),
        )
        .await;
    let pts = datapoints(&v[0]);
    assert_eq!(pts.len(), 5);
    // The newest 5: all within the last ~second.
    let oldest = pts[0][1].as_i64().unwrap();
    assert!(now_ms() - oldest < 5_000, "old samples were kept: {v}");
    assert!(api.srv.stop().success());
}

#[tokio::test]
async fn dashboard_route_serves_the_rendered_bytes() {
    let dir = tempdir();
    let path = copy_default_manifest(dir.path());
    let m = model(&path);
    let out = dir.path().join("out");
    let (st, _, err) = run(
        &[
            "render",
            "--manifest",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(st.success(), "{err}");
    let rel = format!("grafana/dashboards/{}.json", m.manifest.dashboard.uid);
    let rendered = std::fs::read(out.join(&rel)).unwrap();
    // The repo's generated/ is the same render of the same manifest.
    assert_eq!(
        rendered,
        std::fs::read(repo().join("generated").join(&rel)).unwrap()
    );

    let api = Api::start(&path, dir.path());
    let r = api
        .http
        .get(api.srv.url("/grafana/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served = r.bytes().await.unwrap();
    assert!(
        served[..] == rendered[..],
        "GET /grafana/dashboard differs from the rendered file"
    );
    // And it holds the JSON-datasource panels, querying declared targets.
    let dash: Value = serde_json::from_slice(&served).unwrap();
    let json_targets: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["datasource"]["type"] == "simpod-json-datasource")
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["target"].as_str().unwrap().to_string())
        .collect();
    assert!(!json_targets.is_empty());
    let declared = names_of(&m, None);
    assert!(
        json_targets.iter().all(|t| declared.contains(t)),
        "{json_targets:?}"
    );
    // Each of them answers /query.
    for t in &json_targets {
        api.ok(
            "/grafana/query",
            json!({"targets": [{"target": t, "refId": "A"}]}),
        )
        .await;
    }
    assert!(api.srv.stop().success());
}
