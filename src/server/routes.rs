//! Route table: one poem route per distinct path template, dispatching on
//! method itself so that a wrong method is a JSON 405 counted under the
//! route's template, never under the raw URL.

use super::auth::{Caller, Guard};
use super::error::json_error;
use super::openapi;
use super::Runtime;
use crate::logging::request;
use crate::manifest::Manifest;
use poem::endpoint::{BoxEndpoint, DynEndpoint};
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result, Route};
use std::future::Future;
use std::sync::Arc;

/// Converts a poem error into the JSON error body.
pub fn error_response(e: poem::Error) -> Response {
    if e.is::<poem::error::NotFoundError>() {
        return json_error(StatusCode::NOT_FOUND, "no route matches this path");
    }
    json_error(e.status(), &e.to_string())
}

/// The manifest's paths, grouped by template, plus the built-in docs routes.
pub struct RouteTable {
    /// (template, [(method, endpoint index)])
    paths: Vec<(String, Vec<(Method, usize)>)>,
}

const DOCS: &str = "/docs";
const SPEC: &str = "/openapi.json";

impl RouteTable {
    pub fn new(m: &Manifest) -> Self {
        let mut paths: Vec<(String, Vec<(Method, usize)>)> = Vec::new();
        // Template → its index in `paths`: linear in the endpoints.
        let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, ep) in m.endpoints.iter().enumerate() {
            let method = ep.method.to_http();
            match at.get(ep.path.as_str()) {
                Some(&k) => paths[k].1.push((method, i)),
                None => {
                    at.insert(&ep.path, paths.len());
                    paths.push((ep.path.clone(), vec![(method, i)]));
                }
            }
        }
        RouteTable { paths }
    }

    /// Label values, indexed by route tag.
    pub fn templates(&self) -> Vec<String> {
        let mut t: Vec<String> = self.paths.iter().map(|(p, _)| p.clone()).collect();
        t.push(SPEC.into());
        t.push(DOCS.into());
        t
    }

    /// The declared (template, method) pairs.
    pub fn declared(&self) -> Vec<(String, String)> {
        self.paths
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(|(m, _)| (p.clone(), m.to_string())))
            .collect()
    }

    /// Starts each declared (route, method) at zero with its documented success status.
    pub fn touch_declared(&self, rt: &Runtime) {
        for (tag, (_, methods)) in self.paths.iter().enumerate() {
            for (m, i) in methods {
                let status = rt.model.handlers[*i]
                    .doc()
                    .responses
                    .first()
                    .map_or(200, |r| r.0);
                rt.http
                    .touch(tag, super::http_metrics::method_index(m), status);
            }
        }
    }

    pub fn build(&self, rt: &Arc<Runtime>) -> Result<Router, String> {
        let model = &rt.model;
        let host: Arc<dyn crate::model::kinds::Host> = rt.clone();
        let mut route = Route::new();
        let mut statics = std::collections::HashMap::new();
        let auth = &model.manifest.auth;
        for (tag, (template, methods)) in self.paths.iter().enumerate() {
            let mut eps: Vec<Method_> = Vec::with_capacity(methods.len());
            for (m, i) in methods {
                // The user's middleware, the first registered outermost.
                let mut ep = model.handlers[*i].endpoint(&host);
                for mw in model.middleware.iter().rev() {
                    ep = mw.wrap(ep);
                }
                let guard = rt
                    .auth
                    .guard(auth.requirement(&model.manifest.endpoints[*i]))?;
                eps.push((m.clone(), guard, ep));
            }
            let allow = eps
                .iter()
                .map(|(m, _, _)| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let ep = PathEndpoint {
                tag,
                template: rt.http.template(tag),
                allow: HeaderValue::from_str(&allow).map_err(|e| e.to_string())?,
                methods: eps,
            };
            if template.contains('{') {
                route = route.at(poem_template(template), ep);
            } else {
                statics.insert(template.clone(), ep);
            }
        }
        let n = self.paths.len();
        let docs = openapi::docs(model);
        let guard = rt.auth.guard(&auth.docs)?;
        route = route.at(SPEC, Tagged(n, guard.clone(), docs.spec));
        route = route.nest(DOCS, Tagged(n + 1, guard, docs.ui));
        Ok(Router { statics, route })
    }
}

/// The routes: paths without parameters in a hash map (poem's `Route::at`
/// compiles a regex per route, so 20,000 of them took seconds to add), the
/// templated ones and the docs in poem's router.
pub struct Router {
    statics: std::collections::HashMap<String, PathEndpoint>,
    route: Route,
}

