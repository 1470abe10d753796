//! The OpenAPI document and docs UI, built from the manifest at start-up.
//!
//! poem-openapi's `OpenApi` trait is static (no `self` in `meta()`), so the
//! operations live in a process-wide `OnceLock`, filled once from the model.

use crate::model::kinds::{OperationDoc, ParamIn};
use crate::model::Model;
use poem::http::Method;
use poem_openapi::registry::{
    MetaApi, MetaMediaType, MetaOperation, MetaOperationParam, MetaParamIn, MetaPath, MetaRequest,
    MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::{OpenApi, OpenApiService};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::OnceLock;

struct Op {
    path: String,
    method: Method,
    summary: &'static str,
    description: &'static str,
    tags: Vec<&'static str>,
    doc: OperationDoc,
}

static OPS: OnceLock<Vec<(String, Vec<Op>)>> = OnceLock::new();

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// The manifest's API, as poem-openapi sees it.
pub struct ManifestApi;

impl OpenApi for ManifestApi {
    fn meta() -> Vec<MetaApi> {
        let Some(paths) = OPS.get() else {
            return Vec::new();
        };
        let paths = paths
            .iter()
            .map(|(path, ops)| MetaPath {
                path: path.clone(),
                operations: ops.iter().map(operation).collect(),
            })
            .collect();
        vec![MetaApi { paths }]
    }

    /// The schemas of typed handlers' types (poem-openapi's own registry).
    fn register(registry: &mut Registry) {
        for (_, ops) in OPS.get().into_iter().flatten() {
            for op in ops {
                if let Some(t) = &op.doc.typed {
                    (t.0)(registry);
                }
            }
        }
    }

    /// Routes are served by the manifest's own route table, not by poem-openapi.
    fn add_routes(
        self,
        _route_table: &mut HashMap<String, HashMap<Method, poem::endpoint::BoxEndpoint<'static>>>,
    ) {
    }
}

/// The `{name}` segments of a route template.
fn template_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn operation(op: &Op) -> MetaOperation {
    let mut m = if let Some(t) = &op.doc.typed {
        let t = (t.0)(&mut Registry::new());
        let mut m = untyped(op);
        m.params = t.params;
        m.request = t.request;
        m.responses = t.responses;
        m
    } else {
        untyped(op)
    };
    // Every template parameter is declared (a string unless the handler typed it).
    for name in template_params(&op.path) {
        if !m
            .params
            .iter()
            .any(|p| p.name == name && p.in_type == MetaParamIn::Path)
        {
            m.params.push(MetaOperationParam {
                name: name.to_string(),
                schema: schema(&serde_json::json!({"type": "string"})),
                in_type: MetaParamIn::Path,
                description: None,
                required: true,
                deprecated: false,
                explode: true,
                style: None,
            });
        }
    }
    m
}

fn untyped(op: &Op) -> MetaOperation {
    let d = &op.doc;
    MetaOperation {
        method: op.method.clone(),
        tags: op.tags.clone(),
        summary: (!op.summary.is_empty()).then_some(op.summary),
        description: (!op.description.is_empty()).then_some(op.description),
        external_docs: None,
        params: d
            .params
            .iter()
            .map(|p| MetaOperationParam {
                name: p.name.clone(),
                schema: schema(&p.schema),
                in_type: match p.location {
                    ParamIn::Query => MetaParamIn::Query,
                    ParamIn::Path => MetaParamIn::Path,
                },
                description: (!p.description.is_empty()).then(|| p.description.clone()),
                required: p.required,
                deprecated: false,
                explode: true,
                style: None,
            })
            .collect(),
        request: d.request.as_ref().map(|s| MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: schema(s),
            }],
            required: d.request_required,
        }),
        responses: MetaResponses {
            responses: d
                .responses
                .iter()
                .map(|(status, desc, ct, s)| MetaResponse {
                    description: leak(desc),
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: ct,
                        schema: schema(s),
                    }],
                    headers: Vec::new(),
                })
                .collect(),
        },
        deprecated: false,
        security: Vec::new(),
        operation_id: None,
        code_samples: Vec::new(),
    }
}

/// A JSON-schema value → poem-openapi's schema model (the subset we emit,
/// which is also the subset the handlers check bodies against).
pub(crate) fn schema(v: &Json) -> MetaSchemaRef {
    let mut s = MetaSchema::new(v.get("type").and_then(Json::as_str).map(leak).unwrap_or(""));
    s.format = v.get("format").and_then(Json::as_str).map(leak);
    s.description = v.get("description").and_then(Json::as_str).map(leak);
    s.default = v.get("default").cloned();
    s.minimum = v.get("minimum").and_then(Json::as_f64);
    s.maximum = v.get("maximum").and_then(Json::as_f64);
    if let Some(Json::Array(e)) = v.get("enum") {
        s.enum_items = e.clone();
    }
    if let Some(Json::Array(r)) = v.get("required") {
        s.required = r.iter().filter_map(Json::as_str).map(leak).collect();
    }
    if let Some(Json::Object(props)) = v.get("properties") {
        s.properties = props.iter().map(|(k, p)| (leak(k), schema(p))).collect();
    }
    if let Some(items) = v.get("items") {
        s.items = Some(Box::new(schema(items)));
    }
    if let Some(Json::Array(any)) = v.get("anyOf") {
        s.any_of = any.iter().map(schema).collect();
    }
    let size = |k: &str| v.get(k).and_then(Json::as_u64).map(|n| n as usize);
    s.max_items = size("maxItems");
    s.min_length = size("minLength");
    s.max_length = size("maxLength");
    s.nullable = v.get("nullable").and_then(Json::as_bool).unwrap_or(false);
    MetaSchemaRef::Inline(Box::new(s))
}

/// The schema of telltale's JSON error body.
pub fn error_schema_ref() -> MetaSchemaRef {
    schema(&crate::server::error::error_schema())
}

/// Builds the poem-openapi service (spec + swagger UI) for `model`.
pub fn service(model: &Model) -> OpenApiService<ManifestApi, ()> {
    let m = &model.manifest;
    OPS.get_or_init(|| {
        let mut paths: Vec<(String, Vec<Op>)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (ep, h) in m.endpoints.iter().zip(&model.handlers) {
            let op = Op {
                path: ep.path.clone(),
                method: Method::from_bytes(ep.method.to_ascii_uppercase().as_bytes())
                    .unwrap_or(Method::GET),
                summary: leak(&ep.summary),
                description: leak(&ep.description),
                tags: ep.tags.iter().map(|t| leak(t)).collect(),
                doc: h.doc(),
            };
            match at.get(ep.path.as_str()) {
                Some(&k) => paths[k].1.push(op),
                None => {
                    at.insert(&ep.path, paths.len());
                    paths.push((ep.path.clone(), vec![op]));
                }
            }
        }
        paths
    });
    let mut svc = OpenApiService::new(
        ManifestApi,
        m.service.name.clone(),
        m.service.version.clone(),
    );
    if !m.service.description.is_empty() {
        svc = svc.description(m.service.description.clone());
    }
    svc
}
