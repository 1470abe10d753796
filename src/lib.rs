//! telltale: one manifest → an instrumented HTTP service and its whole
//! monitoring stack.
//!
//! Data flow, and the folder each step lives in:
//!
//! ```text
//! manifest.yaml ─► manifest/ (load, validate) ─► Model ─┬─► server/  (serve) ◄─ datasource/ (/grafana/*)
//!                  lint.rs, promql.rs                   ├─► render/  (render)
//!                                                       └─► chaos/   (chaos, a client of a running server)
//! plugins/handlers  endpoint kinds       plugins/metrics  metric source kinds
//! plugins/registry  the Registry value that App builds and hands down
//! ```
//!
//! A service of your own is an [`App`] with its own [`Handler`] kinds and
//! `source: app` metrics ([`AppCounter`] and friends); `examples/shop` is one.

pub mod app;
pub mod chaos;
pub mod cli;
pub mod datasource;
pub mod lint;
pub mod logging;
pub mod logql;
pub mod manifest;
pub mod plugins;
pub mod promql;
pub mod render;
pub mod server;

pub use app::App;
pub use plugins::handlers::typed::{Empty, Handler, Input, NoOptions, Setup};
pub use plugins::metrics::app::{AppCounter, AppGauge, AppHistogram};
pub use plugins::Registry;
/// The poem-openapi telltale is built with: derive `Object` and
/// `ApiResponse` for a handler's types with this version.
pub use poem_openapi;
