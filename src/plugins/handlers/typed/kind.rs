//! A [`Handler`] as a [`HandlerKind`]: its preparation during `validate`
//! (options, [`Handler::setup`], the schemas its input is checked against),
//! its documented operation, and the endpoint that parses a request's input
//! and calls it.

use super::{
    Handler, Input, InputError, Params, Plan, RequestBody, RequestContext, SchemaCheck, Setup,
};
use crate::manifest::Diagnostics;
use crate::plugins::handlers::{
    HandlerCtx, HandlerKind, Host, OperationDoc, PreparedHandler, TypedDoc,
};
use crate::server::error::json_error;
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::registry::{
    MetaMediaType, MetaParamIn, MetaRequest, MetaResponse, MetaResponses, Registry,
};
use poem_openapi::ApiResponse;
use serde_json::Value as Json;
use std::sync::Arc;

/// A [`Handler`] as a [`HandlerKind`], for the registry.
pub struct TypedHandlerKind<H>(Arc<H>);

impl<H: Handler> TypedHandlerKind<H> {
    pub fn new(handler: H) -> Self {
        TypedHandlerKind(Arc::new(handler))
    }
}

impl<H: Handler> HandlerKind for TypedHandlerKind<H> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        ctx.no_data()?;
        let options: H::Options = ctx.options()?;
        let mut setup = Setup {
            path: &ctx.endpoint.path,
            method: ctx.endpoint.method.as_str().to_string(),
            apps: ctx.apps,
            registry: ctx.registry,
            declared: &ctx.manifest.dependencies,
            prepared: ctx.dependencies,
            client_errors: Default::default(),
        };
        let result = self.0.setup(options, &mut setup);
        let mut errors = setup.client_errors.take();
        let state = match result {
            Ok(state) => Some(state),
            Err(e) if e.not_started() => None,
            Err(e) => {
                if !errors.contains(&e.message) {
                    errors.insert(0, e.message);
                }
                None
            }
        };
        if !errors.is_empty() {
            return Err(Diagnostics(
                errors
                    .iter()
                    .map(|e| {
                        ctx.source.error(
                            &ctx.at("handler"),
                            format!("handler kind {:?}: {e}", self.0.name()),
                        )
                    })
                    .collect(),
            ));
        }
        // The schemas the input is checked against, registered once.
        let mut registry = Registry::new();
        H::Path::describe(&mut registry, MetaParamIn::Path);
        H::Query::describe(&mut registry, MetaParamIn::Query);
        let body = H::Body::describe(&mut registry);
        H::Response::register(&mut registry);
        // Each schema compiled once, here; a request runs the compiled check.
        let compiled = (|| {
            let body = match &body {
                Some(r) => Some(SchemaCheck::new(r, &registry).map_err(|e| ("body", e))?),
                None => None,
            };
            let path = H::Path::plan(&registry).map_err(|e| ("path parameters", e))?;
            let query = H::Query::plan(&registry).map_err(|e| ("query parameters", e))?;
            Ok::<_, (&str, String)>((body, path, query))
        })();
        let (body_check, path_plan, query_plan) = compiled.map_err(|(what, e)| {
            Diagnostics(vec![ctx.source.error(
                &ctx.at("handler"),
                format!("handler kind {:?}: its {what}: {e}", self.0.name()),
            )])
        })?;
        Ok(Arc::new(PreparedTypedHandler::<H> {
            shared: Arc::new(TypedHandlerShared {
                handler: self.0.clone(),
                state,
                has_body: body.is_some(),
                body_check,
                path_plan,
                query_plan,
            }),
        }))
    }
}

struct TypedHandlerShared<H: Handler> {
    handler: Arc<H>,
    /// `None` only where the start hooks did not run (`validate`), where no
    /// request is served.
    state: Option<H::State>,
    /// `H::Body` is a JSON body (not [`Empty`]).
    has_body: bool,
    /// The body's schema, compiled.
    body_check: Option<SchemaCheck>,
    path_plan: Plan,
    query_plan: Plan,
}

struct PreparedTypedHandler<H: Handler> {
    shared: Arc<TypedHandlerShared<H>>,
}

