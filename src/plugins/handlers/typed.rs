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
//! the field (`items[0].qty`), checked against the type's own schema.

use super::{HandlerCtx, HandlerKind, Host, OperationDoc, PreparedHandler, TypedDoc};
use crate::manifest::Diagnostics;
use crate::model::app_metrics::{AppCounter, AppFamilies, AppGauge, AppHistogram};
pub use crate::server::context::{RequestContext, RequestSpan, TraceContext};
use crate::server::error::{bad_field_status, bad_param_in, json_error};
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::registry::{
    MetaMediaType, MetaOperationParam, MetaParamIn, MetaRequest, MetaResponse, MetaResponses,
    MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{IsObjectType, ParseFromJSON};
use poem_openapi::ApiResponse;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};
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

/// Why a request's input was refused, as its JSON error response.
#[derive(Debug)]
pub struct InputError(Box<Response>);

impl InputError {
    fn new(r: Response) -> Self {
        InputError(Box::new(r))
    }
    fn into_response(self) -> Response {
        *self.0
    }
}

/// What parsing a [`Params`] type needs, resolved once at start-up from
/// the type's schema, so that a request looks nothing up by name.
#[derive(Default)]
pub struct Plan {
    fields: Vec<PlanField>,
    /// The object's schema, for the bounds and enums of given values.
    schema: Option<MetaSchemaRef>,
}

struct PlanField {
    name: &'static str,
    /// JSON type of the value (`integer`, `array`, ...), and of an array's items.
    ty: &'static str,
    item: &'static str,
    required: bool,
}

/// Path or query parameters: a poem-openapi `Object` (each field one
/// parameter), or [`Empty`].
pub trait Params: Sized + Send + 'static {
    /// The documented parameters (schemas registered in `registry`).
    fn describe(registry: &mut Registry, location: MetaParamIn) -> Vec<MetaOperationParam>;
    /// The parsing plan, from the schemas `describe` registered.
    fn plan(registry: &Registry) -> Plan;
    /// Parses the parameters that `get` finds by name in `place`.
    fn parse(
        place: MetaParamIn,
        plan: &Plan,
        get: &dyn Fn(&str) -> Vec<String>,
        registry: &Registry,
    ) -> Result<Self, InputError>;
}

impl Params for Empty {
    fn describe(_: &mut Registry, _: MetaParamIn) -> Vec<MetaOperationParam> {
        Vec::new()
    }
    fn plan(_: &Registry) -> Plan {
        Plan::default()
    }
    fn parse(
        _: MetaParamIn,
        _: &Plan,
        _: &dyn Fn(&str) -> Vec<String>,
        _: &Registry,
    ) -> Result<Self, InputError> {
        Ok(Empty)
    }
}

/// The object schema of `T`, resolved through `registry`.
fn object_schema<'r>(registry: &'r Registry, r: &'r MetaSchemaRef) -> Option<&'r MetaSchema> {
    match r {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

impl<T: ParseFromJSON + IsObjectType + Send + 'static> Params for T {
    fn describe(registry: &mut Registry, location: MetaParamIn) -> Vec<MetaOperationParam> {
        T::register(registry);
        let r = T::schema_ref();
        let Some(s) = object_schema(registry, &r) else {
            return Vec::new();
        };
        s.properties
            .iter()
            .map(|(name, schema)| MetaOperationParam {
                name: name.to_string(),
                schema: schema.clone(),
                in_type: location,
                description: object_schema(registry, schema)
                    .and_then(|p| p.description)
                    .map(String::from),
                // A path parameter is always required.
                required: location == MetaParamIn::Path || s.required.contains(name),
                deprecated: false,
                explode: true,
                style: None,
            })
            .collect()
    }

    fn plan(registry: &Registry) -> Plan {
        let r = T::schema_ref();
        let Some(s) = object_schema(registry, &r) else {
            return Plan::default();
        };
        let fields = s
            .properties
            .iter()
            .map(|(name, schema)| {
                let ps = object_schema(registry, schema);
                let item = ps
                    .and_then(|p| p.items.as_deref())
                    .and_then(|i| object_schema(registry, i))
                    .map_or("string", |i| i.ty);
                PlanField {
                    name,
                    ty: ps.map_or("string", |p| p.ty),
                    item,
                    required: s.required.contains(name),
                }
            })
            .collect();
        Plan {
            fields,
            schema: Some(r),
        }
    }

    fn parse(
        place: MetaParamIn,
        plan: &Plan,
        get: &dyn Fn(&str) -> Vec<String>,
        registry: &Registry,
    ) -> Result<Self, InputError> {
        let param_error = |name: &str, msg: &str| {
            let place = if place == MetaParamIn::Path {
                "path"
            } else {
                "query"
            };
            InputError::new(bad_param_in(place, name, msg))
        };
        let mut obj = Map::new();
        for f in &plan.fields {
            let raw = get(f.name);
            if raw.is_empty() {
                if f.required {
                    return Err(param_error(f.name, "is required"));
                }
                continue;
            }
            let v = if f.ty == "array" {
                let vals: Result<Vec<Json>, String> =
                    raw.iter().map(|x| scalar(f.item, x)).collect();
                Json::Array(vals.map_err(|m| param_error(f.name, &m))?)
            } else {
                scalar(f.ty, &raw[0]).map_err(|m| param_error(f.name, &m))?
            };
            obj.insert(f.name.to_string(), v);
        }
        let v = Json::Object(obj);
        // Bounds and enums of the values given (none given: nothing to check).
        if let (Some(r), false) = (&plan.schema, v.as_object().is_some_and(Map::is_empty)) {
            if let Err((field, msg)) = check(&v, r, registry) {
                return Err(param_error(&field, &msg));
            }
        }
        T::parse_from_json(Some(v)).map_err(|e| {
            InputError::new(json_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid parameters: {}", e.message()),
            ))
        })
    }
}

