//! One escaping function per output context. Every manifest value that
//! reaches a rendered file goes through the function of the context it
//! lands in, and each template helper of [`super::engine`] is one of these,
//! so a value can never change what the file around it means.
//!
//! | context | function | helper |
//! |---|---|---|
//! | a YAML scalar (also a JSON string and an Alloy string) | [`yaml_scalar`], [`json_value`] | `json` |
//! | a YAML single-quoted scalar (PromQL in rules) | [`yaml_single`] | `yaml_str` |
//! | a YAML key | [`yaml_key`] | `key` |
//! | a JSON string | [`json_string`] | `json` |
//! | a YAML literal block (falls back to a scalar) | [`yaml_block`] | `yaml_block` |
//! | a PromQL or LogQL string literal (double-quoted) | [`promql_string`] | (in rules and panels) |
//! | Go-template text (Prometheus alert labels, annotations) | [`go_template_text`] | `gotext` |
//! | compose: a value `docker compose` interpolates | [`compose_value`] | `compose` |
//! | a Grafana provisioning value (Grafana expands `$VAR`, `${VAR}`) | [`grafana_value`] | `grafana` |
//! | a Kubernetes container variable's `value` (the kubelet expands `$(VAR)`) | [`kubernetes_env_value`], then [`json_value`] | `json` |
//! | a number | [`number`] | `num` |
//! | a comment line | [`comment`] | `comment` |
//!
//! The scalars are JSON strings in which every character a YAML 1.1 or 1.2
//! reader could take as a line break or refuse as unprintable (C0 and C1
//! controls, DEL, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF, lone surrogates
//! never reach here) is written as a `\uXXXX` escape, which JSON, YAML's
//! double-quoted scalars and Alloy strings all read back as the same
//! character.

/// Whether `c` must be escaped in a scalar: it is not printable in YAML
/// 1.1 (PyYAML, Go's yaml), or a line or paragraph separator there.
fn unsafe_in_yaml(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
        | '\u{fffe}' | '\u{ffff}')
}

/// `s` as a double-quoted scalar that JSON, YAML and Alloy read back as
/// exactly `s`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_in_yaml(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Any JSON value, its strings escaped as by [`json_string`] (so that the
/// result is also a YAML flow value that survives every YAML reader).
pub fn json_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => json_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(json_value).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", json_string(k), json_value(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// A YAML scalar: the same as [`json_string`].
pub fn yaml_scalar(s: &str) -> String {
    json_string(s)
}

/// A YAML mapping key: plain when it is an identifier every YAML reader
/// takes as that string (`severity`, `alloy-data`), else a [`json_string`].
pub fn yaml_key(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        s.to_string()
    } else {
        json_string(s)
    }
}

