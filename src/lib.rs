//! telltale: one manifest → an instrumented HTTP service and its whole
//! monitoring stack.
//!
//! Data flow, and the folder each stage lives in; each imports only the
//! stages to its left (`tests/layering.rs` checks it):
//!
//! ```text
//! manifest.yaml ─► manifest/ ─► model/ ─┬─► server/  serve: routes, metrics, /grafana/* (server/datasource)
//!                  parse,       validate, ├─► render/  render: Prometheus, Alloy/Promtail, Grafana, compose
//!                  locate       lint,     └─► chaos/   chaos: a client of a running server
//!                               budget
//! logging/   the log writer (used by server/)
//! plugins/   the built-in handler and metric source kinds, implementing model/kinds.rs
//! app.rs     App: builds the KindRegistry (built-ins, then yours) and runs the CLI (cli.rs)
//! ```
//!
//! A service of your own is an [`App`] with its own [`Handler`] kinds and
//! `source: app` metrics ([`AppCounter`] and friends); `examples/shop` is one.
//! Its `main` is `App::new().handler(...).run_cli()`; here the same app
//! checks a manifest that names its handler and metric (`validate`):
//!
//! ```
//! use poem_openapi::{payload::Json, ApiResponse, Object};
//! use telltale::{AppCounter, App, Empty, ErrorBody, Handler, Input, NoOptions, Setup, SetupError};
//!
//! /// An order as the client sends it.
//! #[derive(Object)]
//! struct NewOrder {
//!     product_id: u64,
//!     payment: String,
//! }
//!
//! #[derive(ApiResponse)]
//! enum Placed {
//!     /// The order was placed.
//!     #[oai(status = 201)]
//!     Created(Json<NewOrder>),
//!     /// The product is not in the catalogue.
//!     #[oai(status = 404)]
//!     Unknown(Json<ErrorBody>),
//! }
//!
//! struct Create;
//!
//! impl Handler for Create {
//!     type Options = NoOptions;
//!     type Path = Empty;
//!     type Query = Empty;
//!     type Body = NewOrder;
//!     type Response = Placed;
//!     type State = AppCounter<1>;
//!
//!     fn name(&self) -> &'static str {
//!         "orders.create"
//!     }
//!
//!     fn setup(&self, _: NoOptions, ctx: &mut Setup<'_>) -> Result<AppCounter<1>, SetupError> {
//!         ctx.counter("orders_placed_total", ["payment"])
//!     }
//!
//!     async fn handle(&self, placed: &AppCounter<1>, input: Input<Empty, Empty, NewOrder>) -> Placed {
//!         if input.body.product_id > 100 {
//!             let e = ErrorBody::new(telltale::StatusCode::NOT_FOUND, "no such product");
//!             return Placed::Unknown(Json(e));
//!         }
//!         placed.inc([&input.body.payment]);
//!         Placed::Created(Json(input.body))
//!     }
//! }
//!
//! const MANIFEST: &str = r#"
//! service: { name: shop, version: 0.1.0 }
//! endpoints:
//!   - { path: /orders, method: POST, handler: orders.create, summary: Place an order }
//! metrics:
//!   - name: orders_placed_total
//!     type: counter
//!     help: Orders placed, by payment method.
//!     labels: [{ name: payment, values: [card, cash], fallback: other }]
//!     source: app
//! "#;
//!
//! let dir = std::env::temp_dir().join(format!("telltale-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let manifest = dir.join("manifest.yaml");
//! std::fs::write(&manifest, MANIFEST).unwrap();
//!
//! let app = App::new().handler(Create);
//! let code = app.run_cli_from(["shop", "validate", "--manifest", manifest.to_str().unwrap()]);
//! assert_eq!(code, std::process::ExitCode::SUCCESS);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

#![warn(missing_docs)]

/// The modules: private, or with the `internals` feature (telltale's own
/// tests) public and hidden, reached through [`internals`].
macro_rules! modules {
    ($($m:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $m;
        #[cfg(not(feature = "internals"))]
        mod $m;
    )*};
}

modules!(
    app, chaos, cli, fetch, logging, manifest, model, plugins, render, server, term, traces,
    verify,
);

/// telltale's internal modules, for its own tests, the examples' tests and
/// benchmarks (the `internals` feature, off by default). Not part of the
/// API, no stability.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::{
        app, chaos, cli, fetch, logging, manifest, model, plugins, render, server, term, traces,
        verify,
    };
}

/// What the kind traits ([`HandlerKind`], [`MetricSourceKind`],
/// [`DependencyKind`]) see and return: for plugins written as the built-in
/// kinds are. A service's own handlers implement [`Handler`] instead.
pub mod kinds {
    pub use crate::manifest::{Diagnostic, Diagnostics};
    pub use crate::model::contrib::{
        AlertCtx, AlertTuning, BadKind, BadRequests, BadVariant, BodyFn, ChaosTraffic,
        DerivedAlertRule, Draw, Role,
    };
    pub use crate::model::dependencies::{
        CheckFuture, ComposeService, DependencyCtx, HealthCheck, PoolReader, PoolStats,
        PreparedDependency, StartCtx, Started,
    };
    pub use crate::model::kinds::{
        label_names, opts, Cache, HandlerCtx, Host, Installer, MetricCtx, OperationDoc, ParamDoc,
        ParamIn, PeriodicTask, PreparedHandler, PreparedSource, ProbeRole, TypedDoc, TypedDocFn,
    };
}

pub use app::App;
pub use cli::StartContext;
pub use model::app_metrics::{AppCounter, AppGauge, AppHistogram};
pub use model::dependencies::DependencyKind;
pub use model::dependencies::Outcome;
pub use model::kinds::{HandlerKind, MetricSourceKind, Middleware};
pub use model::{Identity, KindRegistry, Resources};
pub use plugins::dependencies::sql::ConnFuture;
pub use plugins::dependencies::{
    DependencyError, HttpClient, HttpRequest, HttpResponse, Sql, SqlOperation,
};
pub use plugins::handlers::typed::{
    Empty, Handler, Input, NoOptions, RequestContext, RequestSpan, Setup, SetupError,
    SetupErrorKind, TraceContext,
};
/// HTTP status codes (for [`ErrorBody::new`]).
pub use poem::http::StatusCode;
/// The poem-openapi telltale is built with: derive `Object` and
/// `ApiResponse` for a handler's types with this version.
pub use poem_openapi;
pub use server::auth::Caller;
pub use server::context::current_caller;
pub use server::error::ErrorBody;
/// The `sqlx` telltale's database clients are built with: write queries
/// for [`SqlOperation`] with this version.
pub use sqlx;