/// A parameter's text as the JSON value of type `ty` (`integer`, ...).
fn scalar(ty: &str, raw: &str) -> Result<Json, String> {
    let shown: String = raw.chars().take(64).collect();
    let bad = |what: &str| format!("expected {what}, got {shown:?}");
    match ty {
        "integer" => raw
            .parse::<i64>()
            .map(Json::from)
            .or_else(|_| raw.parse::<u64>().map(Json::from))
            .map_err(|_| bad("an integer")),
        "number" => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| bad("a number")),
        "boolean" => raw
            .parse::<bool>()
            .map(Json::Bool)
            .map_err(|_| bad("true or false")),
        _ => Ok(Json::String(raw.to_string())),
    }
}

/// A JSON request body: a poem-openapi `Object`, or [`Empty`] for none.
pub trait RequestBody: Sized + Send + 'static {
    /// The body's schema, registered in `registry`; `None` takes no body.
    fn describe(registry: &mut Registry) -> Option<MetaSchemaRef>;
    /// Parses the body (`None`: the request had none).
    fn parse(body: Option<&[u8]>, registry: &Registry) -> Result<Self, InputError>;
}

impl RequestBody for Empty {
    fn describe(_: &mut Registry) -> Option<MetaSchemaRef> {
        None
    }
    fn parse(_: Option<&[u8]>, _: &Registry) -> Result<Self, InputError> {
        Ok(Empty)
    }
}

impl<T: ParseFromJSON + IsObjectType + Send + 'static> RequestBody for T {
    fn describe(registry: &mut Registry) -> Option<MetaSchemaRef> {
        T::register(registry);
        Some(T::schema_ref())
    }

    fn parse(body: Option<&[u8]>, registry: &Registry) -> Result<Self, InputError> {
        let unprocessable = |field: &str, msg: &str| {
            InputError::new(bad_field_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                field,
                msg,
            ))
        };
        let Some(bytes) = body.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) else {
            return Err(InputError::new(json_error(
                StatusCode::BAD_REQUEST,
                "a JSON request body is required",
            )));
        };
        let v: Json = serde_json::from_slice(bytes).map_err(|e| {
            InputError::new(bad_field_status(
                StatusCode::BAD_REQUEST,
                "body",
                &format!("malformed JSON: {e}"),
            ))
        })?;
        let r = T::schema_ref();
        if let Err((field, msg)) = check(&v, &r, registry) {
            let field = if field.is_empty() {
                "body".into()
            } else {
                field
            };
            return Err(unprocessable(&field, &msg));
        }
        T::parse_from_json(Some(v)).map_err(|e| unprocessable("body", e.message()))
    }
}

