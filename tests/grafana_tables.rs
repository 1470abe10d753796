//! The Grafana JSON datasource over real HTTP: tables and annotations, in
//! both dialects.
mod common;
use common::grafana::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use telltale::manifest::DatasourceTargetKind;
use telltale::model::Model;

#[tokio::test]
async fn tables_match_the_gauge_and_honour_filters_in_both_dialects() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "5s", None);
    let m = model(&path);
    let table = &m
        .manifest
        .datasource
        .targets
        .iter()
        .find(|t| t.kind == DatasourceTargetKind::Table)
        .unwrap()
        .clone();
    let api = Api::start(&path, dir.path());
    let gauge = metric_sum(&api.metrics().await, table.metric.as_ref().unwrap(), &[]);

    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": table.name, "refId": "T"}]}),
        )
        .await;
    assert_eq!(v[0]["type"], "table");
    assert_eq!(v[0]["refId"], "T");
    let cols: Vec<&str> = v[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        table.columns.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let rows = v[0]["rows"].as_array().unwrap().clone();
    assert_eq!(
        rows.len() as f64,
        gauge,
        "table rows and the gauge disagree"
    );
    assert!(gauge > 0.0);

    // Pick a real category among the rows and filter on it, both spellings.
    let cat_idx = cols.iter().position(|c| *c == "category").unwrap();
    let cat = rows[0][cat_idx].as_str().unwrap().to_string();
    filters_select_the_rows_in_both_spellings(&api, &table.name, &cols, &rows, &cat).await;
    ad_hoc_filters_and_query_variables_are_discovered(&api, &m, &table.name, &cat).await;
    assert!(api.srv.stop().success());
}

/// Filters on a real category `cat` select its rows, in both spellings;
/// numeric and multi-value operators work; a payload may be JSON text.
async fn filters_select_the_rows_in_both_spellings(
    api: &Api,
    table: &str,
    cols: &[&str],
    rows: &[Value],
    cat: &str,
) {
    let cat_idx = cols.iter().position(|c| *c == "category").unwrap();
    let expect = rows.iter().filter(|r| r[cat_idx] == json!(cat)).count();
    for field in ["filters", "adhocFilters"] {
        let body = json!({
            field: [{"key": "category", "operator": "=", "value": cat}],
            "targets": [{"target": table, "payload": {"columns": ["name", "category"]}}]
        });
        let v = api.ok("/grafana/query", body).await;
        let got = v[0]["rows"].as_array().unwrap();
        assert_eq!(got.len(), expect, "{field}: {v}");
        assert!(got
            .iter()
            .all(|r| r[1] == json!(cat) && r.as_array().unwrap().len() == 2));
    }
    // Numeric comparison and multi-value operators.
    let stock_idx = cols.iter().position(|c| *c == "stock").unwrap();
    let below2 = rows
        .iter()
        .filter(|r| r[stock_idx].as_f64().unwrap() < 2.0)
        .count();
    let v = api
        .ok(
            "/grafana/query",
            json!({"filters": [{"key": "stock", "operator": "<", "value": "2"}],
                   "targets": [{"target": table}]}),
        )
        .await;
    assert_eq!(v[0]["rows"].as_array().unwrap().len(), below2);
    let v = api
        .ok(
            "/grafana/query",
            json!({"filters": [{"key": "category", "operator": "!=|", "value": "", "values": [cat]}],
                   "targets": [{"target": table}]}),
        )
        .await;
    assert_eq!(v[0]["rows"].as_array().unwrap().len(), rows.len() - expect);
    // The payload may also arrive as JSON text (simpod's code editor).
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": table, "payload": "{\"columns\": \"stock\"}"}]}),
        )
        .await;
    assert_eq!(
        v[0]["columns"],
        json!([{"text": "stock", "type": "number"}])
    );
}