/// The documented operation of `H`: parameters, body and responses, plus
/// telltale's own JSON errors for refused input.
fn typed_doc<H: Handler>(registry: &mut Registry) -> TypedDoc {
    let mut params = H::Path::describe(registry, MetaParamIn::Path);
    params.extend(H::Query::describe(registry, MetaParamIn::Query));
    let request = H::Body::describe(registry).map(|schema| MetaRequest {
        description: None,
        content: vec![MetaMediaType {
            content_type: "application/json",
            schema,
        }],
        required: true,
    });
    H::Response::register(registry);
    let mut responses = H::Response::meta();
    let error = crate::server::openapi::error_schema_ref;
    let has = |r: &MetaResponses, s: u16| r.responses.iter().any(|x| x.status == Some(s));
    if !has(&responses, 400) {
        responses.responses.push(MetaResponse {
            description: "Bad request: a parameter or the JSON body is malformed",
            status: Some(400),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: error(),
            }],
            headers: Vec::new(),
        });
    }
    if request.is_some() && !has(&responses, 422) {
        responses.responses.push(MetaResponse {
            description: "The JSON body does not match its schema (`field` names where)",
            status: Some(422),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: error(),
            }],
            headers: Vec::new(),
        });
    }
    TypedDoc {
        params,
        request,
        responses,
    }
}

impl<H: Handler> PreparedHandler for PreparedTypedHandler<H> {
    fn endpoint(&self, rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        let limit =
            usize::try_from(rt.model().manifest.service.body_limit_bytes).unwrap_or(usize::MAX);
        TypedEndpoint {
            shared: self.shared.clone(),
            limit,
        }
        .boxed()
    }

    fn doc(&self) -> OperationDoc {
        let first = H::Response::meta()
            .responses
            .first()
            .and_then(|r| r.status)
            .unwrap_or(200);
        OperationDoc {
            params: Vec::new(),
            request: None,
            request_required: false,
            responses: vec![(first, "Success".into(), "application/json", Json::Null)],
            typed: Some(crate::plugins::handlers::TypedDocFn(Arc::new(typed_doc::<H>))),
            components: Vec::new(),
        }
    }
}

struct TypedEndpoint<H: Handler> {
    shared: Arc<TypedHandlerShared<H>>,
    limit: usize,
}

impl<H: Handler> TypedEndpoint<H> {
    async fn input(
        &self,
        req: &mut Request,
    ) -> Result<Input<H::Path, H::Query, H::Body>, InputError> {
        let sh = &self.shared;
        let path = H::Path::parse(
            MetaParamIn::Path,
            &sh.path_plan,
            &|name| {
                req.raw_path_param(name)
                    .map(String::from)
                    .into_iter()
                    .collect()
            },
        )?;
        // No query string, no parsing (and no allocation).
        let pairs: Vec<(String, String)> = match req.uri().query() {
            Some(q) if !q.is_empty() => req.params().map_err(|e| {
                InputError::new(json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed query string: {e}"),
                ))
            })?,
            _ => Vec::new(),
        };
        let query = H::Query::parse(
            MetaParamIn::Query,
            &sh.query_plan,
            &|name| {
                pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .collect()
            },
        )?;
        let body = if self.shared.has_body {
            if let Some(ct) = req.content_type() {
                if !ct.starts_with("application/json") {
                    return Err(InputError::new(json_error(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        &format!("content type {ct:?} is not application/json"),
                    )));
                }
            }
            let bytes = crate::plugins::handlers::grafana_json::read_body(req, self.limit)
                .await
                .map_err(InputError::new)?;
            H::Body::parse(Some(&bytes), sh.body_check.as_ref())?
        } else {
            H::Body::parse(None, None)?
        };
        let request = RequestContext::new(std::mem::take(req.headers_mut()));
        Ok(Input {
            path,
            query,
            body,
            request,
        })
    }
}

impl<H: Handler> Endpoint for TypedEndpoint<H> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let input = match self.input(&mut req).await {
            Ok(i) => i,
            Err(e) => return Ok(e.into_response()),
        };
        let sh = &self.shared;
        let Some(state) = &sh.state else {
            return Ok(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service's start hooks have not run",
            ));
        };
        Ok(sh.handler.handle(state, input).await.into_response())
    }
}
