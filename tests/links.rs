//! Linked signals in the rendered stack: every alert links to its runbook,
//! the dashboard and the exact panel showing its metric; panel ids survive
//! edits of other panels; HTTP panels link to their request logs in Loki;
//! a logged request_id links to every line of its request.
mod common;
mod render_support;
use common::*;
use render_support::*;
use serde_json::Value;

fn alerts(r: &std::path::Path) -> Vec<Value> {
    yaml(&r.join("prometheus/alerts.yml"))["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn panels(r: &std::path::Path) -> Vec<Value> {
    json(&r.join("grafana/dashboards/ecommerce-api.json"))["panels"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn every_alert_links_to_its_runbook_dashboard_and_panel() {
    let r = rendered_default();
    let panels = panels(&r.out);
    let alerts = alerts(&r.out);
    assert!(alerts.len() >= 8, "{} alerts", alerts.len());
    for a in &alerts {
        let name = a["alert"].as_str().unwrap();
        let ann = &a["annotations"];
        assert_eq!(
            ann["runbook_url"],
            format!("https://runbooks.example.com/ecommerce-api/{name}"),
            "{name}"
        );
        assert_eq!(
            ann["dashboard_url"],
            "http://localhost:3000/d/ecommerce-api"
        );
        let url = ann["panel_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no panel_url"));
        let id: u64 = url
            .strip_prefix("http://localhost:3000/d/ecommerce-api?viewPanel=")
            .unwrap()
            .parse()
            .unwrap();
        let panel = panels
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{name} links to panel {id}, which is not on the dashboard"));
        // The panel shows a metric the alert is about, named in its description.
        let exprs: Vec<&str> = panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["expr"].as_str())
            .collect();
        let description = ann["description"].as_str().unwrap();
        let metrics = [
            "http_requests_total",
            "http_request_duration_seconds",
            "products_low_stock_total",
            "system_memory_usage_percent",
            "up",
        ];
        let about: Vec<&&str> = metrics
            .iter()
            .filter(|m| description.contains(**m))
            .collect();
        assert!(
            !about.is_empty(),
            "{name}: the description names no metric: {description}"
        );
        assert!(
            about.iter().any(|m| exprs.iter().any(|e| e.contains(**m))),
            "{name} links to panel {:?}, which does not show {about:?}",
            panel["title"]
        );
        assert!(
            description.chars().any(|c| c.is_ascii_digit()),
            "{name}: the description names no threshold: {description}"
        );
    }
    // Error alerts open the panel split by status.
    let by_status = panels
        .iter()
        .find(|p| p["title"] == "Requests by Status")
        .unwrap();
    let high = alerts
        .iter()
        .find(|a| a["alert"] == "HighErrorRatio")
        .unwrap();
    assert!(high["annotations"]["panel_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("viewPanel={}", by_status["id"])));
}

#[test]
fn panel_ids_survive_adding_and_removing_other_panels() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    render_ok(&manifest, &a);
    let edited = dir.path().join("edited.yaml");
    edit_manifest(&manifest, &edited, |m| {
        let list = at(m, &["dashboard", "panels"]).as_sequence_mut().unwrap();
        let mut extra = list[0].clone();
        extra["title"] = "A new first panel".into();
        list.remove(3);
        list.insert(0, extra);
    });
    render_ok(&edited, &b);
    let ids = |r: &std::path::Path| -> Vec<(String, u64)> {
        panels(r)
            .iter()
            .map(|p| {
                (
                    p["title"].as_str().unwrap().to_string(),
                    p["id"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (before, after) = (ids(&a), ids(&b));
    let mut kept = 0;
    for (title, id) in &before {
        if let Some((_, id2)) = after.iter().find(|(t, _)| t == title) {
            assert_eq!(id, id2, "panel {title:?} changed id");
            kept += 1;
        }
    }
    assert_eq!(kept, before.len() - 1, "one panel was removed");
    // And the alerts still open the same panels.
    let links = |r: &std::path::Path| -> Vec<(String, String)> {
        alerts(r)
            .iter()
            .map(|a| {
                (
                    a["alert"].as_str().unwrap().to_string(),
                    a["annotations"]["panel_url"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    };
    let (la, lb) = (links(&a), links(&b));
    let moved: Vec<_> = la.iter().filter(|x| !lb.contains(x)).collect();
    let removed_id = before
        .iter()
        .find(|(t, _)| !after.iter().any(|(t2, _)| t2 == t))
        .map(|(_, id)| format!("viewPanel={id}"))
        .unwrap();
    assert!(
        moved.iter().all(|(_, url)| url.ends_with(&removed_id)),
        "alert links changed although their panels stayed: {moved:?}"
    );
}

#[test]
fn http_panels_link_to_their_request_logs_and_request_ids_to_their_lines() {
    let r = rendered_default();
    let panels = panels(&r.out);
    let rate = panels
        .iter()
        .find(|p| p["title"] == "HTTP Request Rate")
        .unwrap();
    let link = &rate["fieldConfig"]["defaults"]["links"][0];
    let url = link["url"].as_str().unwrap();
    let pane: Value =
        serde_json::from_str(url.strip_prefix("/explore?schemaVersion=1&panes=").unwrap()).unwrap();
    let q = &pane["a"]["queries"][0];
    assert_eq!(q["datasource"]["uid"], "telltale-loki");
    let expr = q["expr"].as_str().unwrap();
    // The labels the shipper really sets (logging.labels: level, logger),
    // and the route of the series clicked.
    assert!(
        expr.starts_with(r#"{logger="telltale::http"} | json"#),
        "{expr}"
    );
    assert!(expr.contains(r#"path="${__field.labels.path}""#), "{expr}");
    assert_eq!(pane["a"]["range"]["from"], "${__from}");
    let by_status = panels
        .iter()
        .find(|p| p["title"] == "Requests by Status")
        .unwrap();
    let url = by_status["fieldConfig"]["defaults"]["links"][0]["url"]
        .as_str()
        .unwrap();
    assert!(
        url.contains(r#"status=\"${__field.labels.status}\""#),
        "{url}"
    );
    // Non-HTTP panels link nowhere.
    let cpu = panels.iter().find(|p| p["title"] == "CPU Usage").unwrap();
    assert!(cpu["fieldConfig"]["defaults"].get("links").is_none());

    let ds = yaml(
        &r.out
            .join("grafana/provisioning/datasources/datasources.yml"),
    );
    let loki = ds["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "loki")
        .unwrap();
    let field = &loki["jsonData"]["derivedFields"][0];
    assert_eq!(field["name"], "request_id");
    assert_eq!(field["datasourceUid"], "telltale-loki");
    let re = field["matcherRegex"].as_str().unwrap();
    // The regex finds the id in a real request line of the server.
    let line = r#"{"timestamp":"2026-01-01T00:00:00Z","level":"info","request_id":"4f2a9c","method":"GET"}"#;
    let start = line.find(r#""request_id":""#).unwrap() + r#""request_id":""#.len();
    assert_eq!(&line[start..start + 6], "4f2a9c");
    assert_eq!(re, r#""request_id":"([^"]+)""#);
    assert!(field["url"].as_str().unwrap().contains("${__value.raw}"));
}

#[test]
fn bad_links_are_located_errors() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "  rate_window: 5m\n",
        "  rate_window: 5m\n  runbook_url: \"wiki/{alert}/{team}\"\n",
    );
    edit(
        &manifest,
        "    for: 10m\n",
        "    for: 10m\n    panel: No Such Panel\n",
    );
    let (st, out, err) = run(&["validate", "-m", manifest.to_str().unwrap()], dir.path());
    assert!(!st.success());
    let text = format!("{out}{err}");
    assert!(
        text.contains("rules.runbook_url") && text.contains("is not an http(s) URL"),
        "{text}"
    );
    assert!(text.contains(r#"unknown placeholder "{team}""#), "{text}");
    assert!(
        text.contains("alerts[0].panel") && text.contains("No Such Panel"),
        "{text}"
    );
}
