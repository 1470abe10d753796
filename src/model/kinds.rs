//! The plugin interface: the traits every handler kind and metric source
//! kind implements, built-in or a user's, and what each sees. Validation
//! (`model`) calls `prepare()`; the server calls `endpoint()` and
//! `install()` with the running state behind [`Host`]. The built-in kinds
//! themselves live in `plugins/`, above every stage. What a prepared
//! plugin contributes to the other stages (roles, derived alerts, chaos
//! traffic) is typed in [`super::contrib`].

use super::contrib::{AlertCtx, AlertTuning, ChaosTraffic, DerivedAlertRule, Role};
use super::data::Item;
use super::Model;
use crate::manifest::{Diagnostics, Endpoint, HttpMethod, Manifest, Metric, MetricType, Source};
use poem::endpoint::BoxEndpoint;
use poem::Response;
use prometheus::{HistogramVec, IntCounterVec, Registry};
use serde_json::Value as Json;
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a running server offers the endpoints it builds.
pub trait Host: Send + Sync {
    /// The validated manifest being served.
    fn model(&self) -> &Arc<Model>;
    /// Every family `/metrics` encodes, sorted by name: the declared ones
    /// and telltale's own.
    fn gather(&self) -> Vec<prometheus::proto::MetricFamily>;
    /// Data and metrics are loaded and the socket is bound.
    fn ready(&self) -> bool;
    /// A shutdown signal arrived.
    fn draining(&self) -> bool;
    /// When the server started, and for how long it has run.
    fn started_at(&self) -> SystemTime;
    /// How long the server has run.
    fn uptime(&self) -> Duration;
    /// A part of the server's state by type (the JSON datasource's store).
    fn extension(&self, type_id: std::any::TypeId) -> Option<&(dyn Any + Send + Sync)>;
}

impl dyn Host {
    /// The server's state of type `T`, if it has one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extension(std::any::TypeId::of::<T>())
            .and_then(|a| a.downcast_ref::<T>())
    }
}

/// What a kind sees while preparing one endpoint.
pub struct HandlerCtx<'a> {
    /// Its position in `endpoints:`.
    pub index: usize,
    /// Its declaration.
    pub endpoint: &'a Endpoint,
    /// The manifest declaring it.
    pub manifest: &'a Manifest,
    /// Where the manifest came from, for located diagnostics.
    pub source: &'a Source,
    /// The `source: app` metrics, prepared before any handler.
    pub apps: &'a super::app_metrics::AppFamilies,
    /// What kinds compute once per manifest and share between endpoints
    /// (so that N endpoints of a kind cost O(N), not O(N²)).
    pub cache: &'a Cache,
    /// The JSON datasource's checked targets (empty if it has errors).
    pub datasource: &'a super::datasource::Spec,
    /// The registry: what start hooks provide, and what they built.
    pub registry: &'a super::KindRegistry,
    /// One slot per `dependencies[i]` (`None` where it has errors).
    pub dependencies: &'a [Option<Arc<dyn super::dependencies::PreparedDependency>>],
}

/// A per-validation memo, keyed by name: one value of each type per key.
#[derive(Default)]
pub struct Cache(std::cell::RefCell<std::collections::HashMap<&'static str, Box<dyn Any>>>);

impl Cache {
    /// The value under `key`, computed by `f` the first time.
    pub fn get_or_insert<T: Clone + 'static>(&self, key: &'static str, f: impl FnOnce() -> T) -> T {
        if let Some(v) = self.0.borrow().get(key).and_then(|b| b.downcast_ref::<T>()) {
            return v.clone();
        }
        let v = f();
        self.0.borrow_mut().insert(key, Box::new(v.clone()));
        v
    }
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

/// A handler kind. A user's typed handlers implement `telltale::Handler`
/// instead, which `App::handler` adapts to this trait.
pub trait HandlerKind: Send + Sync {
    /// The name used in `endpoints[].handler`.
    fn name(&self) -> &'static str;
    /// The methods it can serve (upper case; HEAD goes with GET); `None`:
    /// any. Another method in `endpoints[].method` is a located error.
    fn methods(&self) -> Option<&'static [HttpMethod]> {
        None
    }
    /// Checks options and loads data.
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics>;
}

/// The probes of a Kubernetes container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRole {
    /// Restart the container when it fails.
    Liveness,
    /// Send no traffic while it fails.
    Readiness,
    /// Hold the other probes until it first succeeds.
    Startup,
}

/// A validated endpoint, ready to serve.
pub trait PreparedHandler: Send + Sync {
    /// The poem endpoint; called once at start-up, with the running
    /// server's state.
    fn endpoint(&self, rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response>;
    /// What the OpenAPI document says about it.
    fn doc(&self) -> OperationDoc;
    /// Which orchestrator probe this endpoint answers, if any (the
    /// Kubernetes Deployment's probes are the endpoints that say so).
    fn probe(&self) -> Option<ProbeRole> {
        None
    }
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
    /// The parts the endpoint plays that other stages look for.
    fn roles(&self) -> &[Role] {
        &[]
    }
    /// What chaos may send to `endpoint` (the declaration this handler was
    /// prepared from): by default good requests when it is a GET.
    fn chaos(&self, endpoint: &Endpoint, _model: &Model) -> ChaosTraffic {
        ChaosTraffic::safe_gets(endpoint.method)
    }
}

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// The query string.
    Query,
    /// The path (`/orders/{id}`).
    Path,
}

