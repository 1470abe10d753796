//! The OpenAPI document and docs UI, built from the manifest at start-up.
//!
//! poem-openapi's `OpenApi` trait is static (no `self` in `meta()`), so the
//! operations of the document being built sit in a process-wide slot while
//! [`docs`] builds it (under a lock, once per start or reload) and are taken
//! out again; the served document is the bytes it produced.

use crate::manifest::auth::{Scheme, SchemeKind};
use crate::model::kinds::{OperationDoc, ParamIn};
use crate::model::Model;
use poem::http::Method;
use poem_openapi::registry::{
    MetaApi, MetaMediaType, MetaOperation, MetaOperationParam, MetaParamIn, MetaPath, MetaRequest,
    MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, MetaSecurityScheme, Registry,
};
use poem_openapi::{OpenApi, OpenApiService};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

struct DocumentedOperation {
    path: String,
    method: Method,
    summary: &'static str,
    description: &'static str,
    tags: Vec<&'static str>,
    doc: OperationDoc,
    /// The schemes it accepts, any one (empty: open), with the scopes a
    /// JWT needs.
    security: Vec<(&'static str, Vec<&'static str>)>,
}

/// What the document being built holds.
struct Built {
    paths: Vec<(String, Vec<DocumentedOperation>)>,
    /// The shared schemas of the operations (`components.schemas`), by name.
    components: Vec<(String, Json)>,
    /// `components.securitySchemes`, by name.
    schemes: Vec<(&'static str, Scheme)>,
}

/// The document being built; `None` between builds.
static BUILDING: Mutex<Option<Arc<Built>>> = Mutex::new(None);
/// Held for a whole build, so that two builds never share `BUILDING`.
static BUILD: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn building() -> Option<Arc<Built>> {
    lock(&BUILDING).clone()
}

/// The texts of the document being built, by placeholder index, and each
/// text's index (one placeholder per distinct text).
#[derive(Default)]
struct Texts {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

/// The texts of the build under way (emptied when it ends).
static TEXTS: Mutex<Option<Texts>> = Mutex::new(None);

/// What marks a placeholder: two noncharacters, which no manifest text
/// that reaches the document holds in this position with a number after it.
const MARK: &str = "\u{FFFF}telltale-text\u{FFFF}";

/// poem-openapi's metadata wants `&'static str`, but the manifest's texts
/// change with every reload: leaking them would grow the process by every
/// summary ever served. So each text of a build stands in the metadata as
/// a placeholder (`MARK` and an index, interned: there are never more
/// than the most distinct texts one build had), and [`fill`] puts the
/// texts into the serialized document. Memory is bounded by the live
/// manifest, not by the number of reloads.
fn leak(s: &str) -> &'static str {
    if s.is_empty() {
        // poem-openapi leaves out empty texts: so must a placeholder.
        return "";
    }
    let mut texts = lock(&TEXTS);
    let Some(texts) = texts.as_mut() else {
        // Outside a build (never the case for the document's texts).
        return super::http_metrics::intern(s.to_string());
    };
    let i = match texts.index.get(s) {
        Some(&i) => i,
        None => {
            texts.list.push(s.to_string());
            texts.index.insert(s.to_string(), texts.list.len() - 1);
            texts.list.len() - 1
        }
    };
    super::http_metrics::intern(format!("{MARK}{i}"))
}

/// `doc` (serialized JSON) with every placeholder string (a value or an
/// object key) replaced by its text as a JSON string. A placeholder is
/// a whole string token: a `"` that is not escaped, the mark, an index,
/// and the closing `"`. Numbers and all else stay byte for byte.
fn fill(doc: &str, texts: &[String]) -> String {
    let open = format!("\"{MARK}");
    let bytes = doc.as_bytes();
    let mut out = String::with_capacity(doc.len());
    let (mut last, mut from) = (0, 0);
    while let Some(off) = doc[from..].find(&open) {
        let at = from + off;
        let digits = at + open.len();
        let end = digits + doc[digits..].bytes().take_while(u8::is_ascii_digit).count();
        let escaped = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count()
            % 2
            == 1;
        let text = doc[digits..end]
            .parse::<usize>()
            .ok()
            .and_then(|i| texts.get(i));
        match text {
            Some(t) if !escaped && doc[end..].starts_with('"') => {
                out.push_str(&doc[last..at]);
                out.push_str(&serde_json::to_string(t).unwrap_or_default());
                last = end + 1;
                from = last;
            }
            _ => from = at + 1,
        }
    }
    out.push_str(&doc[last..]);
    out
}

/// The manifest's API, as poem-openapi sees it.
pub struct ManifestApi;

impl OpenApi for ManifestApi {
    fn meta() -> Vec<MetaApi> {
        let Some(built) = building() else {
            return Vec::new();
        };
        let paths = built
            .paths
            .iter()
            .map(|(path, ops)| MetaPath {
                path: path.clone(),
                operations: ops.iter().map(operation).collect(),
            })
            .collect();
        vec![MetaApi { paths }]
    }

