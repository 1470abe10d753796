//! Request bodies of both dialects, and strict parsing: a malformed body
//! or a wrong shape is a 400 that names the field (`targets[0].refId`).
//!
//! Unknown fields are ignored (Grafana sends many: `panelId`, `scopedVars`,
//! `rangeRaw`, ...); known fields must have the documented type.

use crate::server::error::bad_field;
use poem::Response;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

/// A 400 naming the offending field of a request body (a 413 when the
/// answer would be larger than `datasource.limits.max_response_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadField {
    /// Path such as `targets[0].refId` (`body` for the whole body).
    pub field: String,
    pub message: String,
    /// The answer, not the request, is too large.
    pub too_large: bool,
}

impl BadField {
    pub fn new(field: &str, message: &str) -> Self {
        BadField {
            field: field.into(),
            message: message.into(),
            too_large: false,
        }
    }

    /// A 413: what `field` asks for makes an answer over a limit.
    pub fn too_large(field: &str, message: &str) -> Self {
        BadField {
            too_large: true,
            ..BadField::new(field, message)
        }
    }

    /// The JSON error response.
    pub fn response(&self) -> Response {
        if self.too_large {
            crate::server::error::bad_field_status(
                poem::http::StatusCode::PAYLOAD_TOO_LARGE,
                &self.field,
                &self.message,
            )
        } else {
            bad_field(&self.field, &self.message)
        }
    }
}

/// Parses `body` as `T`; a syntax error names the field it is in.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadField> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let msg = e.inner().to_string();
        BadField::new(&field_path("", &e.path().to_string()), &msg)
    })?;
    de.end()
        .map_err(|e| BadField::new("body", &format!("{e} (trailing data after the JSON value)")))?;
    Ok(v)
}

/// Parses an already-read JSON value found at `at` (e.g. `targets[1].payload`).
pub fn parse_value<T: DeserializeOwned>(v: &Json, at: &str) -> Result<T, BadField> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        BadField::new(
            &field_path(at, &e.path().to_string()),
            &e.inner().to_string(),
        )
    })
}

/// `prefix` + serde_path_to_error's path (`.` is the value itself).
fn field_path(prefix: &str, inner: &str) -> String {
    match (prefix, inner) {
        ("", ".") => "body".into(),
        (p, ".") => p.into(),
        ("", i) => i.into(),
        (p, i) if i.starts_with('[') => format!("{p}{i}"),
        (p, i) => format!("{p}.{i}"),
    }
}

/// A time in Unix milliseconds, sent as an RFC 3339 string (what Grafana
/// sends) or as a number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected an RFC 3339 time such as \"2024-05-01T12:00:00.000Z\" or Unix milliseconds",
            )
        })? {
            Raw::Ms(ms) => Ok(Millis(ms)),
            Raw::Text(s) => humantime::parse_rfc3339_weak(&s)
                .map_err(|e| serde::de::Error::custom(format!("bad time {s:?}: {e}")))
                .map(|t| {
                    let ms = match t.duration_since(std::time::UNIX_EPOCH) {
                        Ok(d) => d.as_millis() as i64,
                        Err(e) => -(e.duration().as_millis() as i64),
                    };
                    Millis(ms)
                }),
        }
    }
}

/// `range` of `/query`, `/annotations` and `/variable` (`raw` is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    pub from: Millis,
    pub to: Millis,
}

/// Series (`timeserie`, SimpleJSON's spelling, or `timeseries`) or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TargetType {
    #[serde(rename = "timeserie", alias = "timeseries")]
    Timeserie,
    #[serde(rename = "table")]
    Table,
}

/// One entry of `/query`'s `targets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryTarget {
    /// Absent or empty: a placeholder query, skipped (both plugins do the same).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub ref_id: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<TargetType>,
    /// An object, or a string holding one (the simpod code editor's raw text).
    #[serde(default)]
    pub payload: Option<Json>,
    #[serde(default)]
    pub hide: Option<bool>,
}

