//! The Handlebars engine every target renders through.
//!
//! Strict mode (a missing field is an error, not an empty string), no HTML
//! escaping, and a `json` helper that prints any value as JSON — which is
//! also a valid YAML flow scalar and a valid Alloy string, so templates quote
//! every manifest value through it instead of by hand; `yaml_str` quotes a
//! string the readable YAML way (single quotes) for PromQL and annotations;
//! `compose` is `json` for docker-compose.yml (its `$` doubled).

use handlebars::{handlebars_helper, Handlebars};

handlebars_helper!(json: |v: Json| serde_json::to_string(&v).unwrap_or_default());
handlebars_helper!(compose: |v: Json| compose_json(v));
handlebars_helper!(yaml_str: |s: str| yaml_quote(s));
handlebars_helper!(yaml_block: |s: str, column: u64| yaml_literal(s, column as usize));

/// `s` as the value of a YAML key at `column`: a literal block scalar
/// (`|2+` or `|2-`, content two columns deeper) that keeps every byte, or a
/// JSON string when a block cannot carry it exactly (control characters,
/// lines of only blanks, a carriage return).
pub fn yaml_literal(s: &str, column: usize) -> String {
    let exact = !s.is_empty()
        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
        && !s.starts_with('\u{feff}')
        && s.lines()
            .all(|l| l.is_empty() || !l.chars().all(|c| c == ' ' || c == '\t'));
    if !exact {
        return serde_json::to_string(s).unwrap_or_default();
    }
    let chomp = if s.ends_with('\n') { '+' } else { '-' };
    let pad = " ".repeat(column + 2);
    let mut out = format!("|2{chomp}");
    for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

/// `v` as JSON for docker-compose.yml, whose strings compose interpolates:
/// every `$` is doubled (`$$` is compose's literal `$`), so a manifest value
/// reaches the container as written.
pub fn compose_json(v: &serde_json::Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('$', "$$")
}

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
    hb.register_helper("compose", Box::new(compose));
    hb.register_helper("yaml_str", Box::new(yaml_str));
    hb.register_helper("yaml_block", Box::new(yaml_block));
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

    #[test]
    fn literal_blocks_keep_every_byte() {
        let cases = [
            "a: 1\n",
            "  leading blanks\nthen\n",
            "no newline at the end",
            "two newlines\n\n",
            "\n\nstarts empty\n",
            "tab\there\n# comment: {x}\n'q' \"dq\" |> -\n",
            "blank-only line\n   \nnext\n",
            "carriage\r\nreturn\n",
            "",
        ];
        for s in cases {
            let doc = format!("data:\n  k: {}\n", yaml_literal(s, 2));
            let v: serde_yaml::Value =
                serde_yaml::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert_eq!(v["data"]["k"].as_str(), Some(s), "{doc}");
        }
        assert!(yaml_literal("x\n", 2).starts_with("|2+"));
    }
}
