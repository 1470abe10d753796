//! Alert annotation templates: the subset telltale can check and test.
//!
//! Prometheus expands annotations with Go templates. A generated promtool
//! test must state the exact expanded text, so summaries and descriptions may
//! use only `{{ $value }}` and `{{ $labels.NAME }}`, which are expanded here
//! the same way Prometheus does (and `{{ "{{" }}`, a literal `{{`, which is
//! how the renderer writes manifest text into an annotation).

use std::collections::BTreeMap;

/// One piece of a parsed annotation.
#[derive(Debug, PartialEq)]
enum AnnotationPart<'a> {
    Text(&'a str),
    Value,
    Label(&'a str),
}

fn parse(t: &str) -> Result<Vec<AnnotationPart<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push(AnnotationPart::Text(&rest[..i]));
        let after = &rest[i + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unterminated {{ in annotation".to_string())?;
        let action = after[..end].trim();
        if action == "\"{{\"" {
            // How a literal `{{` is written (what the renderer writes for
            // manifest text): it prints itself.
            out.push(AnnotationPart::Text("{{"));
        } else if action == "$value" {
            out.push(AnnotationPart::Value);
        } else if let Some(l) = action.strip_prefix("$labels.") {
            if !crate::model::is_label_name(l) {
                return Err(format!("{l:?} is not a label name"));
            }
            out.push(AnnotationPart::Label(l));
        } else {
            return Err(format!(
                "unsupported template action {{{{ {action} }}}} (only {{{{ $value }}}} and {{{{ $labels.NAME }}}} can be unit-tested)"
            ));
        }
        rest = &after[end + 2..];
    }
    out.push(AnnotationPart::Text(rest));
    Ok(out)
}

/// Label names an annotation refers to.
pub fn labels_used(t: &str) -> Result<Vec<String>, String> {
    Ok(parse(t)?
        .into_iter()
        .filter_map(|p| match p {
            AnnotationPart::Label(l) => Some(l.to_string()),
            _ => None,
        })
        .collect())
}

/// Whether the annotation uses `{{ $value }}`.
pub fn uses_value(t: &str) -> Result<bool, String> {
    Ok(parse(t)?.contains(&AnnotationPart::Value))
}

/// Expands `t` as Prometheus would for an alert with `labels` and `value`.
pub fn expand(
    t: &str,
    labels: &BTreeMap<String, String>,
    value: Option<f64>,
) -> Result<String, String> {
    let mut s = String::new();
    for p in parse(t)? {
        match p {
            AnnotationPart::Text(x) => s.push_str(x),
            AnnotationPart::Value => {
                let v = value.ok_or("annotation uses {{ $value }} but the test gives no value")?;
                // Go prints floats in their shortest form, as Rust's Display does
                // for the ranges a fixture uses (95, 0.5, 12.25).
                s.push_str(&v.to_string());
            }
            AnnotationPart::Label(l) => {
                s.push_str(labels.get(l).ok_or_else(|| {
                    format!("annotation uses label {l:?} the alert does not have")
                })?)
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_value_and_labels() {
        let labels = BTreeMap::from([("job".to_string(), "api".to_string())]);
        assert_eq!(
            expand("{{ $labels.job }} at {{$value}}%", &labels, Some(95.0)).unwrap(),
            "api at 95%"
        );
        assert!(expand("{{ $labels.instance }}", &labels, None).is_err());
        assert!(expand("{{ $value | humanize }}", &labels, Some(1.0)).is_err());
        assert!(expand("{{ $value", &labels, Some(1.0)).is_err());
        assert_eq!(
            labels_used("{{ $labels.a }}{{ $labels.b }}").unwrap(),
            ["a", "b"]
        );
    }
}
