//! Typed handler kinds: a user's async handler with typed path parameters,
//! query, JSON body and response, documented from poem-openapi's own types
//! (`Object`, `ApiResponse`) and registry.
//!
//! [`TypedHandlerKind`] adapts a [`Handler`] to [`HandlerKind`], so a user's kind goes
//! through the same registry, validation and route table as the built-ins:
//! its options are parsed (unknown keys are errors) and its
//! [`Handler::setup`] runs during `validate`, where a metric it asks for
//! that the manifest does not declare is a located error.
//!
//! Bad input never reaches the handler: a path or query parameter of the
//! wrong type is a 400 naming the parameter, malformed JSON a 400 with its
//! line and column, and a body that does not match its type a 422 naming
//! the field (`items[0].qty`), checked by the `jsonschema` crate against
//! the schema `/openapi.json` shows for the type, compiled once at prepare.
//!
//! The folder, by subject: this file holds the API a handler is written
//! against ([`Handler`], [`Setup`], [`Input`], [`SetupError`]); `params.rs`
//! parses path and query parameters and request bodies into their types;
//! `schema.rs` compiles a type's schema and names a value's first mismatch; `kind.rs` adapts a
//! [`Handler`] to a [`HandlerKind`](super::HandlerKind) and serves it.

mod kind;
mod params;
mod schema;

pub use kind::TypedHandlerKind;
pub use params::{InputError, Params, Plan, RequestBody};
pub use schema::SchemaCheck;

use crate::model::app_metrics::{AppCounter, AppFamilies, AppGauge, AppHistogram};
pub use crate::server::context::{RequestContext, RequestSpan, TraceContext};
use poem::IntoResponse;
use poem_openapi::ApiResponse;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;

