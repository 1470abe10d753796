//! Data files named in the manifest (`endpoints[].data`), read and checked
//! once during validation, for the kinds that read one.

use crate::manifest::{Diagnostics, Endpoint, Source};
use serde_json::Value as Json;

/// Reads the endpoint's data file as a list of objects (its handler kind
/// needs one: it is an error when there is none).
/// At most `limit` bytes (`service.data_limit_bytes`).
pub fn load_items(
    src: &Source,
    ep: &Endpoint,
    index: usize,
    limit: u64,
) -> Result<Vec<serde_json::Map<String, Json>>, Diagnostics> {
    let at = format!("endpoints[{index}].data");
    let fail = |msg: String| Diagnostics(vec![src.error(&at, msg)]);
    let rel = ep.data.as_deref().ok_or_else(|| {
        Diagnostics(vec![src.error(
            &format!("endpoints[{index}]"),
            format!("handler kind {:?} needs a `data:` file", ep.handler),
        )])
    })?;
    let (text, path) = src.read_data(rel, limit).map_err(fail)?;
    // Straight into JSON values: no intermediate YAML tree (one copy less).
    let json: Json = serde_yaml::from_str(&text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("{}:{}:{}", path.display(), l.line(), l.column()))
            .unwrap_or_else(|| path.display().to_string());
        fail(format!("malformed data file {loc}: {e}"))
    })?;
    drop(text);
    let Json::Array(list) = json else {
        return Err(fail(format!(
            "data file {} must hold a list of objects",
            path.display()
        )));
    };
    list.into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Json::Object(o) => Ok(o),
            _ => Err(fail(format!(
                "data file {}: item {i} is not an object",
                path.display()
            ))),
        })
        .collect()
}

/// One item of a collection.
pub type Item = serde_json::Map<String, serde_json::Value>;

/// True when `item.field` is a number below `threshold`.
pub fn is_below(item: &Item, field: &str, threshold: f64) -> bool {
    item.get(field)
        .and_then(|v| v.as_f64())
        .is_some_and(|v| v < threshold)
}
