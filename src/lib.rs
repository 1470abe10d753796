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

pub use app::App;
pub use cli::StartContext;
pub use model::app_metrics::{AppCounter, AppGauge, AppHistogram};
pub use model::dependencies::DependencyKind;
pub use model::dependencies::Outcome;
pub use model::kinds::{HandlerKind, MetricSourceKind, Middleware};
pub use model::{Identity, KindRegistry, Resources};
pub use plugins::dependencies::{
    DependencyError, HttpClient, HttpRequest, HttpResponse, Sql, SqlOperation,
};
pub use plugins::handlers::typed::{
    Empty, Handler, Input, NoOptions, RequestContext, RequestSpan, Setup, SetupError, TraceContext,
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
