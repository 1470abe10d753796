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

pub mod app;
pub mod chaos;
pub mod cli;
pub mod fetch;
pub mod logging;
pub mod manifest;
pub mod model;
pub mod plugins;
pub mod render;
pub mod server;
pub mod term;
pub mod traces;
pub mod verify;

pub use app::App;
pub use cli::StartContext;
pub use model::app_metrics::{AppCounter, AppGauge, AppHistogram};
pub use model::dependencies::Outcome;
pub use model::kinds::Middleware;
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