/// Checks `v` against `schema` (types, required fields, enums, bounds,
/// nested objects and arrays); the first mismatch, with its path relative
/// to `v` (`items[0].qty`, empty for `v` itself). The path is built only
/// on a mismatch: a valid body costs no string per field.
pub(crate) fn check(
    v: &Json,
    schema: &MetaSchemaRef,
    reg: &Registry,
) -> Result<(), (String, String)> {
    let Some(s) = object_schema(reg, schema) else {
        return Ok(());
    };
    let fail = |msg: String| Err((String::new(), msg));
    if !s.any_of.is_empty() {
        let mut errors = Vec::new();
        for alt in &s.any_of {
            match check(v, alt, reg) {
                Ok(()) => return Ok(()),
                Err(e) => errors.push((alt, e)),
            }
        }
        // The alternative of the value's own type says what is wrong inside it.
        let same_type = |alt: &MetaSchemaRef| {
            object_schema(reg, alt).is_some_and(|a| kind_of(v).ends_with(a.ty))
        };
        if let Some((_, e)) = errors.iter().find(|(alt, _)| same_type(alt)) {
            return Err(e.clone());
        }
        let kinds: Vec<String> = s
            .any_of
            .iter()
            .filter_map(|alt| object_schema(reg, alt))
            .map(|alt| format!("{} {}", article(alt.ty), alt.ty))
            .collect();
        return fail(format!(
            "must be {}, not {}",
            kinds.join(" or "),
            kind_of(v)
        ));
    }
    if v.is_null() {
        return if s.nullable || s.ty.is_empty() {
            Ok(())
        } else {
            fail(format!("must be {} {}, not null", article(s.ty), s.ty))
        };
    }
    match s.ty {
        "object" => {
            let Some(obj) = v.as_object() else {
                return fail(format!("must be an object, not {}", kind_of(v)));
            };
            for name in &s.required {
                if !obj.contains_key(*name) {
                    return Err((name.to_string(), "missing required field".into()));
                }
            }
            for (name, ps) in &s.properties {
                if let Some(x) = obj.get(*name) {
                    check(x, ps, reg).map_err(|(p, m)| (under(name, &p), m))?;
                }
            }
        }
        "array" => {
            let Some(items) = v.as_array() else {
                return fail(format!("must be an array, not {}", kind_of(v)));
            };
            if let Some(max) = s.max_items {
                if items.len() > max {
                    return fail(format!("must have at most {max} items"));
                }
            }
            if let Some(item) = &s.items {
                for (i, x) in items.iter().enumerate() {
                    check(x, item, reg).map_err(|(p, m)| (under(&format!("[{i}]"), &p), m))?;
                }
            }
        }
        "string" => {
            let Some(text) = v.as_str() else {
                return fail(format!("must be a string, not {}", kind_of(v)));
            };
            if !s.enum_items.is_empty() && !s.enum_items.iter().any(|e| e == v) {
                let allowed: Vec<String> = s.enum_items.iter().map(|e| e.to_string()).collect();
                return fail(format!("must be one of {}", allowed.join(", ")));
            }
            if let Some(max) = s.max_length {
                if text.chars().count() > max {
                    return fail(format!("must be at most {max} characters"));
                }
            }
            if let Some(min) = s.min_length {
                if text.chars().count() < min {
                    return fail(format!("must be at least {min} characters"));
                }
            }
        }
        "integer" => {
            if !(v.is_i64() || v.is_u64()) {
                return fail(format!("must be an integer, not {}", kind_of(v)));
            }
            bounds(v.as_f64().unwrap_or(0.0), s).or_else(fail)?;
        }
        "number" => {
            let Some(x) = v.as_f64() else {
                return fail(format!("must be a number, not {}", kind_of(v)));
            };
            bounds(x, s).or_else(fail)?;
        }
        "boolean" if !v.is_boolean() => {
            return fail(format!("must be true or false, not {}", kind_of(v)));
        }
        _ => {}
    }
    Ok(())
}

fn bounds(x: f64, s: &MetaSchema) -> Result<(), String> {
    let excl_min = s.exclusive_minimum.unwrap_or(false);
    let excl_max = s.exclusive_maximum.unwrap_or(false);
    if let Some(min) = s.minimum {
        if x < min || (excl_min && x == min) {
            return Err(format!(
                "must be {} {min}",
                if excl_min { "above" } else { "at least" }
            ));
        }
    }
    if let Some(max) = s.maximum {
        if x > max || (excl_max && x == max) {
            return Err(format!(
                "must be {} {max}",
                if excl_max { "below" } else { "at most" }
            ));
        }
    }
    Ok(())
}

/// `step` (a field name or `[i]`) followed by the `rest` of a path below it.
fn under(step: &str, rest: &str) -> String {
    match rest.chars().next() {
        None => step.to_string(),
        Some('[') => format!("{step}{rest}"),
        Some(_) => format!("{step}.{rest}"),
    }
}

fn article(ty: &str) -> &'static str {
    if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

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
        let has_body = H::Body::describe(&mut registry).is_some();
        H::Response::register(&mut registry);
        let (path_plan, query_plan) = (H::Path::plan(&registry), H::Query::plan(&registry));
        Ok(Arc::new(PreparedTypedHandler::<H> {
            shared: Arc::new(TypedHandlerShared {
                handler: self.0.clone(),
                state,
                registry,
                has_body,
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
    registry: Registry,
    /// `H::Body` is a JSON body (not [`Empty`]).
    has_body: bool,
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
            typed: Some(super::TypedDocFn(Arc::new(typed_doc::<H>))),
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
        let reg = &sh.registry;
        let path = H::Path::parse(
            MetaParamIn::Path,
            &sh.path_plan,
            &|name| {
                req.raw_path_param(name)
                    .map(String::from)
                    .into_iter()
                    .collect()
            },
            reg,
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
            reg,
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
            let bytes = super::grafana_json::read_body(req, self.limit)
                .await
                .map_err(InputError::new)?;
            H::Body::parse(Some(&bytes), reg)?
        } else {
            H::Body::parse(None, reg)?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_paths_name_nested_fields_and_items() {
        assert_eq!(under("items", "[0].qty"), "items[0].qty");
        assert_eq!(under("[0]", "qty"), "[0].qty");
        assert_eq!(under("qty", ""), "qty");
    }
}
