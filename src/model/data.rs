//! Data files named in the manifest (`endpoints[].data`), read and checked
//! once during validation: the items of a `collection` endpoint, and the
//! ones a `collection.below_threshold` gauge counts (the JSON datasource's
//! tables use the same function, so a table and its gauge never disagree).

use crate::manifest::{Diagnostics, Endpoint, Manifest, Source};
use serde::Deserialize;
use serde_json::Value as Json;

/// Reads the endpoint's data file as a list of objects.
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
            "handler kind \"collection\" needs a `data:` file",
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BelowThresholdOptions {
    /// Path of a `collection` endpoint.
    pub endpoint: String,
    /// Numeric field of each item.
    pub field: String,
    /// Items with `field < threshold` count.
    pub threshold: f64,
}

/// True when `item.field` is a number below `threshold`.
pub fn is_below(item: &Item, field: &str, threshold: f64) -> bool {
    item.get(field)
        .and_then(|v| v.as_f64())
        .is_some_and(|v| v < threshold)
}

/// The items that `metrics[index]` (a `collection.below_threshold` gauge)
/// counts, checked like the metric itself. The JSON datasource's tables
/// use this, so a table and its gauge can never disagree.
pub fn below_threshold_items(
    src: &Source,
    manifest: &Manifest,
    index: usize,
) -> Result<Vec<Item>, Diagnostics> {
    let metric = &manifest.metrics[index];
    let at = |f: &str| format!("metrics[{index}].{f}");
    let mut errs = Diagnostics::default();
    let o: BelowThresholdOptions = src
        .options(&metric.options, &at("options"), &mut errs)
        .ok_or(errs)?;
    let fail = |f: &str, msg: String| Diagnostics(vec![src.error(&at(f), msg)]);
    let Some((idx, ep)) = manifest
        .endpoints
        .iter()
        .enumerate()
        .find(|(_, e)| e.path == o.endpoint && e.handler == "collection")
    else {
        return Err(fail(
            "options.endpoint",
            format!("{:?} is not a declared `collection` endpoint", o.endpoint),
        ));
    };
    let items = load_items(src, ep, idx, manifest.service.data_limit_bytes)?;
    if !items
        .iter()
        .any(|i| i.get(&o.field).is_some_and(|v| v.is_number()))
    {
        return Err(fail(
            "options.field",
            format!(
                "no item of {} has a numeric field {:?}",
                o.endpoint, o.field
            ),
        ));
    }
    Ok(items
        .into_iter()
        .filter(|i| is_below(i, &o.field, o.threshold))
        .collect())
}
