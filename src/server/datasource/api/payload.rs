//! A target's payload and the query's time range, read from the request
//! with the field they came from named in any error.

use super::*;

/// A payload as an object: absent, `null` and `""` are empty; a string must hold JSON.
pub(super) fn payload_object(p: Option<&Json>, at: &str) -> Result<Map<String, Json>, BadField> {
    let parsed;
    let v = match p {
        None | Some(Json::Null) => return Ok(Map::new()),
        Some(Json::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Json::String(s)) => {
            parsed = serde_json::from_str::<Json>(s)
                .map_err(|e| BadField::new(at, &format!("payload text is not JSON: {e}")))?;
            &parsed
        }
        Some(v) => v,
    };
    match v {
        Json::Object(m) => Ok(m.clone()),
        _ => Err(BadField::new(at, "expected a JSON object")),
    }
}

/// A list argument: an array of strings, or one comma-separated string.
pub(super) fn list_arg(v: &Json, at: &str) -> Result<Vec<String>, BadField> {
    match v {
        Json::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Json::Array(a) => a
            .iter()
            .enumerate()
            .map(|(j, x)| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| BadField::new(&format!("{at}[{j}]"), "expected a string"))
            })
            .collect(),
        _ => Err(BadField::new(at, "expected a list of strings")),
    }
}

/// Splits a payload into its one allowed key (`allowed`), rejecting others.
pub(super) fn payload_list(
    p: Option<&Json>,
    at: &str,
    allowed: Option<&str>,
) -> Result<Option<Vec<String>>, BadField> {
    let obj = payload_object(p, at)?;
    let mut out = None;
    for (k, v) in &obj {
        let kat = format!("{at}.{k}");
        match allowed {
            Some(a) if a == k => out = Some(list_arg(v, &kat)?),
            Some(a) => {
                return Err(BadField::new(
                    &kat,
                    &format!("unknown payload key {k:?} (this target takes: {a})"),
                ))
            }
            None => return Err(BadField::new(&kat, "series targets take no payload")),
        }
    }
    Ok(out)
}

pub(super) fn time_range(r: Option<&Range>, at: &str) -> Result<(i64, i64), BadField> {
    match r {
        Some(r) if r.from.0 > r.to.0 => Err(BadField::new(
            at,
            &format!("`from` ({}) is after `to` ({})", r.from.0, r.to.0),
        )),
        Some(r) => Ok((r.from.0, r.to.0)),
        None => Ok((i64::MIN, i64::MAX)),
    }
}
