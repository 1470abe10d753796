//! `alloy/config.alloy`: the Promtail pipeline for Grafana Alloy.

use crate::render::{stack, Ctx};
use serde_json::json;

pub struct AlloyTarget;

const PATH: &str = "alloy/config.alloy";

impl super::RenderTarget for AlloyTarget {
    fn name(&self) -> &'static str {
        "alloy"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                PATH,
                include_str!("../../../templates/alloy/config.alloy.hbs"),
            ),
            (
                PROCESS,
                include_str!("../../../templates/alloy/process.alloy.hbs"),
            ),
        ]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let m = &ctx.model.manifest;
        let mut data = super::log_pipeline(ctx, &stack::loki_push_url(m));
        data["path"] = json!(stack::log_path_glob(m));
        Ok(vec![(PATH.into(), ctx.render(PATH, data)?)])
    }
}

/// The partial both Alloy configs end with: the JSON stages, labels,
/// structured metadata and the push to Loki.
pub const PROCESS: &str = "alloy/process";