    /// The shared schemas, and those of typed handlers' types (poem-openapi's own registry).
    fn register(registry: &mut Registry) {
        let Some(built) = building() else {
            return;
        };
        for (name, json) in &built.components {
            if let MetaSchemaRef::Inline(s) = schema(json) {
                registry.schemas.insert(name.clone(), *s);
            }
        }
        for (name, scheme) in &built.schemes {
            registry
                .security_schemes
                .insert(name, security_scheme(scheme));
        }
        for (_, ops) in &built.paths {
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

fn operation(op: &DocumentedOperation) -> MetaOperation {
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
    // Its security: one alternative per accepted scheme (empty: open), and
    // the 401 and 403 the guard answers.
    m.security = (op.security.iter())
        .map(|(name, scopes)| std::iter::once((*name, scopes.clone())).collect())
        .collect();
    if !op.security.is_empty() {
        for (status, description) in [
            (401, "No valid credential (see the WWW-Authenticate header)"),
            (403, "The caller lacks a required scope or claim"),
        ] {
            if !m
                .responses
                .responses
                .iter()
                .any(|r| r.status == Some(status))
            {
                m.responses.responses.push(MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json",
                        schema: error_schema_ref(),
                    }],
                    headers: Vec::new(),
                });
            }
        }
    }
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

fn untyped(op: &DocumentedOperation) -> MetaOperation {
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
    if let Some(name) = v
        .get("$ref")
        .and_then(Json::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return MetaSchemaRef::Reference(name.to_string());
    }
    let mut s = MetaSchema::new(v.get("type").and_then(Json::as_str).map_or("", schema_type));
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

/// A JSON-schema `type` (a closed set, so never a placeholder: poem-openapi
/// looks at it).
fn schema_type(t: &str) -> &'static str {
    const TYPES: [&str; 7] = [
        "string", "integer", "number", "boolean", "array", "object", "null",
    ];
    TYPES
        .into_iter()
        .find(|&k| k == t)
        .unwrap_or_else(|| leak(t))
}

/// The schema of telltale's JSON error body (a reference to the shared one).
pub fn error_schema_ref() -> MetaSchemaRef {
    MetaSchemaRef::Reference(crate::server::error::ERROR_SCHEMA.to_string())
}

/// The operations and shared schemas of `model`'s document.
fn operations(model: &Model) -> Built {
    let m = &model.manifest;
    let mut components: Vec<(String, Json)> = vec![(
        crate::server::error::ERROR_SCHEMA.to_string(),
        crate::server::error::error_schema(),
    )];
    let paths = {
        let mut named: std::collections::HashSet<String> =
            components.iter().map(|(n, _)| n.clone()).collect();
        let mut paths: Vec<(String, Vec<DocumentedOperation>)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (ep, h) in m.endpoints.iter().zip(&model.handlers) {
            let req = m.auth.requirement(ep);
            let op = DocumentedOperation {
                path: ep.path.clone(),
                method: ep.method.to_http(),
                summary: leak(&ep.summary),
                description: leak(&with_requirement(&ep.description, req)),
                tags: ep.tags.iter().map(|t| leak(t)).collect(),
                doc: h.doc(),
                // OpenAPI 3.0 lists scopes only for OAuth2 and OpenID
                // Connect schemes: a JWT's are in the description.
                security: (req.schemes.iter())
                    .map(|name| (leak(name), Vec::new()))
                    .collect(),
            };
            for (name, json) in &op.doc.components {
                if named.insert(name.clone()) {
                    components.push((name.clone(), json.clone()));
                }
            }
            match at.get(ep.path.as_str()) {
                Some(&k) => paths[k].1.push(op),
                None => {
                    at.insert(&ep.path, paths.len());
                    paths.push((ep.path.clone(), vec![op]));
                }
            }
        }
        paths
    };
    let schemes = (m.auth.schemes.iter())
        .map(|(name, s)| (leak(name), s.clone()))
        .collect();
    Built {
        paths,
        components,
        schemes,
    }
}

/// `description`, and what a JWT must carry when the requirement says.
fn with_requirement(description: &str, req: &crate::manifest::auth::Requirement) -> String {
    let mut needs = Vec::new();
    if !req.scopes.is_empty() {
        needs.push(format!("the scopes `{}`", req.scopes.join("`, `")));
    }
    if !req.claims.is_empty() {
        let claims: Vec<String> = (req.claims.iter())
            .map(|(k, v)| format!("`{k}` = `{v}`"))
            .collect();
        needs.push(format!("the claims {}", claims.join(", ")));
    }
    if needs.is_empty() {
        return description.to_string();
    }
    let note = format!("Requires a JWT with {}.", needs.join(" and "));
    if description.is_empty() {
        note
    } else {
        format!("{description}\n\n{note}")
    }
}

/// An `auth.schemes` entry as an OpenAPI security scheme.
fn security_scheme(s: &Scheme) -> MetaSecurityScheme {
    let (ty, name, key_in, scheme, bearer_format) = match s.kind {
        SchemeKind::ApiKey => (
            "apiKey",
            Some(leak(s.header_name())),
            Some("header"),
            None,
            None,
        ),
        SchemeKind::Bearer => ("http", None, None, Some("bearer"), None),
        SchemeKind::Jwt => ("http", None, None, Some("bearer"), Some("JWT")),
    };
    MetaSecurityScheme {
        ty,
        description: (!s.description.is_empty()).then(|| leak(&s.description)),
        name,
        key_in,
        scheme,
        bearer_format,
        flows: None,
        openid_connect_url: None,
    }
}

/// The poem-openapi service (spec + swagger UI) for `model`; it sees the
/// operations only while they are in `BUILDING` (see [`docs`]).
fn service(model: &Model) -> OpenApiService<ManifestApi, ()> {
    let m = &model.manifest;
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

/// An API with no operations: its Swagger UI page is the template the
/// real document is put into.
struct NoApi;

impl OpenApi for NoApi {
    fn meta() -> Vec<MetaApi> {
        Vec::new()
    }
    fn register(_: &mut Registry) {}
    fn add_routes(
        self,
        _route_table: &mut HashMap<String, HashMap<Method, poem::endpoint::BoxEndpoint<'static>>>,
    ) {
    }
}

/// The document (`/openapi.json`) and the docs UI (`/docs`), with the
/// document built and serialized once: poem-openapi's `spec_endpoint` and
/// `swagger_ui` would each build it (at 20,000 endpoints, a second each).
pub struct Docs {
    pub spec: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    pub ui: poem::endpoint::BoxEndpoint<'static, poem::Response>,
}

/// How poem-openapi's Swagger UI page is given the document, and how ours is.
const EMBEDDED: &str = "spec: spec,";
const FETCHED: &str = "url: \"/openapi.json\",";

pub fn docs(model: &Model) -> Docs {
    let _one_build = lock(&BUILD);
    *lock(&TEXTS) = Some(Texts::default());
    let built = Arc::new(operations(model));
    *lock(&BUILDING) = Some(built);
    let docs = docs_while_building(model);
    *lock(&BUILDING) = None;
    *lock(&TEXTS) = None;
    docs
}

/// The serialized document with its placeholders filled in.
fn document(service: &OpenApiService<ManifestApi, ()>) -> String {
    let spec = service.spec();
    let texts = lock(&TEXTS).take().map(|t| t.list).unwrap_or_default();
    *lock(&TEXTS) = Some(Texts::default());
    fill(&spec, &texts)
}

fn docs_while_building(model: &Model) -> Docs {
    use poem::EndpointExt;
    let service = service(model);
    let spec = document(&service);
    // The UI page of an empty document, with the real one put in its place.
    let empty = OpenApiService::new(NoApi, "", "");
    let template = empty.swagger_ui_html();
    let empty_spec = empty.spec();
    // The page fetches the document from `/openapi.json` rather than holding
    // a second copy of it (20,000 endpoints make a document of megabytes).
    let html = if template.contains(&empty_spec) && template.contains(EMBEDDED) {
        template
            .replacen(&empty_spec, "null", 1)
            .replacen(EMBEDDED, FETCHED, 1)
    } else {
        service.swagger_ui_html()
    };
    let body = bytes::Bytes::from(spec);
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(body.clone())
    })
    .boxed();
    let ui = DocsPage {
        page: bytes::Bytes::from(html),
        // The UI's OAuth2 redirect page does not depend on the document.
        receiver: empty.swagger_ui().map_to_response().boxed(),
    }
    .boxed();
    Docs { spec, ui }
}

/// `/docs`: the UI page, and `/docs/oauth-receiver.html`.
struct DocsPage {
    page: bytes::Bytes,
    receiver: poem::endpoint::BoxEndpoint<'static, poem::Response>,
}

impl poem::Endpoint for DocsPage {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        if req.uri().path().ends_with("/oauth-receiver.html") {
            return self.receiver.call(req).await;
        }
        Ok(poem::Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(self.page.clone()))
    }
}

#[cfg(test)]
mod tests;