/// Ad-hoc filter discovery, and the query variables: target names, and the
/// values of a column.
async fn ad_hoc_filters_and_query_variables_are_discovered(
    api: &Api,
    m: &Model,
    table: &str,
    cat: &str,
) {
    // Ad-hoc filter discovery.
    let keys = api.ok("/grafana/tag-keys", json!({})).await;
    let key_names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["text"].as_str().unwrap())
        .collect();
    assert!(
        key_names.contains(&"category") && key_names.contains(&"tags"),
        "{keys}"
    );
    let (s, _) = api.post_raw("/grafana/tag-keys", "").await;
    assert_eq!(s, 200);
    let vals = api
        .ok("/grafana/tag-values", json!({"key": "category"}))
        .await;
    assert!(vals.as_array().unwrap().contains(&json!({"text": cat})));

    // Query variables: target names, and the values of a column.
    let v = api
        .ok("/grafana/variable", json!({"payload": {"target": ""}}))
        .await;
    assert_eq!(
        v.as_array().unwrap().len(),
        m.manifest.datasource.targets.len()
    );
    let v = api
        .ok(
            "/grafana/variable",
            json!({"payload": {"target": format!("{}.category", table)},
                   "range": {"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"}}),
        )
        .await;
    assert!(v
        .as_array()
        .unwrap()
        .contains(&json!({"__text": cat, "__value": cat})));
}

#[tokio::test]
async fn annotations_record_startup_and_5xx_bursts_in_both_dialects() {
    let dir = tempdir();
    let path = manifest_with(dir.path(), "300ms", None);
    let m = model(&path);
    let burst = m.manifest.datasource.annotations.error_burst;
    let api = Api::start(&path, dir.path());
    let ann_target = names_of(&m, Some(DatasourceTargetKind::Annotations))[0].clone();

    // SimpleJSON /annotations: the start-up event, with the annotation echoed.
    let req = json!({"range": {"from": iso(now_ms() - 60_000), "to": iso(now_ms() + 60_000)},
                     "annotation": {"name": "events", "enable": true, "query": ann_target}});
    let v = api.ok("/grafana/annotations", req.clone()).await;
    let started = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["tags"].as_array().unwrap().contains(&json!("startup")))
        .unwrap_or_else(|| panic!("no start-up annotation: {v}"));
    assert_eq!(started["annotation"]["name"], "events");
    assert!(started["text"]
        .as_str()
        .unwrap()
        .contains(&m.manifest.service.name));

    // A burst: twice the threshold of 5xx responses, quickly.
    for _ in 0..burst * 2 {
        api.http.get(api.srv.url("/error")).send().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let burst_ann = loop {
        let req = json!({"annotation": {"name": "bursts", "query": ""}});
        let v = api.ok("/grafana/annotations", req).await;
        if let Some(b) = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["tags"].as_array().unwrap().contains(&json!("5xx")))
        {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no burst annotation: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(burst_ann["timeEnd"].as_i64().unwrap() >= burst_ann["time"].as_i64().unwrap());
    assert!(
        burst_ann["text"].as_str().unwrap().contains("/error"),
        "{burst_ann}"
    );

    // simpod: annotations through /query, as a frame Grafana maps to annotations.
    let v = api
        .ok(
            "/grafana/query",
            json!({"targets": [{"target": ann_target, "refId": "Anno",
                                "payload": {"events": ["error_burst"]}}]}),
        )
        .await;
    let cols: Vec<&str> = v[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["time", "timeEnd", "title", "text", "tags"]);
    let rows = v[0]["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r[4].as_str().unwrap().contains("5xx")));
    // The `tags` ad-hoc key filters annotations.
    let v = api
        .ok(
            "/grafana/query",
            json!({"filters": [{"key": "tags", "operator": "=", "value": "startup"}],
                   "targets": [{"target": ann_target}]}),
        )
        .await;
    let rows = v[0]["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r[4].as_str().unwrap().contains("startup"))
    );
    assert!(api.srv.stop().success());
}
