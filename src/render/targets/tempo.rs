//! `tempo/tempo.yaml`: Grafana Tempo for docker-compose, its OTLP
//! receivers on the ports of `stack.otlp`, local storage in its data
//! volume, and `stack.traces_retention` as the compactor's retention.

use crate::model::TEMPO_GRPC_PORT;
use crate::render::{stack, Ctx};
use serde_json::json;
use std::time::Duration;

pub struct TempoTarget;

pub const PATH: &str = "tempo/tempo.yaml";

impl super::RenderTarget for TempoTarget {
    fn name(&self) -> &'static str {
        "tempo"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            PATH,
            include_str!("../../../templates/tempo/tempo.yaml.hbs"),
        )]
    }
    fn render(&self, ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        let s = &ctx.model.manifest.stack;
        let text = ctx.render(
            PATH,
            json!({
                "port": s.tempo.port,
                "grpc_port": TEMPO_GRPC_PORT,
                "otlp_http": format!("0.0.0.0:{}", s.otlp.http),
                "otlp_grpc": format!("0.0.0.0:{}", s.otlp.grpc),
                "retention": go_duration(s.traces_retention.get()),
                "wal": format!("{}/wal", stack::TEMPO_DATA),
                "blocks": format!("{}/blocks", stack::TEMPO_DATA),
            }),
        )?;
        super::check_yaml(PATH, &text)?;
        Ok(vec![(PATH.into(), text)])
    }
}

/// A whole number of seconds as Go's `time.ParseDuration` reads it (Tempo's
/// durations; it has no `d` or `w`): hours, minutes or seconds, whichever
/// is the largest exact unit.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_use_units_go_reads() {
        assert_eq!(go_duration(Duration::from_secs(14 * 86400)), "336h");
        assert_eq!(go_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(go_duration(Duration::from_secs(3601)), "3601s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
