//! The filters of a query (ad hoc and simpod's), checked once and matched
//! against table cells and event tags.

use super::*;

/// A filter, checked.
pub(super) struct Cond {
    pub(super) key: String,
    pub(super) op: FilterOp,
    pub(super) values: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum FilterOp {
    Eq,
    Ne,
    Lt,
    Gt,
    AnyOf,
    NoneOf,
}

/// The text of a cell, for comparisons and tag values.
pub(super) fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn column_keys(live: &Live) -> Vec<&Column> {
    live.spec.columns()
}

pub(super) fn has_annotations(live: &Live) -> bool {
    live.spec.has_annotations()
}

pub(super) fn compile_filters(
    live: &Live,
    list: &[Filter],
    field: &str,
) -> Result<Vec<Cond>, BadField> {
    let cols = column_keys(live);
    let tags = has_annotations(live);
    list.iter()
        .enumerate()
        .map(|(i, f)| {
            let at = |x: &str| format!("{field}[{i}].{x}");
            let is_tags = tags && f.key == "tags";
            if !is_tags && !cols.iter().any(|c| c.name == f.key) {
                return Err(BadField::new(
                    &at("key"),
                    &format!(
                        "unknown filter key {:?} (keys: {})",
                        capped(&f.key),
                        live.spec.keys().join(", ")
                    ),
                ));
            }
            let op = match f.operator.as_str() {
                "=" => FilterOp::Eq,
                "!=" => FilterOp::Ne,
                "<" if !is_tags => FilterOp::Lt,
                ">" if !is_tags => FilterOp::Gt,
                "=|" => FilterOp::AnyOf,
                "!=|" => FilterOp::NoneOf,
                other => {
                    return Err(BadField::new(
                        &at("operator"),
                        &format!(
                            "operator {:?} is not supported for {:?} (supported: {})",
                            capped(other),
                            capped(&f.key),
                            if is_tags {
                                "=, !=, =|, !=|"
                            } else {
                                "=, !=, <, >, =|, !=|"
                            }
                        ),
                    ))
                }
            };
            let values = match op {
                FilterOp::AnyOf | FilterOp::NoneOf if !f.values.is_empty() => f.values.clone(),
                _ => vec![f.value.clone()],
            };
            Ok(Cond {
                key: f.key.clone(),
                op,
                values,
            })
        })
        .collect()
}

pub(super) fn cell_matches(cell: &Json, op: FilterOp, values: &[String]) -> bool {
    let eq = |v: &String| match (cell.as_f64(), v.parse::<f64>()) {
        (Some(a), Ok(b)) => a == b,
        _ => text(cell) == *v,
    };
    let cmp = |v: &String| match (cell.as_f64(), v.parse::<f64>()) {
        (Some(a), Ok(b)) => a.partial_cmp(&b),
        _ => Some(text(cell).cmp(v)),
    };
    match op {
        FilterOp::Eq | FilterOp::AnyOf => values.iter().any(eq),
        FilterOp::Ne | FilterOp::NoneOf => !values.iter().any(eq),
        FilterOp::Lt => values
            .iter()
            .all(|v| cmp(v) == Some(std::cmp::Ordering::Less)),
        FilterOp::Gt => values
            .iter()
            .all(|v| cmp(v) == Some(std::cmp::Ordering::Greater)),
    }
}

pub(super) fn tags_match(tags: &[String], op: FilterOp, values: &[String]) -> bool {
    let any = values.iter().any(|v| tags.contains(v));
    match op {
        FilterOp::Eq | FilterOp::AnyOf => any,
        _ => !any,
    }
}