/// A handler kind of your own: register it with [`crate::App::handler`]
/// and name it in `endpoints[].handler`.
///
/// ```
/// use poem_openapi::{payload::Json, ApiResponse, Object};
/// use telltale::{AppHistogram, Empty, ErrorBody, Handler, Input, Setup, SetupError, StatusCode};
///
/// /// `options:` of the endpoint (unknown keys are errors).
/// #[derive(serde::Deserialize, Default)]
/// #[serde(deny_unknown_fields)]
/// struct LookupOptions {
///     /// The highest order id there is.
///     last: u64,
/// }
///
/// /// The path of `GET /orders/{id}`.
/// #[derive(Object)]
/// struct OrderPath {
///     id: u64,
/// }
///
/// #[derive(Object)]
/// struct Order {
///     id: u64,
/// }
///
/// #[derive(ApiResponse)]
/// enum LookupResponse {
///     /// The order.
///     #[oai(status = 200)]
///     Found(Json<Order>),
///     /// No such order.
///     #[oai(status = 404)]
///     NotFound(Json<ErrorBody>),
/// }
///
/// struct Lookup;
///
/// impl Handler for Lookup {
///     type Options = LookupOptions;
///     type Path = OrderPath;
///     type Query = Empty;
///     type Body = Empty;
///     type Response = LookupResponse;
///     type State = (u64, AppHistogram<0>);
///
///     fn name(&self) -> &'static str {
///         "orders.lookup"
///     }
///
///     fn setup(&self, o: LookupOptions, ctx: &mut Setup<'_>) -> Result<Self::State, SetupError> {
///         if o.last == 0 {
///             return Err(SetupError::new("options.last must be at least 1"));
///         }
///         Ok((o.last, ctx.histogram("looked_up_ids", [])?))
///     }
///
///     async fn handle(
///         &self,
///         (last, ids): &Self::State,
///         input: Input<OrderPath, Empty, Empty>,
///     ) -> LookupResponse {
///         let id = input.path.id;
///         ids.observe([], id as f64);
///         if id > *last {
///             let message = format!("no order {id} (request {})", input.request.request_id());
///             return LookupResponse::NotFound(Json(ErrorBody::new(StatusCode::NOT_FOUND, message)));
///         }
///         LookupResponse::Found(Json(Order { id }))
///     }
/// }
///
/// // The manifest names the kind and options; `validate` runs `setup`.
/// let manifest = r#"
/// service: { name: orders, version: 0.1.0 }
/// endpoints:
///   - { path: "/orders/{id}", handler: orders.lookup, summary: One order, options: { last: 9 } }
/// metrics:
///   - { name: looked_up_ids, type: histogram, help: Ids asked for., buckets: [1, 10], source: app }
/// "#;
/// let dir = std::env::temp_dir().join(format!("telltale-handler-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("manifest.yaml");
/// std::fs::write(&path, manifest).unwrap();
/// let code = telltale::App::new()
///     .handler(Lookup)
///     .run_cli_from(["orders", "validate", "--manifest", path.to_str().unwrap()]);
/// assert_eq!(code, std::process::ExitCode::SUCCESS);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The endpoint's `options:` (use `#[serde(deny_unknown_fields)]`).
    type Options: DeserializeOwned + Default + Send + 'static;
    /// Path parameters (`/orders/{id}`): a poem-openapi `Object`, or [`Empty`].
    type Path: Params;
    /// Query parameters: a poem-openapi `Object`, or [`Empty`].
    type Query: Params;
    /// The JSON request body: a poem-openapi `Object`, or [`Empty`] for none.
    type Body: RequestBody;
    /// What it answers: a poem-openapi `ApiResponse`.
    type Response: ApiResponse + IntoResponse + Send + 'static;
    /// What [`Handler::setup`] builds once and every request sees.
    type State: Send + Sync + 'static;

    /// The name used in `endpoints[].handler`.
    fn name(&self) -> &'static str;

    /// Runs once per endpoint, during `validate`, at start-up and at each
    /// reload: checks the options and resolves metric handles and what the
    /// start hooks built ([`Setup::resource`]). An `Err` is reported at the
    /// endpoint's location in the manifest.
    fn setup(&self, options: Self::Options, ctx: &mut Setup<'_>)
        -> Result<Self::State, SetupError>;

    /// Answers one request whose input has already been parsed and checked.
    fn handle(
        &self,
        state: &Self::State,
        input: Input<Self::Path, Self::Query, Self::Body>,
    ) -> impl Future<Output = Self::Response> + Send;
}

/// One request's typed input, and its context.
#[derive(Debug)]
pub struct Input<P, Q, B> {
    /// The path parameters ([`Handler::Path`]).
    pub path: P,
    /// The query parameters ([`Handler::Query`]).
    pub query: Q,
    /// The JSON request body ([`Handler::Body`]).
    pub body: B,
    /// Headers, request id, trace context and the authenticated caller.
    pub request: RequestContext,
}

/// Why [`Handler::setup`] failed: what went wrong ([`SetupError::kind`])
/// and the message `validate` reports at the endpoint's location.
///
/// ```
/// use telltale::{SetupError, SetupErrorKind};
///
/// let e = SetupError::new("options.limit must be positive");
/// assert_eq!(e.kind(), SetupErrorKind::Invalid);
/// assert_eq!(e.to_string(), "options.limit must be positive");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    kind: SetupErrorKind,
    message: String,
}

/// What a [`SetupError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupErrorKind {
    /// The handler's own check failed (its options, say):
    /// [`SetupError::new`].
    Invalid,
    /// A `source: app` metric that the manifest does not declare, or
    /// declares as another type or with other labels.
    Metric,
    /// A resource of the start hooks ([`Setup::resource`]) that no hook
    /// provides, or that the hooks did not build.
    Resource,
    /// A dependency ([`Setup::dependency`]) that is not declared, whose
    /// client is of another type, or an operation it does not declare.
    Dependency,
    /// A resource or client asked for where the start hooks and
    /// dependencies do not run (`validate`, `render`): not an error there,
    /// it only ends `setup` early.
    NotStarted,
}

