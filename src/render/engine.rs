//! The Handlebars engine every target renders through.
//!
//! Strict mode (a missing field is an error, not an empty string), no HTML
//! escaping, and one helper per output context, each an escaping function
//! of [`super::escape`]: a template never prints a value without one
//! (`every_interpolation_goes_through_a_helper` reads every template).
//!
//! | helper | prints | for |
//! |---|---|---|
//! | `json` | any value as JSON, every string [`escape::json_string`] | JSON files, YAML flow values, Alloy strings |
//! | `key` | a string as a quoted YAML mapping key | YAML keys |
//! | `yaml_str` | a YAML single-quoted scalar (JSON when it cannot be one) | PromQL and annotations in rules |
//! | `yaml_block` | a YAML literal block at a column (a scalar when it cannot be one) | file contents in ConfigMaps |
//! | `gotext` | Go-template text as a YAML scalar: every `{{` printed literally | Prometheus alert label values |
//! | `compose` | `json` with each `$` doubled | docker-compose.yml values |
//! | `grafana` | `json` with each `$` doubled | Grafana provisioning values (not `$__file{}`) |
//! | `num` | a number (anything else is an error) | ports, counts, ids |
//! | `comment` | text on one comment line | the generated-file notice |
//! | `verbatim` | text another template rendered (already escaped, parsed back) | the PrometheusRule's groups |

use super::escape;
use handlebars::{
    handlebars_helper, Context, Handlebars, Helper, HelperResult, Output, RenderContext,
    RenderError, RenderErrorReason,
};

handlebars_helper!(json: |v: Json| escape::json_value(v));
handlebars_helper!(key: |s: str| escape::yaml_key(s));
handlebars_helper!(compose: |v: Json| escape::compose_value(v));
handlebars_helper!(grafana: |v: Json| escape::grafana_value(v));
handlebars_helper!(yaml_str: |s: str| escape::yaml_single(s));
handlebars_helper!(yaml_block: |s: str, column: u64| escape::yaml_block(s, column as usize));
handlebars_helper!(gotext: |s: str| escape::yaml_scalar(&escape::go_template_text(s)));
handlebars_helper!(comment: |v: Json| escape::comment(&match v {
    serde_json::Value::String(s) => s.clone(),
    other => other.to_string(),
}));
handlebars_helper!(verbatim: |s: str| s.to_string());

/// `num`: a number as it is, and a render error for anything else.
fn num(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let v = h
        .param(0)
        .ok_or_else(|| RenderError::from(RenderErrorReason::ParamNotFoundForIndex("num", 0)))?;
    let text = escape::number(v.value())
        .map_err(|e| RenderError::from(RenderErrorReason::Other(format!("num: {e}"))))?;
    out.write(&text)?;
    Ok(())
}

/// A registry holding every template of every target.
pub fn engine(templates: &[(&str, &str)]) -> Result<Handlebars<'static>, String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(json));
    hb.register_helper("key", Box::new(key));
    hb.register_helper("compose", Box::new(compose));
    hb.register_helper("grafana", Box::new(grafana));
    hb.register_helper("yaml_str", Box::new(yaml_str));
    hb.register_helper("yaml_block", Box::new(yaml_block));
    hb.register_helper("gotext", Box::new(gotext));
    hb.register_helper("comment", Box::new(comment));
    hb.register_helper("verbatim", Box::new(verbatim));
    hb.register_helper("num", Box::new(num));
    for (name, text) in templates {
        hb.register_template_string(name, *text)
            .map_err(|e| format!("template {name}: {e}"))?;
    }
    Ok(hb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The helpers a template may print a value with.
    const HELPERS: [&str; 11] = [
        "json",
        "key",
        "compose",
        "grafana",
        "yaml_str",
        "yaml_block",
        "gotext",
        "comment",
        "verbatim",
        "num",
        // Partials are not interpolations; listed so the scan knows them.
        ">",
    ];

    /// The printing expressions of `template` (`{{…}}` that are not blocks,
    /// `else`, comments or partials) whose first word is not a helper.
    fn bare_interpolations(template: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = template;
        while let Some(at) = rest.find("{{") {
            let after = &rest[at + 2..];
            let Some(end) = after.find("}}") else { break };
            let inner = after[..end].trim_start_matches('~').trim();
            rest = &after[end + 2..];
            let first = inner.split_whitespace().next().unwrap_or("");
            let control = inner.starts_with(['#', '/', '!', '>', '^']) || first == "else";
            if !control && !HELPERS.contains(&first) {
                out.push(inner.to_string());
            }
        }
        out
    }

    #[test]
    fn strict_and_quoting() {
        let hb = engine(&[("t", "a: {{json x}}\n")]).unwrap();
        let out = hb.render("t", &serde_json::json!({"x": "q\"<b>"})).unwrap();
        assert_eq!(out, "a: \"q\\\"<b>\"\n");
        assert!(hb.render("t", &serde_json::json!({})).is_err());
        let hb = engine(&[("n", "port: {{num p}}\n")]).unwrap();
        assert_eq!(
            hb.render("n", &serde_json::json!({"p": 80})).unwrap(),
            "port: 80\n"
        );
        assert!(hb
            .render("n", &serde_json::json!({"p": "80\nx: 1"}))
            .is_err());
    }

    #[test]
    fn every_interpolation_goes_through_a_helper() {
        let mut seen = 0;
        for t in super::super::targets::TARGETS {
            for (name, text) in t.templates() {
                seen += 1;
                let bare = bare_interpolations(text);
                assert!(
                    bare.is_empty(),
                    "template {name} prints without a helper: {bare:?}"
                );
            }
        }
        assert!(seen >= 20, "every template was read ({seen})");
        assert_eq!(
            bare_interpolations("a {{x}} {{json y}} {{#if z}}{{/if}}"),
            ["x"]
        );
    }
}
