//! Plugin kinds, and the [`KindRegistry`] value that holds them. Each built-in
//! kind is one file behind one trait, registered by name into the registry
//! that `App` builds, through the same calls as a user's own kinds.
//!
//! - [`handlers`]: what an endpoint does (`endpoints[].handler`).
//! - [`metrics`]: what feeds a metric family (`metrics[].source`).
//! - [`dependencies`]: what a service calls (`dependencies[].kind`).
//! - render targets live in `crate::render::targets`.
//!
//! Besides serving, a prepared kind tells the other stages what they need
//! of it (`crate::model::contrib`): the roles its family or endpoint plays,
//! the alerts it derives, the traffic chaos may send it. Only this folder
//! knows the kinds by name.

pub mod dependencies;
pub mod handlers;
pub mod metrics;

pub use crate::model::KindRegistry;

impl KindRegistry {
    /// The built-in kinds: `collection`, `info`, `probe`, `fault`,
    /// `prometheus`, `grafana_json`; `http.requests`, `http.duration`,
    /// `system.cpu`, `system.memory`, `collection.below_threshold`,
    /// `build.info` and `app`; the dependency kinds `http`, `postgres` and
    /// `sqlite`.
    pub fn builtin() -> KindRegistry {
        let mut r = KindRegistry::empty();
        for k in handlers::builtin() {
            r.add_handler_kind(k)
                .expect("built-in handler names are distinct");
        }
        for k in metrics::builtin() {
            r.add_source_kind(k)
                .expect("built-in source names are distinct");
        }
        for k in dependencies::builtin() {
            r.add_dependency_kind(k)
                .expect("built-in dependency kind names are distinct");
        }
        r
    }
}