pin_project_lite::pin_project! {
    /// The future of either kind of route, without boxing.
    #[project = EitherProj]
    pub enum Either<A, B> {
        Static { #[pin] fut: A },
        Route { #[pin] fut: B },
    }
}

impl<A: Future, B: Future<Output = A::Output>> Future for Either<A, B> {
    type Output = A::Output;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<A::Output> {
        match self.project() {
            EitherProj::Static { fut } => fut.poll(cx),
            EitherProj::Route { fut } => fut.poll(cx),
        }
    }
}

impl Endpoint for Router {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = Result<Response>> + Send {
        match self.statics.get(req.uri().path()) {
            Some(ep) => Either::Static { fut: ep.call(req) },
            None => Either::Route {
                fut: self.route.call(req),
            },
        }
    }
}

/// `/a/{id}` (OpenAPI style) → `/a/:id` (poem style).
fn poem_template(t: &str) -> String {
    t.split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{name}"),
                None => s.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A method of a path: its guard (none if open) and its endpoint.
type Method_ = (Method, Option<Arc<Guard>>, BoxEndpoint<'static, Response>);

struct PathEndpoint {
    tag: usize,
    /// The route template (interned), for handlers' log lines.
    template: &'static str,
    allow: HeaderValue,
    methods: Vec<Method_>,
}

/// What a guarded request gets: the handler's future with its caller, or
/// the refusal.
enum Admitted<F> {
    Open(F),
    Caller(F, Box<Caller>),
    Denied(Box<super::auth::Denied>),
}

/// Runs `guard` (if any) on `req`, then calls `ep`; the caller goes into the
/// request's context once inside it (`request::set_caller`).
fn admit<'a>(
    guard: Option<&Arc<Guard>>,
    ep: &'a (dyn DynEndpoint<Output = Response> + 'a),
    req: Request,
) -> Admitted<CallFuture<'a>> {
    match guard.map(|g| g.check(req.headers())) {
        None => Admitted::Open(DynEndpoint::call(ep, req)),
        Some(Ok(caller)) => Admitted::Caller(DynEndpoint::call(ep, req), caller),
        Some(Err(denied)) => Admitted::Denied(denied),
    }
}

/// The boxed future of a `DynEndpoint` call.
type CallFuture<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Response>> + Send + 'a>>;

impl Endpoint for PathEndpoint {
    type Output = Response;

    /// Not an `async fn`: the handler's boxed future is made here, so the
    /// future poem boxes for this endpoint holds that box and the method, not
    /// a copy of the request (472 bytes) or the wrappers `Box<dyn>`'s own
    /// `Endpoint` impl would add around it.
    fn call(&self, req: Request) -> impl Future<Output = Result<Response>> + Send {
        let method = req.method().clone();
        let found = self
            .methods
            .iter()
            .find(|(m, _, _)| *m == method)
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| self.methods.iter().find(|(m, _, _)| *m == Method::GET))
                    .flatten()
            });
        let handler = found.map(|(_, guard, ep)| admit(guard.as_ref(), &**ep, req));
        async move {
            request::set_route_template(self.tag, self.template);
            let mut resp = match handler {
                Some(Admitted::Open(fut)) => fut.await.unwrap_or_else(error_response),
                Some(Admitted::Caller(fut, caller)) => {
                    request::set_caller(caller);
                    fut.await.unwrap_or_else(error_response)
                }
                Some(Admitted::Denied(d)) => {
                    d.log();
                    d.response
                }
                None => {
                    let mut r = json_error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        &format!(
                            "method {} is not allowed here (allowed: {})",
                            super::error::capped(method.as_str()),
                            self.allow.to_str().unwrap_or("")
                        ),
                    );
                    r.headers_mut().insert(header::ALLOW, self.allow.clone());
                    r
                }
            };
            if method == Method::HEAD {
                resp.set_body(());
            }
            request::set_route(self.tag);
            Ok(resp)
        }
    }
}

/// Tags a built-in endpoint (docs, spec) with its route and its guard
/// (`auth.docs`); both are read-only, so any method but GET and HEAD is a
/// JSON 405.
struct Tagged<E>(usize, Option<Arc<Guard>>, E);

impl<E: Endpoint<Output = Response>> Endpoint for Tagged<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let denied = match self.1.as_ref().map(|g| g.check(req.headers())) {
            Some(Err(d)) => {
                d.log();
                Some(d.response)
            }
            Some(Ok(caller)) => {
                request::set_caller(caller);
                None
            }
            None => None,
        };
        let resp = if let Some(r) = denied {
            r
        } else if matches!(*req.method(), Method::GET | Method::HEAD) {
            self.2
                .call(req)
                .await
                .map(IntoResponse::into_response)
                .unwrap_or_else(error_response)
        } else {
            let mut r = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "method {} is not allowed here (allowed: GET, HEAD)",
                    super::error::capped(req.method().as_str())
                ),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        };
        request::set_route(self.0);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::EndpointExt;

    /// poem boxes this endpoint's future on every request; it holds the
    /// handler's boxed future, not a copy of the request.
    #[test]
    fn the_path_endpoints_future_holds_no_request() {
        let ep = PathEndpoint {
            tag: 0,
            template: "/x",
            allow: HeaderValue::from_static("GET"),
            methods: vec![(
                Method::GET,
                None,
                poem::endpoint::make_sync(|_| "ok")
                    .map_to_response()
                    .boxed(),
            )],
        };
        let fut = ep.call(Request::builder().uri_str("/x").finish());
        let size = std::mem::size_of_val(&fut);
        assert!(
            size < std::mem::size_of::<Request>(),
            "{size} bytes, a request is {}",
            std::mem::size_of::<Request>()
        );
    }
}