impl SetupError {
    /// An error of the handler's own ([`SetupErrorKind::Invalid`]) with
    /// this message.
    pub fn new(message: impl Into<String>) -> SetupError {
        SetupError::of(SetupErrorKind::Invalid, message)
    }
    fn of(kind: SetupErrorKind, message: impl Into<String>) -> SetupError {
        SetupError {
            kind,
            message: message.into(),
        }
    }
    /// What went wrong.
    pub fn kind(&self) -> SetupErrorKind {
        self.kind
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    fn not_started(&self) -> bool {
        self.kind == SetupErrorKind::NotStarted
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SetupError {}

impl From<String> for SetupError {
    fn from(message: String) -> SetupError {
        SetupError::new(message)
    }
}

impl From<&str> for SetupError {
    fn from(message: &str) -> SetupError {
        SetupError::new(message)
    }
}

/// What a handler's [`Handler::setup`] can see and ask for.
pub struct Setup<'a> {
    /// The endpoint's route template, e.g. `/orders/{id}`.
    pub path: &'a str,
    /// Its method, upper case.
    pub method: String,
    apps: &'a AppFamilies,
    registry: &'a crate::model::KindRegistry,
    /// `dependencies:` as declared, and one prepared slot per entry.
    declared: &'a [crate::manifest::dependencies::Dependency],
    prepared: &'a [Option<Arc<dyn crate::model::dependencies::PreparedDependency>>],
    /// Every client request's error, so that one `validate` reports them
    /// all even though the first `?` ends `setup`.
    client_errors: std::cell::RefCell<Vec<String>>,
}

impl Setup<'_> {
    /// What a start hook (`App::on_start`) built, of type `T`. Where the
    /// hooks do not run (`validate`, `render`) this ends `setup` early
    /// without an error, so use `?`, and ask for resources after checking
    /// options and metrics (which `validate` then still checks). A type that
    /// no hook provides is an error everywhere.
    pub fn resource<T: std::any::Any + Send + Sync>(&self) -> Result<Arc<T>, SetupError> {
        let name = std::any::type_name::<T>();
        if !self.registry.provides(std::any::TypeId::of::<T>()) {
            return Err(SetupError::of(
                SetupErrorKind::Resource,
                format!("no start hook provides a {name} (App::on_start)"),
            ));
        }
        match self.registry.resources() {
            None => Err(SetupError::of(
                SetupErrorKind::NotStarted,
                format!("{name} exists once the start hooks ran"),
            )),
            Some(r) => r.get::<T>().ok_or_else(|| {
                SetupError::of(
                    SetupErrorKind::Resource,
                    format!("the start hooks built no {name}"),
                )
            }),
        }
    }

    /// The client of dependency `name` (`dependencies:`), of type `C`: an
    /// undeclared name, or a dependency whose client is another type, is an
    /// error (`validate` reports it at the endpoint). Where dependencies are
    /// not started (`validate`, `render`) this ends `setup` early without an
    /// error, like [`Setup::resource`]: ask for clients last, all of them
    /// before the first `?`, so that `validate` checks every one.
    pub fn dependency<C: std::any::Any + Send + Sync + Clone>(
        &self,
        name: &str,
    ) -> Result<C, SetupError> {
        self.recorded(self.client::<C>(name))
    }

    /// `r`, its error (not "not started") also kept for `validate`'s report.
    fn recorded<T>(&self, r: Result<T, SetupError>) -> Result<T, SetupError> {
        if let Err(e) = &r {
            if !e.not_started() {
                let mut errors = self.client_errors.borrow_mut();
                if !errors.contains(&e.message) {
                    errors.push(e.message.clone());
                }
            }
        }
        r
    }

    fn client<C: std::any::Any + Send + Sync + Clone>(&self, name: &str) -> Result<C, SetupError> {
        let i = self
            .declared
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.declared.iter().map(|d| d.name.as_str()).collect();
                SetupError::of(
                    SetupErrorKind::Dependency,
                    crate::model::lint::unknown_name(
                    "dependency",
                    name,
                    &names,
                    "declared in `dependencies:`",
                ),
                )
            })?;
        if let Some(p) = &self.prepared[i] {
            let (t, shown) = p.client_type();
            if t != std::any::TypeId::of::<C>() {
                return Err(SetupError::of(
                    SetupErrorKind::Dependency,
                    format!(
                        "dependency {name:?} is of kind {}, whose client is a {shown}, not a {}",
                        self.declared[i].kind,
                        crate::model::dependencies::client_type_name::<C>()
                    ),
                ));
            }
        }
        match self.registry.resources() {
            None => Err(SetupError::of(
                SetupErrorKind::NotStarted,
                format!("dependency {name:?} exists once the server started"),
            )),
            Some(r) => r
                .get::<crate::model::dependencies::Running>()
                .ok_or_else(|| {
                    SetupError::of(SetupErrorKind::Dependency, "the dependencies were not started")
                })?
                .client::<C>(name)
                .map_err(|e| SetupError::of(SetupErrorKind::Dependency, e)),
        }
    }

    /// The client of `http` dependency `name` (see [`Setup::dependency`]).
    pub fn http(&self, name: &str) -> Result<crate::plugins::dependencies::HttpClient, SetupError> {
        self.dependency(name)
    }

    /// The client of `postgres` or `sqlite` dependency `name` (see
    /// [`Setup::dependency`]).
    pub fn sql(&self, name: &str) -> Result<crate::plugins::dependencies::Sql, SetupError> {
        self.dependency(name)
    }

    /// Operation `operation` of database dependency `name`, checked against
    /// its declared `options.operations` in `validate` too.
    pub fn sql_operation(
        &self,
        name: &str,
        operation: &str,
    ) -> Result<crate::plugins::dependencies::SqlOperation, SetupError> {
        if let Some(Some(p)) = self
            .declared
            .iter()
            .position(|d| d.name == name)
            .map(|i| &self.prepared[i])
        {
            let ops = p.operations();
            if !ops.iter().any(|o| o == operation) {
                return self.recorded(Err(SetupError::of(
                    SetupErrorKind::Dependency,
                    crate::model::lint::unknown_name(
                        &format!("operation of dependency {name:?}"),
                        operation,
                        &ops.iter().map(String::as_str).collect::<Vec<_>>(),
                        "declared",
                    ),
                )));
            }
        }
        self.sql(name)?
            .operation(operation)
            .map_err(|e| SetupError::of(SetupErrorKind::Dependency, e))
    }

    /// The `source: app` counter `name`, with exactly these label names in
    /// this order (`[]` for none).
    pub fn counter<const N: usize>(
        &self,
        name: &str,
        labels: [&str; N],
    ) -> Result<AppCounter<N>, SetupError> {
        self.apps
            .counter(name, labels)
            .map_err(|e| SetupError::of(SetupErrorKind::Metric, e))
    }
    /// The `source: app` gauge `name`.
    pub fn gauge<const N: usize>(
        &self,
        name: &str,
        labels: [&str; N],
    ) -> Result<AppGauge<N>, SetupError> {
        self.apps
            .gauge(name, labels)
            .map_err(|e| SetupError::of(SetupErrorKind::Metric, e))
    }
    /// The `source: app` histogram `name`.
    pub fn histogram<const N: usize>(
        &self,
        name: &str,
        labels: [&str; N],
    ) -> Result<AppHistogram<N>, SetupError> {
        self.apps
            .histogram(name, labels)
            .map_err(|e| SetupError::of(SetupErrorKind::Metric, e))
    }
}

/// `options:` of a handler that takes none (any key is an error).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// No parameters, or no request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Empty;
