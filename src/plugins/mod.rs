//! Plugin registries. Each kind is one file behind one trait; adding a kind
//! means writing that file and adding one line to the registry's `KINDS`.
//!
//! - [`handlers`]: what an endpoint does (`endpoints[].handler`).
//! - [`metrics`]: what feeds a metric family (`metrics[].source`).
//! - render targets live in `crate::render::targets`.

pub mod handlers;
pub mod metrics;
