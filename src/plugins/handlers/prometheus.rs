//! `prometheus`: the metrics registry in the Prometheus text format, or in
//! OpenMetrics 1.0 with exemplars when the scraper's `Accept` asks for it
//! (`server::openmetrics`; Prometheus asks by default). Without that
//! header the answer is the `prometheus` crate's text encoding, as before.

use super::info::NoOptions;
use super::*;
use crate::model::exemplars::ExemplarIndex;
use crate::server::error::json_error;
use crate::server::http_metrics::HttpMetrics;
use crate::server::openmetrics;
use ::prometheus::proto::MetricFamily;
use ::prometheus::{Encoder, TextEncoder};
use poem::endpoint::make_sync;
use poem::http::header;
use poem::http::StatusCode;
use poem::EndpointExt;
use serde_json::json;

pub struct PrometheusHandler;
struct PreparedPrometheus;

impl HandlerKind for PrometheusHandler {
    fn name(&self) -> &'static str {
        "prometheus"
    }
    fn methods(&self) -> Option<&'static [HttpMethod]> {
        Some(&[HttpMethod::Get])
    }
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        ctx.no_data()?;
        ctx.options::<NoOptions>()?;
        Ok(Arc::new(PreparedPrometheus))
    }
}

impl PreparedHandler for PreparedPrometheus {
    fn roles(&self) -> &[crate::model::contrib::Role] {
        &[crate::model::contrib::Role::MetricsEndpoint]
    }
    fn endpoint(&self, rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        let rt = rt.clone();
        make_sync(move |req| {
            let families = rt.gather();
            let om = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(openmetrics::wanted);
            if om {
                let index = exemplars(&rt);
                Response::builder()
                    .content_type(openmetrics::CONTENT_TYPE)
                    .body(openmetrics::encode(&families, &index))
            } else {
                text(&families)
            }
        })
        .boxed()
    }
    fn doc(&self) -> OperationDoc {
        OperationDoc::single(
            200,
            "Prometheus text exposition format 0.0.4; OpenMetrics 1.0 with exemplars \
             when Accept asks for application/openmetrics-text",
            "text/plain",
            json!({"type": "string"}),
        )
    }
}

/// The text exposition format 0.0.4, as the `prometheus` crate encodes it.
fn text(families: &[MetricFamily]) -> Response {
    let mut buf = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(families, &mut buf) {
        Ok(()) => Response::builder()
            .content_type(::prometheus::TEXT_FORMAT)
            .body(buf),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics")
        }
    }
}

/// Every exemplar the server holds: the HTTP families' and the `source:
/// app` metrics'.
fn exemplars(rt: &Arc<dyn Host>) -> ExemplarIndex {
    let mut index = ExemplarIndex::default();
    if let Some(http) = rt.get::<HttpMetrics>() {
        http.exemplars(&mut index);
    }
    for f in rt.model().sources.iter().filter_map(|s| s.app_family()) {
        f.exemplars(&mut index);
    }
    index
}
