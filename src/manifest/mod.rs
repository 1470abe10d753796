//! manifest.yaml → validated [`Model`].
//!
//! `load` reads and deserializes (collecting every structural error),
//! `validate` checks the meaning (names, references, plugin options) and
//! prepares each plugin. The server and the renderer only ever see a
//! [`Model`], so anything they rely on is checked here once.

pub mod budget;
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

/// Loads and validates with the kinds of `registry`.
///
/// With no path, `./manifest.yaml` is used when it exists, else the embedded copy.
pub fn open(
    path: Option<&Path>,
    registry: &crate::plugins::Registry,
) -> Result<Model, Diagnostics> {
    open_or(path, registry, None)
}

/// Like [`open`], with `embedded` (display name, text) instead of the demo
/// manifest when there is neither a path nor a `./manifest.yaml`.
pub fn open_or(
    path: Option<&Path>,
    registry: &crate::plugins::Registry,
    embedded: Option<(&str, &str)>,
) -> Result<Model, Diagnostics> {
    let loaded = match path {
        Some(p) => load_file(p)?,
        None if Path::new("manifest.yaml").exists() => load_file(Path::new("manifest.yaml"))?,
        None => match embedded {
            Some((name, text)) => load_str(name, text, None)?,
            None => load_embedded()?,
        },
    };
    validate(loaded, registry)
}