/// One documented parameter.
#[derive(Debug, Clone)]
pub struct ParamDoc {
    /// Its name.
    pub name: String,
    /// Where it is read from.
    pub location: ParamIn,
    /// JSON schema of the value.
    pub schema: Json,
    /// Whether a request must carry it.
    pub required: bool,
    /// What it is, for people.
    pub description: String,
}

/// OpenAPI facts of one operation.
#[derive(Debug, Clone)]
pub struct OperationDoc {
    /// Its parameters.
    pub params: Vec<ParamDoc>,
    /// JSON schema of the request body, if it takes one.
    pub request: Option<Json>,
    /// A request without a body is refused (else an empty body is taken
    /// as the schema's default).
    pub request_required: bool,
    /// (status, description, content type, JSON schema) of each response.
    /// The first is the success status the route's series start at.
    pub responses: Vec<(u16, String, &'static str, Json)>,
    /// A typed handler's operation from poem-openapi's own types; when set,
    /// it replaces `params`, `request` and `responses` in the document.
    pub typed: Option<TypedDocFn>,
    /// Named schemas the others refer to as `{"$ref": "#/components/schemas/<name>"}`,
    /// held once by the document however many operations use them (a name
    /// must always stand for the same schema).
    pub components: Vec<(String, Json)>,
}

/// A typed operation: parameters, body and responses as poem-openapi
/// builds them from the handler's types.
pub struct TypedDoc {
    /// Its parameters.
    pub params: Vec<poem_openapi::registry::MetaOperationParam>,
    /// Its request body, if it takes one.
    pub request: Option<poem_openapi::registry::MetaRequest>,
    /// Its responses.
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
            request_required: false,
            responses: vec![(status, description.into(), content_type, schema)],
            typed: None,
            components: Vec::new(),
        }
    }
}

/// What a kind sees while preparing one metric.
pub struct MetricCtx<'a> {
    /// Its position in `metrics:`.
    pub index: usize,
    /// Its declaration.
    pub metric: &'a Metric,
    /// The manifest declaring it.
    pub manifest: &'a Manifest,
    /// Where the manifest came from, for located diagnostics.
    pub source: &'a Source,
    /// Who the service is (`build_info`).
    pub identity: &'a super::Identity,
}

impl MetricCtx<'_> {
    /// `metrics[i].<field>`, for diagnostics.
    pub fn at(&self, field: &str) -> String {
        format!("metrics[{}].{field}", self.index)
    }
    fn fail(&self, field: &str, msg: String) -> Diagnostics {
        Diagnostics(vec![self.source.error(&self.at(field), msg)])
    }
    /// The source only feeds one metric type.
    pub fn require_type(&self, t: MetricType) -> Result<(), Diagnostics> {
        if self.metric.kind == t {
            return Ok(());
        }
        Err(self.fail(
            "type",
            format!(
                "source {:?} produces a {}, not a {}",
                self.metric.source,
                t.as_str(),
                self.metric.kind.as_str()
            ),
        ))
    }
    /// Labels must come from this closed set (bounded cardinality).
    pub fn labels_within(&self, allowed: &[&str]) -> Result<(), Diagnostics> {
        for (j, l) in self.metric.labels.iter().enumerate() {
            if !l.values.is_empty() || l.fallback.is_some() {
                return Err(Diagnostics(vec![self.source.error(
                    &self.at(&format!("labels[{j}]")),
                    format!(
                        "source {:?} fills label {:?} itself; values and fallback are for source: app",
                        self.metric.source, l.name
                    ),
                )]));
            }
            if !allowed.contains(&l.name.as_str()) {
                return Err(Diagnostics(vec![self.source.error(
                    &self.at(&format!("labels[{j}]")),
                    format!(
                        "source {:?} cannot fill label {l:?} (it can fill: {})",
                        self.metric.source,
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                )]));
            }
        }
        Ok(())
    }
    /// Parses `options:` as `T` (unknown keys are errors).
    pub fn options<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Diagnostics> {
        let mut errs = Diagnostics::default();
        self.source
            .options(&self.metric.options, &self.at("options"), &mut errs)
            .ok_or(errs)
    }
}

/// A metric source kind.
pub trait MetricSourceKind: Send + Sync {
    /// The name used in `metrics[].source`.
    fn name(&self) -> &'static str;
    /// Checks the declaration and options.
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics>;
    /// Which of its metrics derive an alert, for the error on alert
    /// settings of a metric that derives none ("the http.requests counter
    /// with a status label"); `None`: no metric of this kind derives one.
    fn derives_alert(&self) -> Option<&'static str> {
        None
    }
}

