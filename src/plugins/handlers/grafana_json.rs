//! `grafana_json`: one route of the Grafana JSON datasource, chosen by
//! `options.op`. The handler only reads the body (within
//! `service.body_limit_bytes`, chunked or not) and hands it to
//! `crate::datasource`, which owns the protocol.

use super::*;
use crate::server::datasource::{api, protocol, Live};
use crate::server::error::json_error;
use bytes::Bytes;
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::{EndpointExt, Request};
use serde::Deserialize;
use serde_json::json;

pub struct Kind;

/// What the route answers.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    /// `GET`: the connection test (`/` for simpod, `/health` for the seed).
    Health,
    /// `POST /search` (SimpleJSON).
    Search,
    /// `POST /metrics` (simpod).
    Metrics,
    /// `POST /metric-payload-options` (simpod).
    MetricPayloadOptions,
    /// `POST /query` (both).
    Query,
    /// `POST /annotations` (SimpleJSON).
    Annotations,
    /// `POST /variable` (simpod).
    Variable,
    /// `POST /tag-keys` (both).
    TagKeys,
    /// `POST /tag-values` (both).
    TagValues,
    /// `GET`: the dashboard JSON exactly as `render` writes it.
    Dashboard,
}

const OPS: &str = "health, search, metrics, metric_payload_options, query, annotations, variable, tag_keys, tag_values, dashboard";

impl Op {
    fn method(self) -> &'static str {
        match self {
            Op::Health | Op::Dashboard => "GET",
            _ => "POST",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    op: Option<Op>,
}

struct Prepared {
    op: Op,
}

impl HandlerKind for Kind {
    fn name(&self) -> &'static str {
        "grafana_json"
    }
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        ctx.no_data()?;
        let o: Options = ctx.options()?;
        let Some(op) = o.op else {
            return Err(Diagnostics(vec![ctx.source.error(
                &ctx.at("options"),
                format!(
                    "handler kind \"grafana_json\" needs `options: {{ op: ... }}` (one of: {OPS})"
                ),
            )]));
        };
        if !ctx.endpoint.method.eq_ignore_ascii_case(op.method()) {
            return Err(Diagnostics(vec![ctx.source.error(
                &ctx.at("method"),
                format!(
                    "op {:?} is served with {}, not {}",
                    format!("{op:?}"),
                    op.method(),
                    ctx.endpoint.method
                ),
            )]));
        }
        Ok(Arc::new(Prepared { op }))
    }
}

/// Reads the whole body, refusing more than `limit` bytes even without a Content-Length.
pub(super) async fn read_body(req: &mut Request, limit: usize) -> Result<Bytes, Response> {
    req.take_body()
        .into_bytes_limit(limit)
        .await
        .map_err(|e| match e {
            ReadBodyError::PayloadTooLarge => json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body exceeds the limit of {limit} bytes"),
            ),
            other => json_error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {other}"),
            ),
        })
}

fn ok(v: serde_json::Value) -> Response {
    json_bytes(StatusCode::OK, serde_json::to_vec(&v).unwrap_or_default())
}

async fn handle(op: Op, live: &Live, mut req: Request, limit: usize) -> Response {
    // GETs take no body (`Dashboard` has its own endpoint and never gets here).
    if matches!(op, Op::Health | Op::Dashboard) {
        return ok(api::health(live));
    }
    let body = match read_body(&mut req, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let answer = match op {
        Op::Health | Op::Dashboard => Ok(api::health(live)),
        Op::Search => protocol::parse(&body).map(|r| api::search(live, r)),
        Op::Metrics => protocol::parse(&body).map(|r| api::metrics(live, r)),
        Op::MetricPayloadOptions => {
            protocol::parse(&body).and_then(|r| api::payload_options(live, r))
        }
        Op::Query => protocol::parse(&body).and_then(|r| api::query(live, r)),
        Op::Annotations => protocol::parse(&body).and_then(|r| api::annotations(live, r)),
        Op::Variable => protocol::parse(&body).and_then(|r| api::variable(live, r)),
        Op::TagKeys => {
            protocol::parse::<protocol::TagKeysRequest>(&body).map(|_| api::tag_keys(live))
        }
        Op::TagValues => protocol::parse(&body).and_then(|r| api::tag_values(live, r)),
    };
    match answer {
        Ok(v) => ok(v),
        Err(e) => e.response(),
    }
}

/// The rendered dashboard, built once at start-up: the same bytes as
/// `generated/grafana/dashboards/<uid>.json` for this manifest.
fn dashboard(rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
    let rendered = crate::render::render_dashboard(rt.model()).map(Bytes::from);
    if let Err(e) = &rendered {
        tracing::error!(error = %e, "cannot render the dashboard; /grafana/dashboard will answer 500");
    }
    poem::endpoint::make_sync(move |_| match &rendered {
        Ok(body) => json_bytes(StatusCode::OK, body.clone()),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot render the dashboard: {e}"),
        ),
    })
    .boxed()
}

impl PreparedHandler for Prepared {
    fn endpoint(&self, rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        if self.op == Op::Dashboard {
            return dashboard(rt);
        }
        let op = self.op;
        let limit =
            usize::try_from(rt.model().manifest.service.body_limit_bytes).unwrap_or(usize::MAX);
        // A server that runs no JSON datasource store (never telltale's own).
        let Some(live) = rt.get::<Arc<Live>>().cloned() else {
            return poem::endpoint::make_sync(|_| {
                json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this server runs no Grafana JSON datasource",
                )
            })
            .boxed();
        };
        poem::endpoint::make(move |req: Request| {
            let live = live.clone();
            async move { handle(op, &live, req, limit).await }
        })
        .boxed()
    }

    fn doc(&self) -> OperationDoc {
        let any = json!({"type": "object"});
        let list = json!({"type": "array", "items": {"type": "object"}});
        let (request, response) = match self.op {
            Op::Health => (None, any.clone()),
            Op::Dashboard => (
                None,
                json!({"type": "object", "description": "Grafana dashboard JSON, as `telltale render` writes it"}),
            ),
            Op::Search => (
                Some(json!({"type": "object", "properties": {"target": {"type": "string"}}})),
                json!({"type": "array", "items": {"type": "string"}}),
            ),
            Op::Query => (
                Some(json!({
                    "type": "object",
                    "required": ["targets"],
                    "properties": {
                        "range": {"type": "object", "properties": {
                            "from": {"type": "string", "format": "date-time"},
                            "to": {"type": "string", "format": "date-time"}}},
                        "interval": {"type": "string"},
                        "intervalMs": {"type": "integer", "minimum": 0},
                        "maxDataPoints": {"type": "integer", "minimum": 1},
                        "targets": {"type": "array", "items": {"type": "object", "properties": {
                            "target": {"type": "string"},
                            "refId": {"type": "string"},
                            "type": {"type": "string", "enum": ["timeserie", "timeseries", "table"]},
                            "payload": {"type": "object"}}}},
                        "filters": list.clone(),
                        "adhocFilters": list.clone()
                    }
                })),
                list.clone(),
            ),
            _ => (Some(any.clone()), list.clone()),
        };
        let mut doc = OperationDoc::json(response);
        doc.request = request;
        if !matches!(self.op, Op::Health | Op::Dashboard) {
            let err = crate::server::error::error_schema();
            doc.responses.push((
                400,
                "Malformed body, wrong shape or unknown target (the body names the field)".into(),
                "application/json",
                err.clone(),
            ));
            doc.responses.push((
                413,
                "Body over service.body_limit_bytes".into(),
                "application/json",
                err,
            ));
        }
        doc
    }
}
