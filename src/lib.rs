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
//! ```

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