/// A validated source, ready to install.
pub trait PreparedSource: Send + Sync {
    /// Registers the family in `inst.registry` and wires it up.
    fn install(&self, metric: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()>;
    /// The most series this family can expose (see `manifest::budget`):
    /// by default the product of its labels' declared values (each with
    /// its fallback), times the series of one histogram sample.
    fn max_series(&self, metric: &Metric, _http: &super::budget::HttpShape) -> usize {
        metric
            .labels
            .iter()
            .map(|l| l.series_values().len().max(1))
            .fold(super::budget::per_label_set(metric), usize::saturating_mul)
    }
    /// For `source: app`: the family handlers' `setup` may ask for.
    fn app_family(&self) -> Option<Arc<super::app_metrics::AppFamily>> {
        None
    }
    /// Whether the family accumulates (counters, histograms, gauges the
    /// application sets), so that a reload must keep it: when the new
    /// manifest declares the metric exactly as before, the server keeps
    /// this prepared source and the family it installed, values and all.
    /// `false` (the default) installs the family afresh from the new
    /// manifest, as for a gauge sampled on a timer or read from data.
    fn keeps_values(&self) -> bool {
        false
    }
    /// The parts the family plays that other stages look for.
    fn roles(&self) -> &[Role] {
        &[]
    }
    /// How `metrics[].alert` tunes the alert it derives; `None` when it
    /// derives none (alert settings on it are an error).
    fn alert_tuning(&self) -> Option<AlertTuning> {
        None
    }
    /// The alerts it derives, `metric` being its declaration with its
    /// `alert:` settings (only called when they leave the alert enabled).
    fn alerts(&self, _metric: &Metric, _ctx: &AlertCtx<'_>) -> Vec<DerivedAlertRule> {
        Vec::new()
    }
    /// The items a table target of the JSON datasource shows for this
    /// family; `None`: it cannot back a table.
    fn table_items(&self) -> Option<&[Item]> {
        None
    }
}

/// Something to run on a timer (not per request).
pub struct PeriodicTask {
    /// How often.
    pub every: Duration,
    /// What it runs.
    pub tick: Box<dyn FnMut() + Send>,
}

/// What installing sources produces for the server.
pub struct Installer<'a> {
    /// The registry `/metrics` encodes.
    pub registry: &'a Registry,
    /// Fed by the HTTP middleware on every request.
    /// With the declared label names, in order.
    pub http_requests: Option<(IntCounterVec, Vec<String>)>,
    /// Fed by the HTTP middleware on every request, with the declared label names, in order.
    pub http_duration: Option<(HistogramVec, Vec<String>)>,
    /// What to run on timers.
    pub samplers: Vec<PeriodicTask>,
}

/// `prometheus::Opts` for a declared metric.
pub fn opts(m: &Metric) -> prometheus::Opts {
    prometheus::Opts::new(m.name.clone(), m.help.clone())
}

/// Label names as `&str`.
pub fn label_names(m: &Metric) -> Vec<&str> {
    m.labels.iter().map(|l| l.name.as_str()).collect()
}

/// Middleware of the user's, around every handler: it runs after routing
/// and authentication, inside telltale's observe layer, so its responses
/// are counted, logged and carry the request id. Any poem
/// [`poem::Middleware`] over boxed endpoints is one. Add it with
/// `App::middleware`.
///
/// ```
/// use poem::endpoint::{make_sync, BoxEndpoint};
/// use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
/// use telltale::{Middleware, StatusCode};
///
/// /// Refuses a request without an `x-tenant` header.
/// struct RequireTenant;
///
/// impl Middleware for RequireTenant {
///     fn wrap(&self, ep: BoxEndpoint<'static, Response>) -> BoxEndpoint<'static, Response> {
///         ep.around(|ep, req| async move {
///             if !req.headers().contains_key("x-tenant") {
///                 return Ok(StatusCode::BAD_REQUEST.into_response());
///             }
///             ep.call(req).await
///         })
///         .boxed()
///     }
/// }
///
/// let _app = telltale::App::new().middleware(RequireTenant);
///
/// // What it does to a handler:
/// let ep = RequireTenant.wrap(make_sync(|_| "hello").map_to_response().boxed());
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let refused = rt.block_on(ep.call(Request::builder().finish())).unwrap();
/// assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
/// let passed = rt.block_on(ep.call(Request::builder().header("x-tenant", "a").finish()));
/// assert_eq!(passed.unwrap().status(), StatusCode::OK);
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// `ep` wrapped.
    fn wrap(&self, ep: BoxEndpoint<'static, Response>) -> BoxEndpoint<'static, Response>;
}

impl<M> Middleware for M
where
    M: poem::Middleware<BoxEndpoint<'static, Response>> + Send + Sync + 'static,
    M::Output: 'static,
{
    fn wrap(&self, ep: BoxEndpoint<'static, Response>) -> BoxEndpoint<'static, Response> {
        use poem::EndpointExt;
        self.transform(ep).map_to_response().boxed()
    }
}
