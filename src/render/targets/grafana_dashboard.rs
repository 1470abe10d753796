//! `grafana/dashboards/<uid>.json`: the dashboard, panel by panel.
//!
//! Panels are laid out left to right on Grafana's 24-column grid in manifest
//! order, wrapping to a new row when the next panel does not fit, so
//! positions never overlap. Each panel and the dashboard are Handlebars
//! templates producing JSON, which is parsed back and pretty-printed: a
//! template bug is a render error, and the output format is canonical.

use crate::manifest::{Manifest, Panel};
use crate::render::Ctx;
use serde_json::{json, Value as Json};

pub struct GrafanaDashboardTarget;

const DASHBOARD: &str = "grafana/dashboard.json";
const PANEL: &str = "grafana/panel.json";

/// Grafana's dashboard JSON schema version the templates follow.
pub const SCHEMA_VERSION: u32 = 39;
/// Grid columns.
pub const COLUMNS: u32 = 24;

impl super::RenderTarget for GrafanaDashboardTarget {
    fn name(&self) -> &'static str {
        "grafana-dashboard"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                DASHBOARD,
                include_str!("../../../templates/grafana/dashboard.json.hbs"),
            ),
            (
                PANEL,
                include_str!("../../../templates/grafana/panel.json.hbs"),
            ),
        ]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        Ok(vec![(path(&ctx.model.manifest), render_json(ctx)?)])
    }
}

/// Where the dashboard is written.
pub fn path(m: &Manifest) -> String {
    format!("grafana/dashboards/{}.json", m.dashboard.uid)
}

/// `(x, y)` of each panel: row-major packing on the 24-column grid.
pub fn layout(panels: &[Panel]) -> Vec<(u32, u32)> {
    let (mut x, mut y, mut row_h) = (0, 0, 0);
    let mut out = Vec::with_capacity(panels.len());
    for p in panels {
        let w = p.width.clamp(1, COLUMNS);
        if x + w > COLUMNS {
            x = 0;
            y += row_h;
            row_h = 0;
        }
        out.push((x, y));
        x += w;
        row_h = row_h.max(p.height);
    }
    out
}

/// The Grafana datasource reference of a panel.
fn datasource(m: &Manifest, kind: &str) -> Json {
    let ds = &m.stack.datasources;
    match kind {
        // The `datasource` template variable, defaulting to the pinned uid.
        "prometheus" => json!({ "type": "prometheus", "uid": "${datasource}" }),
        "loki" => json!({ "type": "loki", "uid": ds.loki }),
        _ => json!({ "type": "simpod-json-datasource", "uid": ds.json }),
    }
}

fn parse(name: &str, text: &str) -> Result<Json, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("{name} rendered invalid JSON (template bug): {e}"))
}

/// The dashboard JSON as written to disk.
pub fn render_json(ctx: &Ctx) -> Result<String, String> {
    let m = &ctx.model.manifest;
    let ids = crate::render::links::panel_ids(&m.dashboard.panels);
    let mut panels = Vec::new();
    for (i, (p, (x, y))) in m
        .dashboard
        .panels
        .iter()
        .zip(layout(&m.dashboard.panels))
        .enumerate()
    {
        let ds = datasource(m, &p.datasource);
        let mut steps: Vec<Json> = p
            .thresholds
            .iter()
            .map(|t| json!({ "color": t.color, "value": t.value }))
            .collect();
        if steps.is_empty() {
            steps.push(json!({ "color": "green", "value": null }));
        }
        if let Some(first) = steps.first_mut() {
            // Grafana's base step has no value.
            first["value"] = Json::Null;
        }
        let targets: Vec<Json> = p
            .targets
            .iter()
            .enumerate()
            .map(|(j, t)| {
                json!({
                    "ref_id": ref_id(j),
                    "expr": t.expr,
                    "legend": t.legend,
                    // A latency query's exemplars: the traces of its requests.
                    "exemplar": crate::render::links::shows_exemplars(ctx.model, p, &t.expr),
                })
            })
            .collect();
        let data = json!({
            "id": ids[i],
            "links": crate::render::links::logs_link(ctx.model, p).map(|l| vec![l]),
            "title": p.title,
            "description": p.description,
            "type": p.kind,
            "kind": p.datasource,
            "datasource": ds,
            "grid": { "h": p.height, "w": p.width.clamp(1, COLUMNS), "x": x, "y": y },
            "unit": p.unit,
            "steps": steps,
            "threshold_lines": p.thresholds.len() > 1,
            "targets": targets,
        });
        panels.push(parse(PANEL, &ctx.render(PANEL, data)?)?);
    }
    let ds = &m.stack.datasources;
    let data = json!({
        "uid": m.dashboard.uid,
        "title": m.dashboard.title,
        "refresh": m.dashboard.refresh,
        "time_from": m.dashboard.time_from,
        "schema_version": SCHEMA_VERSION,
        "service": m.service.name,
        "prometheus_uid": ds.prometheus,
        "job": crate::render::stack::service_job(m),
        "panels": panels,
    });
    let dash = parse(DASHBOARD, &ctx.render(DASHBOARD, data)?)?;
    let mut text = serde_json::to_string_pretty(&dash).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// `A`, `B`, ..., `Z`, `AA`, ...: the `refId` of a panel's `i`-th target
/// (verify names a panel's rows by it).
pub fn ref_id(mut i: usize) -> String {
    let mut s = String::new();
    loop {
        s.insert(0, (b'A' + (i % 26) as u8) as char);
        if i < 26 {
            return s;
        }
        i = i / 26 - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(w: u32, h: u32) -> Panel {
        serde_yaml::from_str(&format!(
            "{{title: t, type: stat, datasource: prometheus, targets: [{{expr: x}}], width: {w}, height: {h}}}"
        ))
        .unwrap()
    }

    #[test]
    fn packs_rows_without_overlap() {
        let ps: Vec<Panel> = [(12, 8), (6, 4), (6, 8), (12, 8), (24, 10), (8, 3), (20, 2)]
            .iter()
            .map(|(w, h)| panel(*w, *h))
            .collect();
        let pos = layout(&ps);
        assert_eq!(
            pos,
            [(0, 0), (12, 0), (18, 0), (0, 8), (0, 16), (0, 26), (0, 29)]
        );
        for (i, a) in ps.iter().enumerate() {
            for (j, b) in ps.iter().enumerate().skip(i + 1) {
                let (ax, ay) = pos[i];
                let (bx, by) = pos[j];
                let overlap = ax < bx + b.width
                    && bx < ax + a.width
                    && ay < by + b.height
                    && by < ay + a.height;
                assert!(!overlap, "panels {i} and {j} overlap");
            }
        }
    }

    #[test]
    fn ref_ids() {
        assert_eq!(ref_id(0), "A");
        assert_eq!(ref_id(25), "Z");
        assert_eq!(ref_id(26), "AA");
    }
}
