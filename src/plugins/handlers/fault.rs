//! `fault`: always fails with a 5xx JSON body and logs at error level.

use super::*;
use crate::server::error::json_error;
use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::EndpointExt;
use serde::Deserialize;

pub struct FaultHandler;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Options {
    status: u16,
    message: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            status: 500,
            message: "simulated internal error".into(),
        }
    }
}

struct Fault {
    status: StatusCode,
    message: String,
}

impl HandlerKind for FaultHandler {
    fn name(&self) -> &'static str {
        "fault"
    }
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        ctx.no_data()?;
        let o: Options = ctx.options()?;
        let status = StatusCode::from_u16(o.status)
            .ok()
            .filter(|s| s.is_server_error())
            .ok_or_else(|| {
                Diagnostics(vec![ctx.source.error(
                    &ctx.at("options.status"),
                    format!("{} is not a 5xx status", o.status),
                )])
            })?;
        Ok(Arc::new(Fault {
            status,
            message: o.message,
        }))
    }
}

impl PreparedHandler for Fault {
    fn endpoint(&self, _rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        let (status, message) = (self.status, self.message.clone());
        make_sync(move |_| {
            tracing::error!(status = status.as_u16(), "{message}");
            json_error(status, &message)
        })
        .boxed()
    }
    fn doc(&self) -> OperationDoc {
        OperationDoc::single(
            self.status.as_u16(),
            "Simulated failure",
            "application/json",
            crate::server::error::error_ref(),
        )
    }
    /// No good requests: every one is a server error with its status.
    fn chaos(&self, _endpoint: &Endpoint, _model: &Model) -> ChaosTraffic {
        ChaosTraffic::default().with_bad(BadRequests {
            kind: BadKind::ServerError,
            status: self.status.as_u16(),
            variants: vec![BadVariant::default()],
        })
    }
}
