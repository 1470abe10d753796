//! `probe`: `/health` (liveness), `/ready` (data and metrics loaded, not
//! draining) and `/startup` (start time and uptime).

use super::*;
use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::EndpointExt;
use serde::Deserialize;
use serde_json::json;

pub struct ProbeHandler;

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Probe {
    #[default]
    Health,
    Ready,
    Startup,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    probe: Probe,
}

struct PreparedProbe(Probe);

impl HandlerKind for ProbeHandler {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn methods(&self) -> Option<&'static [HttpMethod]> {
        Some(&[HttpMethod::Get])
    }
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        ctx.no_data()?;
        let o: Options = ctx.options()?;
        Ok(Arc::new(PreparedProbe(o.probe)))
    }
}

fn respond(status: StatusCode, body: Json) -> Response {
    json_bytes(status, serde_json::to_vec(&body).expect("json"))
}

impl PreparedHandler for PreparedProbe {
    fn probe(&self) -> Option<crate::model::kinds::ProbeRole> {
        use crate::model::kinds::ProbeRole;
        Some(match self.0 {
            Probe::Health => ProbeRole::Liveness,
            Probe::Ready => ProbeRole::Readiness,
            Probe::Startup => ProbeRole::Startup,
        })
    }
    fn endpoint(&self, rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        let rt = rt.clone();
        let probe = self.0;
        make_sync(move |_| match probe {
            Probe::Health => respond(StatusCode::OK, json!({"status": "ok"})),
            Probe::Ready => {
                let ready = rt.ready();
                let draining = rt.draining();
                let logging = crate::logging::health().is_none_or(|h| h.writer_alive());
                // Read from the background checks: a probe never calls a
                // dependency itself.
                let deps = rt.get::<Arc<crate::model::dependencies::Running>>();
                let down = deps.map(|d| d.down()).unwrap_or_default();
                let states = deps.map(|d| {
                    d.entries()
                        .iter()
                        .map(|e| (e.name.clone(), json!(if e.is_up() { "up" } else { "down" })))
                        .collect::<serde_json::Map<_, _>>()
                });
                let mut body = if ready && !draining && logging && down.is_empty() {
                    json!({"status": "ready"})
                } else {
                    let reason = if draining {
                        "shutting down".to_string()
                    } else if !logging {
                        "the log writer stopped".to_string()
                    } else if !ready {
                        "loading".to_string()
                    } else {
                        format!("dependency down: {}", down.join(", "))
                    };
                    json!({"status": "not_ready", "reason": reason})
                };
                if let Some(states) = states {
                    body["dependencies"] = serde_json::Value::Object(states);
                }
                let status = if body["status"] == "ready" {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                respond(status, body)
            }
            Probe::Startup => respond(
                StatusCode::OK,
                json!({
                    "status": "started",
                    "started_at": humantime::format_rfc3339_millis(rt.started_at()).to_string(),
                    "uptime_seconds": rt.uptime().as_secs_f64(),
                }),
            ),
        })
        .boxed()
    }
    fn doc(&self) -> OperationDoc {
        let mut doc = OperationDoc::json(match self.0 {
            Probe::Health => {
                json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}})
            }
            Probe::Ready => {
                json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["ready", "not_ready"]}, "reason": {"type": "string"}, "dependencies": {"type": "object", "description": "Each dependency's state from its last background check.", "additionalProperties": {"type": "string", "enum": ["up", "down"]}}}})
            }
            Probe::Startup => json!({"type": "object", "properties": {
                "status": {"type": "string"},
                "started_at": {"type": "string", "format": "date-time"},
                "uptime_seconds": {"type": "number"}}}),
        });
        if let Probe::Ready = self.0 {
            doc.responses.push((
                503,
                "Not ready".into(),
                "application/json",
                json!({"type": "object"}),
            ));
        }
        doc
    }
}
