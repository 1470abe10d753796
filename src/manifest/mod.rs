//! manifest.yaml → validated [`Model`].
//!
//! `load` reads and deserializes (collecting every structural error),
//! `validate` checks the meaning (names, references, plugin options) and
//! prepares each plugin. The server and the renderer only ever see a
//! [`Model`], so anything they rely on is checked here once.

pub mod diag;
pub mod load;
pub mod model;
pub mod spans;
pub mod validate;

pub use diag::{Diagnostic, Diagnostics};
pub use load::{load_embedded, load_file, load_str, Loaded, Source};
pub use model::*;
pub use validate::{validate, Model};

use std::path::Path;

/// Loads and validates: the one entry point of `serve`, `validate` and `render`.
///
/// With no path, `./manifest.yaml` is used when it exists, else the embedded copy.
pub fn open(path: Option<&Path>) -> Result<Model, Diagnostics> {
    let loaded = match path {
        Some(p) => load_file(p)?,
        None if Path::new("manifest.yaml").exists() => load_file(Path::new("manifest.yaml"))?,
        None => load_embedded()?,
    };
    validate(loaded)
}
