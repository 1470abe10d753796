//! Plugin kinds, and the [`Registry`] value that holds them. Each built-in
//! kind is one file behind one trait, registered by name into the registry
//! that `App` builds, through the same calls as a user's own kinds.
//!
//! - [`handlers`]: what an endpoint does (`endpoints[].handler`).
//! - [`metrics`]: what feeds a metric family (`metrics[].source`).
//! - render targets live in `crate::render::targets`.

pub mod handlers;
pub mod metrics;
mod registry;

pub use registry::Registry;
