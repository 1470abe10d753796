//! Checking a JSON value against its poem-openapi schema with the
//! `jsonschema` crate. The schema is the one the OpenAPI document shows,
//! converted once to JSON Schema 2020-12 ([`json_schema`]) and compiled
//! when the endpoint is prepared, so a request only runs the compiled
//! check. The first mismatch is named by the field it is in
//! (`items[0].qty`) and said in words that never echo the value.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, JsonType, PatternOptions, ValidationError, Validator};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// The object schema of `T`, resolved through `registry`.
pub(super) fn object_schema<'r>(registry: &'r Registry, r: &'r MetaSchemaRef) -> Option<&'r MetaSchema> {
    match r {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

/// One schema, compiled: what a request's body or parameters are checked
/// against.
pub struct SchemaCheck(Validator);

impl std::fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaCheck")
    }
}

impl SchemaCheck {
    /// Compiles `schema` (its references resolved in `registry`). Patterns
    /// run on the `regex` engine, in time linear in the value, as
    /// poem-openapi's own validators do.
    pub(crate) fn new(schema: &MetaSchemaRef, registry: &Registry) -> Result<Self, String> {
        let doc = json_schema(schema, registry)?;
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_pattern_options(PatternOptions::regex())
            .build(&doc)
            .map(SchemaCheck)
            .map_err(|e| format!("its JSON Schema does not compile: {}", e.masked()))
    }

    /// Checks `v`: the first mismatch, as the path of its field relative
    /// to `v` (`items[0].qty`, empty for `v` itself) and what is wrong.
    /// A valid value costs no string.
    pub(crate) fn check(&self, v: &Json) -> Result<(), (String, String)> {
        match self.0.validate(v) {
            Ok(()) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// `schema` as one JSON Schema 2020-12 document: the schemas of `registry`
/// under `$defs` (named `s0`, `s1`, ... so that no type name needs
/// escaping in a pointer), and OpenAPI 3.0's dialect translated
/// ([`translate`]).
fn json_schema(schema: &MetaSchemaRef, registry: &Registry) -> Result<Json, String> {
    let names: BTreeMap<&str, String> = registry
        .schemas
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), format!("s{i}")))
        .collect();
    let mut defs = Map::new();
    for (name, s) in &registry.schemas {
        defs.insert(names[name.as_str()].clone(), convert(s, &names)?);
    }
    let mut doc = match convert(schema, &names)? {
        Json::Object(m) => m,
        other => return Err(format!("its schema is not an object: {other}")),
    };
    doc.insert("$defs".into(), Json::Object(defs));
    Ok(Json::Object(doc))
}

/// One poem-openapi schema, serialized as the OpenAPI document shows it,
/// then translated.
fn convert<T: serde::Serialize>(s: &T, names: &BTreeMap<&str, String>) -> Result<Json, String> {
    let mut v =
        serde_json::to_value(s).map_err(|e| format!("its schema does not serialize: {e}"))?;
    translate(&mut v, names)?;
    Ok(v)
}

