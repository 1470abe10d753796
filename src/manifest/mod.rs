//! manifest.yaml, parsed and located: the first stage.
//!
//! `load` reads and deserializes, collecting every structural error with
//! its `file:line:column`; `model` holds the types, `spans` maps field
//! paths to positions. Checking what the fields mean is the next stage,
//! `crate::model`; this folder imports nothing else of telltale.

pub mod diag;
pub mod load;
pub mod model;
pub mod spans;

pub use diag::{Diagnostic, Diagnostics};
pub use load::{load_embedded, load_file, load_str, Loaded, Source};
pub use model::*;
