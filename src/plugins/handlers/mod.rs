//! Endpoint handler kinds (`endpoints[].handler`).
//!
//! A kind is a config parser plus a `prepare()` that checks options and loads
//! data (this runs for `validate` too, so bad options fail there), and the
//! prepared handler builds the poem endpoint once the server is assembled.

pub use crate::manifest::{Diagnostics, Endpoint, HttpMethod};
#[cfg(any(test, feature = "internals"))]
pub use crate::manifest::{Manifest, Source};
pub use crate::model::contrib::{BadKind, BadRequests, BadVariant, BodyFn, ChaosTraffic, Draw};
pub use crate::model::kinds::{
    HandlerCtx, HandlerKind, Host, OperationDoc, ParamDoc, ParamIn, PreparedHandler, TypedDoc,
    TypedDocFn,
};
pub use crate::model::Model;
pub use poem::endpoint::BoxEndpoint;
pub use poem::Response;
pub use serde_json::Value as Json;
pub use std::sync::Arc;

mod collection;
mod fault;
mod grafana_json;
mod info;
mod probe;
mod prometheus;
pub mod typed;

pub use crate::model::data::load_items;

/// The built-in kinds, as `KindRegistry::builtin` registers them.
pub(crate) fn builtin() -> Vec<Arc<dyn HandlerKind>> {
    vec![
        Arc::new(collection::CollectionHandler),
        Arc::new(info::InfoHandler),
        Arc::new(probe::ProbeHandler),
        Arc::new(fault::FaultHandler),
        Arc::new(prometheus::PrometheusHandler),
        Arc::new(grafana_json::GrafanaJsonHandler),
    ]
}

/// A JSON response with pre-serialized bytes.
pub fn json_bytes(status: poem::http::StatusCode, body: impl Into<poem::Body>) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body)
}
