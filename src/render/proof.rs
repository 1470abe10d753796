//! Render proves its output: once every file is rendered (and each parsed
//! back by its target: YAML, JSON), the manifest's free text is looked up
//! at its place in what was parsed. A value that an escaping mistake let
//! change the file around it (a title that ends the JSON string, a
//! severity that adds a label) would not be found there, and render fails
//! before anything is written.
//!
//! ```text
//! Files ─► parse ─► dashboard: title, each panel's title, description, legends
//!                   alerts.yml: each alert's name, severity, summary; each objective's `slo`
//!                   datasources.yml: the three uids
//! ```

use super::Files;
use crate::manifest::Manifest;
use serde_json::Value as Json;

/// Where each checked file is (relative to the output directory).
const ALERTS: &str = "prometheus/alerts.yml";
const DATASOURCES: &str = "grafana/provisioning/datasources/datasources.yml";

fn parsed(files: &Files, path: &str) -> Result<Json, String> {
    let text = files
        .get(path)
        .ok_or_else(|| format!("{path} was not rendered"))?;
    if path.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| format!("{path}: {e}"))
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("{path}: {e}"))
    }
}

/// Fails naming the first manifest value not found intact at its place.
pub fn check(m: &Manifest, files: &Files) -> Result<(), String> {
    let missing =
        |what: String, path: &str| Err(format!("{what} is not intact in {path} (an escaping bug)"));
    let dash_path = format!("grafana/dashboards/{}.json", m.dashboard.uid);
    let dash = parsed(files, &dash_path)?;
    if dash["title"] != m.dashboard.title.as_str() || dash["uid"] != m.dashboard.uid.as_str() {
        return missing("dashboard.title".into(), &dash_path);
    }
    let panels = dash["panels"].as_array().cloned().unwrap_or_default();
    for (i, p) in m.dashboard.panels.iter().enumerate() {
        let Some(got) = panels.iter().find(|g| g["title"] == p.title.as_str()) else {
            return missing(format!("dashboard.panels[{i}].title"), &dash_path);
        };
        if !p.description.is_empty() && got["description"] != p.description.as_str() {
            return missing(format!("dashboard.panels[{i}].description"), &dash_path);
        }
        let legends: Vec<&str> = got["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["legendFormat"].as_str())
            .collect();
        for (j, t) in p.targets.iter().enumerate() {
            if !t.legend.is_empty() && !legends.contains(&t.legend.as_str()) {
                return missing(
                    format!("dashboard.panels[{i}].targets[{j}].legend"),
                    &dash_path,
                );
            }
        }
    }
    let rules = parsed(files, ALERTS)?;
    let all: Vec<&Json> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    for (i, a) in m.alerts.iter().enumerate() {
        let found = all.iter().any(|r| {
            r["alert"] == a.name.as_str()
                && r["labels"]["severity"] == a.severity.as_str()
                && r["annotations"]["summary"] == a.summary.as_str()
        });
        if !found {
            return missing(format!("alerts[{i}] (name, severity, summary)"), ALERTS);
        }
    }
    for (i, o) in m.objectives.iter().enumerate() {
        if !all.iter().any(|r| r["labels"]["slo"] == o.name.as_str()) {
            return missing(format!("objectives[{i}].name"), ALERTS);
        }
    }
    let ds = parsed(files, DATASOURCES)?;
    let uids: Vec<&str> = ds["datasources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    let want = &m.stack.datasources;
    for (field, uid) in [
        ("prometheus", &want.prometheus),
        ("loki", &want.loki),
        ("json", &want.json),
    ] {
        if !uids.contains(&uid.as_str()) {
            return missing(format!("stack.datasources.{field}"), DATASOURCES);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_changed_in_a_rendered_file_fails_the_proof() {
        let model = crate::model::open(None, &crate::plugins::KindRegistry::builtin()).unwrap();
        let m = &model.manifest;
        let files = crate::render::render_all(&model, String::from("../logs")).unwrap();
        assert!(super::check(m, &files).is_ok());
        let dash = format!("grafana/dashboards/{}.json", m.dashboard.uid);
        let title = &m.dashboard.panels[0].title;
        for (path, from, to) in [
            (dash.as_str(), title.as_str(), "Other"),
            (
                super::ALERTS,
                "alert: \"HighMemoryUsage\"",
                "alert: \"Renamed\"",
            ),
        ] {
            let mut tampered = files.clone();
            let text = tampered.get_mut(path).unwrap();
            assert!(text.contains(from), "{from} in {path}");
            *text = text.replacen(from, to, 1);
            let err = super::check(m, &tampered).unwrap_err();
            assert!(err.contains(path), "{err}");
        }
    }
}
