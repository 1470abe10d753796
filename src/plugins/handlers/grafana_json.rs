//! `grafana_json`: one route of the Grafana JSON datasource, chosen by
//! `options.op`. The handler only reads the body (within
//! `service.body_limit_bytes`, chunked or not) and hands it to
//! `crate::datasource`, which owns the protocol.

use super::typed::SchemaCheck;
use super::*;
use crate::server::datasource::{api, protocol, Live};
use crate::server::error::json_error;
use bytes::Bytes;
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::{EndpointExt, Request};
use serde::Deserialize;
use serde_json::{json, Value as Json};

pub struct GrafanaJsonHandler;

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
    fn method(self) -> HttpMethod {
        match self {
            Op::Health | Op::Dashboard => HttpMethod::Get,
            _ => HttpMethod::Post,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    op: Option<Op>,
}

struct PreparedGrafanaJson {
    op: Op,
    /// The body's schema, documented and checked (`None`: takes no body).
    body: Option<Arc<BodySchema>>,
}

/// A request body's JSON schema: the one `/openapi.json` shows, and the
/// one each body is checked against before it is parsed, so that the
/// document and the server cannot disagree.
struct BodySchema {
    json: Json,
    /// The documented schema, compiled.
    checked: SchemaCheck,
    /// An empty body is refused (else it counts as `{}`: Grafana sends
    /// none to some resource routes).
    required: bool,
}

/// Largest integer the body's integer fields take (2^53 - 1: exact in JSON).
const MAX_INT: u64 = (1 << 53) - 1;

/// A string schema taking only `values` (any string when there are none).
fn one_of(values: Vec<&str>, description: &str) -> Json {
    let mut v = json!({"type": "string", "description": description});
    if !values.is_empty() {
        v["enum"] = json!(values);
    }
    v
}

/// The body `op` takes: its schema, and whether it may be absent. Names
/// (targets, columns, keys) are enumerated from the manifest's datasource.
fn body_schema(op: Op, spec: &crate::model::datasource::Spec) -> Option<(Json, bool)> {
    fn with(first: &[&str], names: Vec<&str>) -> Vec<String> {
        first
            .iter()
            .copied()
            .chain(names)
            .map(String::from)
            .collect()
    }
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let targets = with(&[""], spec.names(None));
    let mut variables = with(&["", "*"], spec.names(Some("table")));
    for t in &spec.targets {
        if let crate::model::datasource::TargetBody::Table(tb) = &t.body {
            variables.extend(tb.columns.iter().map(|c| format!("{}.{}", t.name, c.name)));
        }
    }
    let annotation_targets = with(&[""], spec.names(Some("annotations")));
    let any = json!({"description": "any JSON value"});
    let time = json!({"anyOf": [
        {"type": "string", "format": "date-time", "description": "RFC 3339, UTC (`Z`)"},
        {"type": "integer", "minimum": -(MAX_INT as i64), "maximum": MAX_INT, "description": "Unix milliseconds"}
    ]});
    let range = json!({"type": "object", "required": ["from", "to"],
        "properties": {"from": time, "to": time}});
    let filter = json!({"type": "object", "required": ["key", "operator"], "properties": {
        "key": one_of(spec.keys(), "a key /tag-keys lists"),
        "operator": {"type": "string", "enum": ["=", "!=", "<", ">", "=|", "!=|"]},
        "value": {"type": "string"},
        "values": {"type": "array", "items": {"type": "string"}}}});
    let object_or_text = json!({"anyOf": [{"type": "object"}, {"type": "string"}]});
    let (schema, required) = match op {
        Op::Health | Op::Dashboard => return None,
        Op::Search => (
            json!({"type": "object", "properties": {"target": {"type": "string"}}}),
            false,
        ),
        Op::Metrics => (
            json!({"type": "object", "properties": {"metric": {"type": "string"}, "payload": any}}),
            false,
        ),
        // Tables have the payload option `columns`, annotations `events`.
        Op::MetricPayloadOptions => {
            let option = |kind: &str, name: &str| {
                json!({"type": "object", "required": ["metric", "name"], "properties": {
                    "metric": one_of(spec.names(Some(kind)), &format!("a {kind} target")),
                    "name": {"type": "string", "enum": [name]}, "payload": any}})
            };
            (
                json!({"anyOf": [option("table", "columns"), option("annotations", "events")]}),
                true,
            )
        }
        Op::Query => (
            json!({
                "type": "object",
                "required": ["targets"],
                "properties": {
                    "range": range,
                    "interval": {"type": "string"},
                    "intervalMs": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
                    "maxDataPoints": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
                    "targets": {"type": "array", "items": {"type": "object", "properties": {
                        "target": one_of(strs(&targets), "a name /search lists; absent or empty: skipped"),
                        "refId": {"type": "string"},
                        "type": {"type": "string", "enum": ["timeserie", "timeseries", "table"]},
                        "payload": object_or_text,
                        "hide": {"type": "boolean"}}}},
                    "filters": {"type": "array", "items": filter},
                    "adhocFilters": {"type": "array", "items": filter}
                }
            }),
            true,
        ),
        Op::Annotations => (
            json!({"type": "object", "properties": {"range": range, "annotation": {
                "type": "object", "properties": {
                    "query": one_of(strs(&annotation_targets), "an annotations target; absent or empty: every event"),
                    "name": {"type": "string"}}}}}),
            false,
        ),
        Op::Variable => (
            json!({"type": "object", "properties": {"payload": {"anyOf": [
                {"type": "object", "properties": {"target": one_of(strs(&variables), "")}},
                one_of(strs(&variables), "a table, `table.column`, or empty or `*` for the target names")]},
                "range": range}}),
            false,
        ),
        Op::TagKeys => (json!({"type": "object"}), false),
        Op::TagValues => (
            json!({"type": "object", "required": ["key"], "properties": {"key": one_of(spec.keys(), "a key /tag-keys lists")}}),
            true,
        ),
    };
    Some((schema, required))
}

impl HandlerKind for GrafanaJsonHandler {
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
        if ctx.endpoint.method != op.method() {
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
        let body = match body_schema(op, ctx.datasource) {
            None => None,
            Some((json, required)) => {
                let documented = crate::server::openapi::schema(&json);
                let registry = poem_openapi::registry::Registry::new();
                let checked = SchemaCheck::new(&documented, &registry).map_err(|e| {
                    Diagnostics(vec![ctx.source.error(
                        &ctx.at("options"),
                        format!("op {op:?}: the body's schema: {e}"),
                    )])
                })?;
                Some(Arc::new(BodySchema {
                    json,
                    checked,
                    required,
                }))
            }
        };
        Ok(Arc::new(PreparedGrafanaJson { op, body }))
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

/// The body as JSON, checked against `schema`: a 400 naming the field
/// when it is missing, malformed or of the wrong shape.
fn checked_body(bytes: &[u8], schema: &BodySchema) -> Result<Json, protocol::BadField> {
    if bytes.is_empty() {
        if schema.required {
            return Err(protocol::BadField::new(
                "body",
                "a JSON request body is required",
            ));
        }
        return Ok(Json::Object(Default::default()));
    }
    let v: Json = protocol::parse(bytes)?;
    schema.checked.check(&v).map_err(|(field, msg)| {
        protocol::BadField::new(if field.is_empty() { "body" } else { &field }, &msg)
    })?;
    Ok(v)
}

async fn handle(
    op: Op,
    schema: Option<&BodySchema>,
    live: &Live,
    mut req: Request,
    limit: usize,
) -> Response {
    // GETs take no body (`Dashboard` has its own endpoint and never gets here).
    let Some(schema) = schema else {
        return ok(api::health(live));
    };
    let bytes = match read_body(&mut req, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // A query's counts first, on the typed body (cheap): 40k targets in a
    // 1 MB body are refused before they are built as a JSON tree.
    if op == Op::Query && !bytes.is_empty() {
        if let Ok(counts) = protocol::parse::<protocol::QueryCounts>(&bytes) {
            if let Err(e) = api::query_limits(live, &counts) {
                return e.response();
            }
        }
    }
    let v = match checked_body(&bytes, schema) {
        Ok(v) => v,
        Err(e) => return e.response(),
    };
    fn body<T: serde::de::DeserializeOwned>(v: &Json) -> Result<T, protocol::BadField> {
        protocol::parse_value(v, "")
    }
    let answer = match op {
        Op::Health | Op::Dashboard => Ok(api::health(live)),
        Op::Search => body(&v).map(|r| api::search(live, r)),
        Op::Metrics => body(&v).map(|r| api::metrics(live, r)),
        Op::MetricPayloadOptions => body(&v).and_then(|r| api::payload_options(live, r)),
        Op::Query => body(&v).and_then(|r| api::query(live, r)),
        Op::Annotations => body(&v).and_then(|r| api::annotations(live, r)),
        Op::Variable => body(&v).and_then(|r| api::variable(live, r)),
        Op::TagKeys => body::<protocol::TagKeysRequest>(&v).map(|_| api::tag_keys(live)),
        Op::TagValues => body(&v).and_then(|r| api::tag_values(live, r)),
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

/// Bodies `/query` refuses (a 400).
const MALFORMED: &[&str] = &[
    "{\"targets\": [",
    "{\"targets\": {\"target\": \"x\"}}",
    "{\"targets\": [{\"target\": 42}]}",
    "not json at all",
    "{\"range\": {\"from\": \"yesterday\", \"to\": \"now\"}, \"targets\": []}",
    "{}",
];

/// A valid body for `op`, from the datasource's target names and its first
/// table (name, first column); `None` when there is nothing to ask.
fn chaos_body(
    op: Op,
    targets: &[String],
    first_table: Option<&(String, Option<String>)>,
    draw: &mut dyn Draw,
) -> Option<String> {
    let v = match op {
        Op::Search => json!({"target": ""}),
        Op::Metrics => json!({}),
        Op::TagKeys => json!({}),
        Op::Variable => json!({"payload": {"target": ""}}),
        Op::Annotations => json!({"annotation": {"name": "chaos", "query": ""}}),
        Op::MetricPayloadOptions => {
            let (t, _) = first_table?;
            json!({"metric": t, "name": "columns", "payload": {}})
        }
        Op::TagValues => {
            let (_, column) = first_table?;
            json!({"key": column.as_ref()?})
        }
        Op::Query => {
            if targets.is_empty() {
                return None;
            }
            let t = &targets[draw.below(targets.len())];
            let to = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            json!({
                "range": {"from": to - 5 * 60_000, "to": to},
                "interval": "5s", "intervalMs": 5000, "maxDataPoints": 300,
                "targets": [{"target": t, "refId": "A"}]
            })
        }
        Op::Health | Op::Dashboard => return None,
    };
    Some(v.to_string())
}

impl PreparedHandler for PreparedGrafanaJson {
    fn roles(&self) -> &[crate::model::contrib::Role] {
        &[crate::model::contrib::Role::DatasourceRoute]
    }
    /// GETs as any endpoint's; a POST with a valid body for its op (and,
    /// for `query`, malformed ones).
    fn chaos(&self, endpoint: &Endpoint, model: &Model) -> ChaosTraffic {
        if endpoint.method != HttpMethod::Post {
            return ChaosTraffic::safe_gets(endpoint.method);
        }
        let spec = &model.datasource;
        let targets: Vec<String> = spec.targets.iter().map(|t| t.name.clone()).collect();
        let first_table = spec.targets.iter().find_map(|t| match &t.body {
            crate::model::datasource::TargetBody::Table(tb) => {
                Some((t.name.clone(), tb.columns.first().map(|c| c.name.clone())))
            }
            _ => None,
        });
        let op = self.op;
        let body: BodyFn =
            Arc::new(move |draw| chaos_body(op, &targets, first_table.as_ref(), draw));
        let traffic = ChaosTraffic {
            good: true,
            body: Some(body),
            bad: Vec::new(),
        };
        if op != Op::Query {
            return traffic;
        }
        traffic.with_bad(BadRequests {
            kind: BadKind::MalformedJson,
            status: 400,
            variants: (MALFORMED.iter())
                .map(|b| BadVariant {
                    query: None,
                    body: Some(b),
                })
                .collect(),
        })
    }
    fn endpoint(&self, rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        if self.op == Op::Dashboard {
            return dashboard(rt);
        }
        let op = self.op;
        let schema = self.body.clone();
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
            let (live, schema) = (live.clone(), schema.clone());
            async move { handle(op, schema.as_deref(), &live, req, limit).await }
        })
        .boxed()
    }

    fn doc(&self) -> OperationDoc {
        let any = json!({"type": "object"});
        let list = json!({"type": "array", "items": {"type": "object"}});
        let response = match self.op {
            Op::Health => any,
            Op::Dashboard => {
                json!({"type": "object", "description": "Grafana dashboard JSON, as `telltale render` writes it"})
            }
            Op::Search => json!({"type": "array", "items": {"type": "string"}}),
            _ => list,
        };
        let mut doc = OperationDoc::json(response);
        doc.request = self.body.as_ref().map(|b| b.json.clone());
        doc.request_required = self.body.as_ref().is_some_and(|b| b.required);
        if !matches!(self.op, Op::Health | Op::Dashboard) {
            let err = crate::server::error::error_ref();
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