/// An ad-hoc filter (`adhocFilters` in SimpleJSON and simpod < 0.6, `filters` since).
#[derive(Debug, Clone, Deserialize)]
pub struct Filter {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub value: String,
    /// For the multi-value operators `=|` and `!=|`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// `POST /query`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    #[serde(default)]
    pub range: Option<Range>,
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "the protocol's field, read by tests only")
    )]
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub interval_ms: Option<u64>,
    #[serde(default)]
    pub max_data_points: Option<u64>,
    pub targets: Vec<QueryTarget>,
    #[serde(default)]
    pub adhoc_filters: Vec<Filter>,
    #[serde(default)]
    pub filters: Vec<Filter>,
}

/// How many targets and filters a `/query` body holds, read without
/// building them (any other shape counts 0: the schema check names it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryCounts {
    #[serde(default)]
    pub targets: Count,
    #[serde(default)]
    pub adhoc_filters: Count,
    #[serde(default)]
    pub filters: Count,
}

/// The length of a JSON array, its items skipped unread (0 for a non-array).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Count(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// `POST /search` (SimpleJSON): the text typed so far.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchRequest {
    #[serde(default)]
    pub target: Option<String>,
}

/// `POST /metrics` (simpod): the current metric and payload.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetricsRequest {
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "the protocol's field, read by tests only")
    )]
    #[serde(default)]
    pub metric: Option<String>,
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "the protocol's field, read by tests only")
    )]
    #[serde(default)]
    pub payload: Option<Json>,
}

/// `POST /metric-payload-options` (simpod).
#[derive(Debug, Clone, Deserialize)]
pub struct PayloadOptionsRequest {
    pub metric: String,
    pub name: String,
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "the protocol's field, read by tests only")
    )]
    #[serde(default)]
    pub payload: Option<Json>,
}

/// `POST /variable` (simpod): `payload` is `{"target": ...}` or a plain string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VariableRequest {
    #[serde(default)]
    pub payload: Option<Json>,
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "the protocol's field, read by tests only")
    )]
    #[serde(default)]
    pub range: Option<Range>,
}

/// `POST /tag-keys`: any JSON object (nothing in it is used).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TagKeysRequest {}

/// `POST /tag-values`.
#[derive(Debug, Clone, Deserialize)]
pub struct TagValuesRequest {
    pub key: String,
}

/// The `annotation` object of SimpleJSON's `/annotations` (echoed back whole).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AnnotationQuery {
    /// The annotations target to read; absent or empty: every event.
    #[serde(default)]
    pub query: Option<String>,
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "the protocol's field, read by tests only")
    )]
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /annotations` (SimpleJSON).
#[derive(Debug, Clone, Deserialize)]
pub struct AnnotationsRequest {
    #[serde(default)]
    pub range: Option<Range>,
    #[serde(default)]
    pub annotation: Option<Json>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: BadField) -> String {
        e.field
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<QueryRequest>(br#"{"targets":[{"target":"a","refId":5}]}"#).unwrap_err();
        assert_eq!(field_of(e), "targets[0].refId");
        let e = parse::<QueryRequest>(br#"{"targets":[], "range":{"from":"yesterday","to":1}}"#)
            .unwrap_err();
        assert_eq!(field_of(e), "range.from");
        let e = parse::<QueryRequest>(br#"{"targets":[}"#).unwrap_err();
        assert_eq!(field_of(e), "targets[0]");
        let e = parse::<QueryRequest>(b"{}").unwrap_err();
        assert_eq!(field_of(e), "body");
        let e = parse::<QueryRequest>(br#"{"targets":[]} x"#).unwrap_err();
        assert_eq!(field_of(e), "body");
    }

    #[test]
    fn times_parse_as_rfc3339_or_millis() {
        let r: Range =
            serde_json::from_str(r#"{"from":"2016-10-31T06:33:44.866Z","to":1477895624866}"#)
                .unwrap();
        assert_eq!(r.from, Millis(1477895624866));
        assert_eq!(r.to, Millis(1477895624866));
        let t: QueryTarget = serde_json::from_str(r#"{"target":"x","type":"timeseries"}"#).unwrap();
        assert_eq!(t.kind, Some(TargetType::Timeserie));
    }
}
