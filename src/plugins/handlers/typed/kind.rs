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
use futures_util::future::{lazy, ready, Either, FutureExt};
use std::future::Future;
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

/// A request's input as far as it is read without waiting: all of it, a
/// refusal, or the path and query with the body still to read.
// The large variant is the common one (every request without a body):
// boxing it would cost an allocation per request to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
enum Parsed<H: Handler> {
    Input(Input<H::Path, H::Query, H::Body>),
    Refused(InputError),
    BodyToRead(H::Path, H::Query, Box<Request>),
}

impl<H: Handler> TypedEndpoint<H> {
    /// Parses what needs no await: the path and query parameters, and, for
    /// a handler without a body, the whole input. Runs at the future's first
    /// poll, inside the request's scope (its id, caller and span).
    fn parse(&self, mut req: Request) -> Parsed<H> {
        let sh = &self.shared;
        let path = H::Path::parse(MetaParamIn::Path, &sh.path_plan, &|name| {
            req.raw_path_param(name)
                .map(String::from)
                .into_iter()
                .collect()
        });
        let path = match path {
            Ok(p) => p,
            Err(e) => return Parsed::Refused(e),
        };
        // No query string, no parsing (and no allocation).
        let pairs: Vec<(String, String)> = match req.uri().query() {
            Some(q) if !q.is_empty() => match req.params() {
                Ok(pairs) => pairs,
                Err(e) => {
                    return Parsed::Refused(InputError::new(json_error(
                        StatusCode::BAD_REQUEST,
                        &format!("malformed query string: {e}"),
                    )))
                }
            },
            _ => Vec::new(),
        };
        let query = H::Query::parse(MetaParamIn::Query, &sh.query_plan, &|name| {
            pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect()
        });
        let query = match query {
            Ok(q) => q,
            Err(e) => return Parsed::Refused(e),
        };
        if sh.has_body {
            return Parsed::BodyToRead(path, query, Box::new(req));
        }
        match H::Body::parse(None, None) {
            Ok(body) => Parsed::Input(Input {
                path,
                query,
                body,
                request: RequestContext::new(std::mem::take(req.headers_mut())),
            }),
            Err(e) => Parsed::Refused(e),
        }
    }

    /// Reads and parses the JSON body, then the input is complete.
    async fn with_body(
        &self,
        path: H::Path,
        query: H::Query,
        mut req: Box<Request>,
    ) -> poem::Result<Response> {
        if let Some(ct) = req.content_type() {
            if !ct.starts_with("application/json") {
                return Ok(json_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &format!("content type {ct:?} is not application/json"),
                ));
            }
        }
        let bytes = match crate::plugins::handlers::grafana_json::read_body(&mut req, self.limit).await
        {
            Ok(b) => b,
            Err(r) => return Ok(r),
        };
        let body = match H::Body::parse(Some(&bytes), self.shared.body_check.as_ref()) {
            Ok(b) => b,
            Err(e) => return Ok(e.into_response()),
        };
        let input = Input {
            path,
            query,
            body,
            request: RequestContext::new(std::mem::take(req.headers_mut())),
        };
        drop(req);
        self.answer(input).await
    }

    /// The handler's answer to `input`.
    fn answer(
        &self,
        input: Input<H::Path, H::Query, H::Body>,
    ) -> impl Future<Output = poem::Result<Response>> + Send + '_ {
        let sh = &self.shared;
        let Some(state) = &sh.state else {
            return Either::Left(ready(Ok(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service's start hooks have not run",
            ))));
        };
        Either::Right(
            sh.handler
                .handle(state, input)
                .map(|r| Ok(r.into_response())),
        )
    }
}

type BoxedAnswer<'a> = std::pin::Pin<Box<dyn Future<Output = poem::Result<Response>> + Send + 'a>>;

impl<H: Handler> Endpoint for TypedEndpoint<H> {
    type Output = Response;

    /// A state machine whose states hold either the request (until its
    /// first poll) or the handler's future, never both: poem boxes this
    /// future per request, so its size is copied each time. A handler with
    /// a body reads it in a boxed future of its own.
    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        lazy(move |_| self.parse(req)).then(move |parsed| match parsed {
            Parsed::Input(input) => Either::Left(self.answer(input)),
            Parsed::Refused(e) => Either::Right(Either::Left(ready(Ok(e.into_response())))),
            Parsed::BodyToRead(path, query, req) => {
                let boxed: BoxedAnswer<'_> = Box::pin(self.with_body(path, query, req));
                Either::Right(Either::Right(boxed))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::handlers::typed::{Empty, NoOptions, SetupError};

    #[derive(poem_openapi::ApiResponse)]
    enum Done {
        #[oai(status = 204)]
        NoContent,
    }

    struct Nothing;

    impl Handler for Nothing {
        type Options = NoOptions;
        type Path = Empty;
        type Query = Empty;
        type Body = Empty;
        type Response = Done;
        type State = ();
        fn name(&self) -> &'static str {
            "test.nothing"
        }
        fn setup(&self, _: NoOptions, _: &mut Setup<'_>) -> Result<(), SetupError> {
            Ok(())
        }
        async fn handle(&self, _: &(), input: Input<Empty, Empty, Empty>) -> Done {
            drop(input);
            Done::NoContent
        }
    }

    /// poem copies an endpoint's future into a box on every request, so
    /// its size is paid per request: the typed endpoint's holds the request
    /// (until its first poll) or the handler's future, never both.
    #[test]
    fn the_typed_endpoints_future_holds_the_request_or_the_input_not_both() {
        let ep = TypedEndpoint {
            shared: Arc::new(TypedHandlerShared {
                handler: Arc::new(Nothing),
                state: Some(()),
                has_body: false,
                body_check: None,
                path_plan: Plan::default(),
                query_plan: Plan::default(),
            }),
            limit: 1024,
        };
        let fut = ep.call(Request::builder().uri_str("/x").finish());
        let size = std::mem::size_of_val(&fut);
        let request = std::mem::size_of::<Request>();
        let input = std::mem::size_of::<Input<Empty, Empty, Empty>>();
        assert!(
            size < request + input,
            "{size} bytes; a request is {request}, an input {input}"
        );
    }
}
