//! The Handlebars engine every target renders through.
//!
//! Strict mode (a missing field is an error, not an empty string), no HTML
//! escaping, and a `json` helper that prints any value as JSON — which is
//! also a valid YAML flow scalar and a valid Alloy string, so templates quote
//! every manifest value through it instead of by hand; `yaml_str` quotes a
//! string the readable YAML way (single quotes) for PromQL and annotations.

use handlebars::{handlebars_helper, Handlebars};

handlebars_helper!(json: |v: Json| serde_json::to_string(&v).unwrap_or_default());
handlebars_helper!(yaml_str: |s: str| yaml_quote(s));

/// A YAML single-quoted scalar (readable for PromQL full of `"`), or a JSON
/// string when `s` has characters single quotes cannot carry.
pub fn yaml_quote(s: &str) -> String {
    if s.chars().any(|c| c.is_control()) {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A registry holding every template of every target.
pub fn engine(templates: &[(&str, &str)]) -> Result<Handlebars<'static>, String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(json));
    hb.register_helper("yaml_str", Box::new(yaml_str));
    for (name, text) in templates {
        hb.register_template_string(name, *text)
            .map_err(|e| format!("template {name}: {e}"))?;
    }
    Ok(hb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_quoting() {
        let hb = engine(&[("t", "a: {{json x}}\n")]).unwrap();
        let out = hb.render("t", &serde_json::json!({"x": "q\"<b>"})).unwrap();
        assert_eq!(out, "a: \"q\\\"<b>\"\n");
        assert!(hb.render("t", &serde_json::json!({})).is_err());
        assert_eq!(yaml_quote(r#"a{b="it's"}"#), r#"'a{b="it''s"}'"#);
        assert_eq!(yaml_quote("a\nb"), "\"a\\nb\"");
    }
}
