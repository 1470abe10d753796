//! `prometheus`: the metrics registry in the Prometheus text format.

use super::info::NoOptions;
use super::*;
use crate::server::error::json_error;
use ::prometheus::{Encoder, TextEncoder};
use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::EndpointExt;
use serde_json::json;

pub struct Kind;
struct Prepared;

impl HandlerKind for Kind {
    fn name(&self) -> &'static str {
        "prometheus"
    }
    fn methods(&self) -> Option<&'static [HttpMethod]> {
        Some(&[HttpMethod::Get])
    }
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        ctx.no_data()?;
        ctx.options::<NoOptions>()?;
        Ok(Arc::new(Prepared))
    }
}

impl PreparedHandler for Prepared {
    fn endpoint(&self, rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        let rt = rt.clone();
        make_sync(move |_| {
            let families = rt.gather();
            let mut buf = Vec::with_capacity(16 * 1024);
            match TextEncoder::new().encode(&families, &mut buf) {
                Ok(()) => Response::builder()
                    .content_type(::prometheus::TEXT_FORMAT)
                    .body(buf),
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode metrics");
                    json_error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics")
                }
            }
        })
        .boxed()
    }
    fn doc(&self) -> OperationDoc {
        OperationDoc::single(
            200,
            "Prometheus text exposition format 0.0.4",
            "text/plain",
            json!({"type": "string"}),
        )
    }
}