/// `s` as the value of a YAML key at `column`: a literal block scalar
/// (`|2+` or `|2-`, content two columns deeper) that keeps every byte, or a
/// [`json_string`] when a block cannot carry it exactly (a character
/// [`json_string`] escapes but tab and newline, lines of only blanks).
pub fn yaml_block(s: &str, column: usize) -> String {
    let exact = !s.is_empty()
        && !s
            .chars()
            .any(|c| unsafe_in_yaml(c) && c != '\n' && c != '\t')
        && s.lines()
            .all(|l| l.is_empty() || !l.chars().all(|c| c == ' ' || c == '\t'));
    if !exact {
        return json_string(s);
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

/// `s` as a PromQL (or LogQL) double-quoted string literal: Go's escapes,
/// so that no `"` or `}` in `s` can end the literal or the selector. Every
/// escape [`json_string`] writes (`\"`, `\\`, `\n`, `\t`, `\r`, `\uXXXX`)
/// is one of Go's, and it escapes every control character: the same text.
pub fn promql_string(s: &str) -> String {
    json_string(s)
}

/// `s` as literal text in a Go template (Prometheus expands alert labels
/// and annotations as templates): every `{{` is written as the template
/// action `{{ "{{" }}`, which prints it, so that nothing in `s` runs.
pub fn go_template_text(s: &str) -> String {
    s.replace("{{", "{{ \"{{\" }}")
}

/// A value `docker compose` interpolates: each `$` doubled, so that no
/// `${VAR}` in `s` is expanded. The result is then quoted for YAML.
#[cfg(any(test, feature = "internals"))]
pub fn compose(s: &str) -> String {
    json_string(&s.replace('$', "$$"))
}

/// Any JSON value for docker-compose.yml: [`json_value`] with each `$` of
/// its strings doubled (JSON has no `$` outside strings).
pub fn compose_value(v: &serde_json::Value) -> String {
    json_value(v).replace('$', "$$")
}

/// Any JSON value for a Grafana provisioning file, which Grafana reads
/// with `$VAR` and `${VAR}` replaced by environment variables and `$$` by
/// `$`: [`json_value`] with each `$` of its strings doubled, so that a
/// link's `${__value.raw}` reaches Grafana as written.
pub fn grafana_value(v: &serde_json::Value) -> String {
    json_value(v).replace('$', "$$")
}

/// A container variable's `value`, which the kubelet expands (`$(VAR)` is
/// another variable's value, `$$` is `$`): each `$` doubled, so that the
/// pod sees exactly `s`. The result is then quoted for YAML.
pub fn kubernetes_env_value(s: &str) -> String {
    s.replace('$', "$$")
}

/// A YAML single-quoted scalar (readable for PromQL full of `"`), or a
/// [`json_string`] when `s` holds a character a single-quoted scalar
/// cannot carry (a line break, a control character).
pub fn yaml_single(s: &str) -> String {
    if s.chars().any(unsafe_in_yaml) {
        json_string(s)
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A number, as the template got it; anything else is refused.
pub fn number(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("{other} is not a number")),
    }
}

/// `s` as the text of a comment line: line breaks of any kind become
/// spaces, so that the text cannot leave the comment.
pub fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if unsafe_in_yaml(c) { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "plain",
        "{{ nope }}",
        "\"}",
        "a\nb: c",
        "line\u{2028}sep\u{2029}para",
        "\u{ffff}\u{fffe}\u{feff}",
        "del\u{7f} c1\u{85}\u{9b}",
        "---\n...",
        "$HOME ${X} $$",
        "'single' \\back\\",
        "\t\r\n",
        "",
    ];

    #[test]
    fn json_strings_read_back_as_json_and_as_yaml() {
        for s in HOSTILE {
            let q = json_string(s);
            assert_eq!(serde_json::from_str::<String>(&q).unwrap(), *s, "{q}");
            let doc = format!("k: {q}\nafter: 1\n");
            let v: serde_yaml::Value = serde_yaml::from_str(&doc).unwrap();
            assert_eq!(v["k"].as_str(), Some(*s), "{doc}");
            assert_eq!(v["after"].as_u64(), Some(1), "{doc}");
            assert!(!q.contains('\u{2028}') && !q.contains('\u{85}'));
        }
    }

    #[test]
    fn blocks_keep_every_byte_or_fall_back() {
        for s in HOSTILE
            .iter()
            .chain(&["a: 1\n", "  lead\n", "two\n\n", "blank\n   \nx\n"])
        {
            let doc = format!("data:\n  k: {}\n  after: 1\n", yaml_block(s, 2));
            let v: serde_yaml::Value =
                serde_yaml::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert_eq!(v["data"]["k"].as_str(), Some(*s), "{doc}");
            assert_eq!(v["data"]["after"].as_u64(), Some(1), "{doc}");
        }
    }

    #[test]
    fn promql_strings_stay_strings() {
        for s in HOSTILE {
            let expr = format!("up{{job={}}}", promql_string(s));
            let parsed =
                promql_parser::parser::parse(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let promql_parser::parser::Expr::VectorSelector(v) = parsed else {
                panic!("{expr} is not one selector");
            };
            let m = v.matchers.find_matchers("job");
            assert_eq!(m.len(), 1, "{expr}");
            assert_eq!(m[0].value, *s, "{expr}");
        }
    }

    #[test]
    fn keys_are_plain_only_when_every_reader_agrees() {
        assert_eq!(yaml_key("alloy-data"), "alloy-data");
        assert_eq!(yaml_key("on"), "\"on\"");
        assert_eq!(yaml_key("a: b"), "\"a: b\"");
        for s in HOSTILE.iter().chain(&["on", "1e3", "a.b-c_d"]) {
            let doc = format!("{}: 1\n", yaml_key(s));
            let v: serde_yaml::Mapping = serde_yaml::from_str(&doc).unwrap();
            assert_eq!(v.keys().next().and_then(|k| k.as_str()), Some(*s), "{doc}");
        }
    }

    #[test]
    fn go_template_text_prints_itself() {
        assert_eq!(
            go_template_text("a {{ nope }} b"),
            "a {{ \"{{\" }} nope }} b"
        );
        assert_eq!(go_template_text("no braces } {"), "no braces } {");
    }

    #[test]
    fn single_quoted_scalars_read_back() {
        for s in HOSTILE {
            let doc = format!("k: {}\nafter: 1\n", yaml_single(s));
            let v: serde_yaml::Value = serde_yaml::from_str(&doc).unwrap();
            assert_eq!(v["k"].as_str(), Some(*s), "{doc}");
        }
    }

    #[test]
    fn grafana_values_keep_their_dollars() {
        let v = serde_json::json!({"url": "${__value.raw}", "n": [1, "$x"]});
        assert_eq!(
            grafana_value(&v),
            r#"{"url":"$${__value.raw}","n":[1,"$$x"]}"#
        );
    }

    #[test]
    fn compose_doubles_every_dollar() {
        assert_eq!(
            compose_value(&serde_json::json!(["a$b", 1])),
            "[\"a$$b\",1]"
        );
        assert_eq!(compose("logs/$USER"), "\"logs/$$USER\"");
    }
}
