//! manifest.yaml, parsed and located: the first stage.
//!
//! `load` reads and deserializes, collecting every structural error with
//! its `file:line:column`; `document` holds the types, `spans` maps field
//! paths to positions. Checking what the fields mean is the next stage,
//! `crate::model`; this folder imports nothing else of telltale.

pub mod addresses;
pub mod auth;
pub mod dashboard;
pub mod datasource;
pub mod dependencies;
pub mod diag;
pub mod document;
pub mod load;
pub mod logging;
pub mod spans;
pub mod stack;
pub mod traces;
pub mod values;

pub use diag::{Diagnostic, Diagnostics};
pub use document::*;
pub use load::{load_embedded, load_file, load_str, Failed, Loaded, Source};

/// The JSON Schema (draft 2020-12) of `manifest.yaml`, generated from
/// [`Manifest`] and the types below it: their doc comments are its
/// descriptions. `telltale schema` prints it; `render` writes it.
pub fn schema() -> String {
    let mut schema = schemars::schema_for!(Manifest);
    schema.insert("title".into(), "telltale manifest.yaml".into());
    schema.insert(
        "$comment".into(),
        "Generated from telltale's manifest types by `telltale schema` (and `telltale render`). Do not edit.".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
