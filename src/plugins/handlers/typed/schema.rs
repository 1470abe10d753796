//! Checking a JSON value against its poem-openapi schema (types, required
//! fields, enums, bounds, nested objects and arrays), naming the first
//! mismatch by its path (`items[0].qty`).

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use serde_json::Value as Json;

/// The object schema of `T`, resolved through `registry`.
pub(super) fn object_schema<'r>(registry: &'r Registry, r: &'r MetaSchemaRef) -> Option<&'r MetaSchema> {
    match r {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

/// Checks `v` against `schema` (types, required fields, enums, bounds,
/// nested objects and arrays); the first mismatch, with its path relative
/// to `v` (`items[0].qty`, empty for `v` itself). The path is built only
/// on a mismatch: a valid body costs no string per field.
pub(crate) fn check(
    v: &Json,
    schema: &MetaSchemaRef,
    reg: &Registry,
) -> Result<(), (String, String)> {
    let Some(s) = object_schema(reg, schema) else {
        return Ok(());
    };
    let fail = |msg: String| Err((String::new(), msg));
    if !s.any_of.is_empty() {
        return check_any_of(v, s, reg);
    }
    if v.is_null() {
        return if s.nullable || s.ty.is_empty() {
            Ok(())
        } else {
            fail(format!("must be {} {}, not null", article(s.ty), s.ty))
        };
    }
    match s.ty {
        "object" => check_object(v, s, reg)?,
        "array" => check_array(v, s, reg)?,
        "string" => check_string(v, s).or_else(fail)?,
        "integer" => {
            if !(v.is_i64() || v.is_u64()) {
                return fail(format!("must be an integer, not {}", kind_of(v)));
            }
            bounds(v.as_f64().unwrap_or(0.0), s).or_else(fail)?;
        }
        "number" => {
            let Some(x) = v.as_f64() else {
                return fail(format!("must be a number, not {}", kind_of(v)));
            };
            bounds(x, s).or_else(fail)?;
        }
        "boolean" if !v.is_boolean() => {
            return fail(format!("must be true or false, not {}", kind_of(v)));
        }
        _ => {}
    }
    Ok(())
}

/// `v` against a schema with `anyOf` alternatives: valid if one of them
/// accepts it.
fn check_any_of(v: &Json, s: &MetaSchema, reg: &Registry) -> Result<(), (String, String)> {
    let mut errors = Vec::new();
    for alt in &s.any_of {
        match check(v, alt, reg) {
            Ok(()) => return Ok(()),
            Err(e) => errors.push((alt, e)),
        }
    }
    // The alternative of the value's own type says what is wrong inside it.
    let same_type =
        |alt: &MetaSchemaRef| object_schema(reg, alt).is_some_and(|a| kind_of(v).ends_with(a.ty));
    if let Some((_, e)) = errors.iter().find(|(alt, _)| same_type(alt)) {
        return Err(e.clone());
    }
    let kinds: Vec<String> = s
        .any_of
        .iter()
        .filter_map(|alt| object_schema(reg, alt))
        .map(|alt| format!("{} {}", article(alt.ty), alt.ty))
        .collect();
    Err((
        String::new(),
        format!("must be {}, not {}", kinds.join(" or "), kind_of(v)),
    ))
}

/// `v` against an object schema: its required fields, then each field given.
fn check_object(v: &Json, s: &MetaSchema, reg: &Registry) -> Result<(), (String, String)> {
    let Some(obj) = v.as_object() else {
        return Err((
            String::new(),
            format!("must be an object, not {}", kind_of(v)),
        ));
    };
    for name in &s.required {
        if !obj.contains_key(*name) {
            return Err((name.to_string(), "missing required field".into()));
        }
    }
    for (name, ps) in &s.properties {
        if let Some(x) = obj.get(*name) {
            check(x, ps, reg).map_err(|(p, m)| (under(name, &p), m))?;
        }
    }
    Ok(())
}

/// `v` against an array schema: its length, then each item.
fn check_array(v: &Json, s: &MetaSchema, reg: &Registry) -> Result<(), (String, String)> {
    let fail = |msg: String| Err((String::new(), msg));
    let Some(items) = v.as_array() else {
        return fail(format!("must be an array, not {}", kind_of(v)));
    };
    if let Some(max) = s.max_items {
        if items.len() > max {
            return fail(format!("must have at most {max} items"));
        }
    }
    if let Some(item) = &s.items {
        for (i, x) in items.iter().enumerate() {
            check(x, item, reg).map_err(|(p, m)| (under(&format!("[{i}]"), &p), m))?;
        }
    }
    Ok(())
}

/// `v` against a string schema: its enum and length bounds.
fn check_string(v: &Json, s: &MetaSchema) -> Result<(), String> {
    let Some(text) = v.as_str() else {
        return Err(format!("must be a string, not {}", kind_of(v)));
    };
    if !s.enum_items.is_empty() && !s.enum_items.iter().any(|e| e == v) {
        let allowed: Vec<String> = s.enum_items.iter().map(|e| e.to_string()).collect();
        return Err(format!("must be one of {}", allowed.join(", ")));
    }
    if let Some(max) = s.max_length {
        if text.chars().count() > max {
            return Err(format!("must be at most {max} characters"));
        }
    }
    if let Some(min) = s.min_length {
        if text.chars().count() < min {
            return Err(format!("must be at least {min} characters"));
        }
    }
    Ok(())
}

fn bounds(x: f64, s: &MetaSchema) -> Result<(), String> {
    let excl_min = s.exclusive_minimum.unwrap_or(false);
    let excl_max = s.exclusive_maximum.unwrap_or(false);
    if let Some(min) = s.minimum {
        if x < min || (excl_min && x == min) {
            return Err(format!(
                "must be {} {min}",
                if excl_min { "above" } else { "at least" }
            ));
        }
    }
    if let Some(max) = s.maximum {
        if x > max || (excl_max && x == max) {
            return Err(format!(
                "must be {} {max}",
                if excl_max { "below" } else { "at most" }
            ));
        }
    }
    Ok(())
}

/// `step` (a field name or `[i]`) followed by the `rest` of a path below it.
fn under(step: &str, rest: &str) -> String {
    match rest.chars().next() {
        None => step.to_string(),
        Some('[') => format!("{step}{rest}"),
        Some(_) => format!("{step}.{rest}"),
    }
}

fn article(ty: &str) -> &'static str {
    if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
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
mod tests {
    use super::*;

    #[test]
    fn mismatch_paths_name_nested_fields_and_items() {
        assert_eq!(under("items", "[0].qty"), "items[0].qty");
        assert_eq!(under("[0]", "qty"), "[0].qty");
        assert_eq!(under("qty", ""), "qty");
    }
}