/// Rewrites one serialized OpenAPI 3.0 schema, and the schemas inside it,
/// into JSON Schema 2020-12:
/// - `$ref: "#/components/schemas/Name"` points into `$defs`;
/// - `nullable: true` adds `null` to `type` (and `enum`), or, where there
///   is no `type`, becomes `anyOf` with `{type: null}`;
/// - boolean `exclusiveMinimum`/`exclusiveMaximum` become the number of
///   `minimum`/`maximum`.
///
/// Only schema positions are walked (`properties`' values, `items`,
/// `additionalProperties`, `anyOf`/`oneOf`/`allOf`), never `enum`,
/// `default` or `example`, which are data.
fn translate(v: &mut Json, names: &BTreeMap<&str, String>) -> Result<(), String> {
    let Json::Object(s) = v else {
        return Ok(());
    };
    if let Some(Json::String(r)) = s.get_mut("$ref") {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
        let Some(def) = names.get(name) else {
            return Err(format!("its schema refers to {name:?}, which is not registered"));
        };
        *r = format!("#/$defs/{def}");
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if s.get(exclusive) == Some(&Json::Bool(true)) {
            if let Some(limit) = s.remove(bound) {
                s.insert(exclusive.into(), limit);
            }
        }
        if matches!(s.get(exclusive), Some(Json::Bool(_))) {
            s.remove(exclusive);
        }
    }
    if let Some(Json::Object(props)) = s.get_mut("properties") {
        for p in props.values_mut() {
            translate(p, names)?;
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = s.get_mut(key) {
            translate(sub, names)?;
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Json::Array(alts)) = s.get_mut(key) {
            for a in alts {
                translate(a, names)?;
            }
        }
    }
    if s.remove("nullable") == Some(Json::Bool(true)) {
        if let Some(Json::Array(e)) = s.get_mut("enum") {
            e.push(Json::Null);
        }
        match s.get("type").cloned() {
            Some(Json::String(t)) => {
                s.insert("type".into(), Json::Array(vec![t.into(), "null".into()]));
            }
            _ => {
                let inner = std::mem::take(s);
                s.insert(
                    "anyOf".into(),
                    Json::Array(vec![Json::Object(inner), serde_json::json!({"type": "null"})]),
                );
            }
        }
    }
    Ok(())
}

/// The field `e` is about and what is wrong there, in telltale's words.
fn describe(e: &ValidationError<'_>) -> (String, String) {
    use ValidationErrorKind as K;
    let field = field_path(e);
    let message = match e.kind() {
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            return (under(&field, name), "missing required field".into());
        }
        K::AdditionalProperties { unexpected } => {
            let name = unexpected.first().map(String::as_str).unwrap_or_default();
            return (under(&field, name), "is not a known field".into());
        }
        K::AnyOf { context } => return any_of(e, &field, context),
        K::Type { kind } => format!("must be {}, not {}", expected(kind), kind_of(e.instance())),
        K::Enum { options } => match options.as_array() {
            Some(list) => format!(
                "must be one of {}",
                list.iter().map(Json::to_string).collect::<Vec<_>>().join(", ")
            ),
            None => format!("must be {options}"),
        },
        K::Minimum { limit } => format!("must be at least {}", number(limit)),
        K::Maximum { limit } => format!("must be at most {}", number(limit)),
        K::ExclusiveMinimum { limit } => format!("must be above {}", number(limit)),
        K::ExclusiveMaximum { limit } => format!("must be below {}", number(limit)),
        K::MinLength { limit } => format!("must be at least {limit} characters"),
        K::MaxLength { limit } => format!("must be at most {limit} characters"),
        K::MinItems { limit } => format!("must have at least {limit} items"),
        K::MaxItems { limit } => format!("must have at most {limit} items"),
        K::Pattern { pattern } => format!("must match the pattern {pattern:?}"),
        // The library's own words, with the value masked.
        _ => e.masked().to_string(),
    };
    (field, message)
}

/// An `anyOf` mismatch: what is wrong inside the alternative of the value's
/// own type, or else which types it may be.
fn any_of(
    e: &ValidationError<'_>,
    field: &str,
    context: &[Vec<ValidationError<'static>>],
) -> (String, String) {
    let at_value = |x: &ValidationError<'_>| x.instance_path() == e.instance_path();
    let own_type = context.iter().find_map(|errors| {
        let first = errors.first()?;
        let wrong_type = matches!(first.kind(), ValidationErrorKind::Type { .. }) && at_value(first);
        (!wrong_type).then_some(first)
    });
    if let Some(inner) = own_type {
        return describe(inner);
    }
    let kinds: Vec<String> = context
        .iter()
        .filter_map(|errors| match errors.first()?.kind() {
            ValidationErrorKind::Type { kind } => Some(expected(kind)),
            _ => None,
        })
        .collect();
    (
        field.to_string(),
        format!("must be {}, not {}", kinds.join(" or "), kind_of(e.instance())),
    )
}

/// The instance path of `e` as telltale names fields: `items[0].qty`.
fn field_path(e: &ValidationError<'_>) -> String {
    use jsonschema::paths::LocationSegment;
    let mut path = String::new();
    for segment in e.instance_path().iter() {
        match segment {
            LocationSegment::Property(name) => path = under(&path, &name),
            LocationSegment::Index(i) => {
                path.push('[');
                path.push_str(itoa::Buffer::new().format(i));
                path.push(']');
            }
        }
    }
    path
}

/// The field `name` inside `path` (`name` alone at the top).
fn under(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The types a `type` keyword allows, in words: `an integer`, `a string or
/// null`.
fn expected(kind: &TypeKind) -> String {
    let one = |t: JsonType| match t {
        JsonType::Null => "null".to_string(),
        JsonType::Array | JsonType::Integer | JsonType::Object => format!("an {t}"),
        _ => format!("a {t}"),
    };
    match kind {
        TypeKind::Single(t) => one(*t),
        TypeKind::Multiple(set) => set.iter().map(one).collect::<Vec<_>>().join(" or "),
    }
}

/// A bound as written: `1`, not `1.0`.
fn number(limit: &Json) -> String {
    match limit.as_f64() {
        Some(x) => x.to_string(),
        None => limit.to_string(),
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
