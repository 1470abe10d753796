//! Endpoint handler kinds (`endpoints[].handler`).
//!
//! A kind is a config parser plus a `prepare()` that checks options and loads
//! data (this runs for `validate` too, so bad options fail there), and the
//! prepared handler builds the poem endpoint once the server is assembled.

use crate::manifest::{Diagnostics, Endpoint, Manifest, Source};
use crate::server::Runtime;
use poem::endpoint::BoxEndpoint;
use poem::Response;
use serde_json::Value as Json;
use std::sync::Arc;

mod collection;
mod fault;
mod grafana_json;
mod info;
mod probe;
mod prometheus;
pub mod typed;

pub use collection::load_items;

/// The built-in kinds, as [`crate::plugins::Registry::builtin`] registers them.
pub(crate) fn builtin() -> Vec<Arc<dyn HandlerKind>> {
    vec![
        Arc::new(collection::Kind),
        Arc::new(info::Kind),
        Arc::new(probe::Kind),
        Arc::new(fault::Kind),
        Arc::new(prometheus::Kind),
        Arc::new(grafana_json::Kind),
    ]
}

/// What a kind sees while preparing one endpoint.
pub struct HandlerCtx<'a> {
    pub index: usize,
    pub endpoint: &'a Endpoint,
    pub manifest: &'a Manifest,
    pub source: &'a Source,
    /// The `source: app` metrics, prepared before any handler.
    pub apps: &'a crate::plugins::metrics::app::AppFamilies,
}

impl HandlerCtx<'_> {
    /// `endpoints[i].<field>`, for diagnostics.
    pub fn at(&self, field: &str) -> String {
        format!("endpoints[{}].{field}", self.index)
    }
    /// Parses `options:` as `T` (unknown keys are errors).
    pub fn options<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Diagnostics> {
        let mut errs = Diagnostics::default();
        self.source
            .options(&self.endpoint.options, &self.at("options"), &mut errs)
            .ok_or(errs)
    }
    /// Fails when the kind takes no `data:` file but one was given.
    pub fn no_data(&self) -> Result<(), Diagnostics> {
        match self.endpoint.data {
            Some(_) => Err(Diagnostics(vec![self.source.error(
                &self.at("data"),
                format!(
                    "handler kind {:?} takes no data file",
                    self.endpoint.handler
                ),
            )])),
            None => Ok(()),
        }
    }
}

/// A handler kind. A user's typed handlers implement [`crate::Handler`]
/// instead, which [`crate::App::handler`] adapts to this trait.
pub trait HandlerKind: Send + Sync {
    /// The name used in `endpoints[].handler`.
    fn name(&self) -> &'static str;
    /// Checks options and loads data.
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics>;
}

/// A validated endpoint, ready to serve.
pub trait PreparedHandler: Send + Sync {
    /// The poem endpoint; called once at start-up.
    fn endpoint(&self, rt: &Arc<Runtime>) -> BoxEndpoint<'static, Response>;
    /// What the OpenAPI document says about it.
    fn doc(&self) -> OperationDoc;
    /// Every status it documents (the HTTP families' closed `status` set).
    fn statuses(&self) -> Vec<u16> {
        let d = self.doc();
        match &d.typed {
            Some(t) => (t.0)(&mut poem_openapi::registry::Registry::new())
                .responses
                .responses
                .iter()
                .filter_map(|r| r.status)
                .collect(),
            None => d.responses.iter().map(|r| r.0).collect(),
        }
    }
}

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    Query,
    Path,
}

/// One documented parameter.
#[derive(Debug, Clone)]
pub struct ParamDoc {
    pub name: String,
    pub location: ParamIn,
    /// JSON schema of the value.
    pub schema: Json,
    pub required: bool,
    pub description: String,
}

/// OpenAPI facts of one operation.
#[derive(Debug, Clone)]
pub struct OperationDoc {
    pub params: Vec<ParamDoc>,
    /// JSON schema of the request body, if it takes one.
    pub request: Option<Json>,
    /// (status, description, content type, JSON schema) of each response.
    /// The first is the success status the route's series start at.
    pub responses: Vec<(u16, String, &'static str, Json)>,
    /// A typed handler's operation from poem-openapi's own types; when set,
    /// it replaces `params`, `request` and `responses` in the document.
    pub typed: Option<TypedDocFn>,
}

/// A typed operation: parameters, body and responses as poem-openapi
/// builds them from the handler's types.
pub struct TypedDoc {
    pub params: Vec<poem_openapi::registry::MetaOperationParam>,
    pub request: Option<poem_openapi::registry::MetaRequest>,
    pub responses: poem_openapi::registry::MetaResponses,
}

/// Makes a [`TypedDoc`], registering its schemas in the given registry.
#[derive(Clone)]
pub struct TypedDocFn(
    pub Arc<dyn Fn(&mut poem_openapi::registry::Registry) -> TypedDoc + Send + Sync>,
);

impl std::fmt::Debug for TypedDocFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypedDocFn")
    }
}

impl OperationDoc {
    /// A JSON operation with one success response.
    pub fn json(schema: Json) -> Self {
        Self::single(200, "Success", "application/json", schema)
    }

    /// An operation with exactly one documented response.
    pub fn single(
        status: u16,
        description: &str,
        content_type: &'static str,
        schema: Json,
    ) -> Self {
        OperationDoc {
            params: Vec::new(),
            request: None,
            responses: vec![(status, description.into(), content_type, schema)],
            typed: None,
        }
    }
}

/// A JSON response with pre-serialized bytes.
pub fn json_bytes(status: poem::http::StatusCode, body: impl Into<poem::Body>) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body)
}
